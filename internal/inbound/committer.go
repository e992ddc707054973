package inbound

import (
	"context"
	"errors"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// The committer: one goroutine that turns pending deliveries into group
// commits (Deliverer.run), waiting briefly for messages on their way.

// run is the committer: it takes whatever is pending (up to maxBatch),
// commits it as one group, and repeats; while one group commits, the next
// one gathers.
func (d *Deliverer) run(ctx context.Context) {
	defer close(d.done)
	var last time.Duration // how long the last group took to commit
	for {
		d.gather(last)
		d.mu.Lock()
		n := min(len(d.pending), d.maxBatch)
		batch := make([]*commitReq, n)
		copy(batch, d.pending)
		if n == len(d.pending) {
			d.pending = nil
		} else {
			d.pending = d.pending[n:]
		}
		closing := d.state == stateClosing
		d.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			<-d.wake
			continue
		}
		start := time.Now()
		d.commit(ctx, batch)
		last = time.Since(start)
	}
}

// maxGather bounds how long the committer waits for arriving messages.
const maxGather = 2 * time.Millisecond

// gather lets a group wait, before it commits, for the messages whose
// spools are still being written (sessions in DATA or in the inbound
// checks), for at most half as long as the last commit took: a commit
// costs about the same for one message as for ten, so under load a
// larger group saves more than the wait costs (PostgreSQL's
// commit_delay, driven by messages actually on their way). With nothing
// on its way, as for a lone client, it does not wait at all.
func (d *Deliverer) gather(last time.Duration) {
	wait := d.gatherWait(last)
	if wait <= 0 {
		return
	}
	pending := func() (int, bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.pending), d.state == stateClosing
	}
	d.gathering.Store(true)
	defer d.gathering.Store(false)
	// Those on their way now; one that is aborted no longer counts.
	n, closing := pending()
	want := min(n+int(d.spooling.Load()), d.maxBatch)
	if n == 0 || n >= want || closing {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-d.wake:
		case <-timer.C:
			return
		}
		n, closing = pending()
		want = min(want, n+int(d.spooling.Load()))
		if n >= want || closing {
			return
		}
	}
}

// gatherFor is the default gatherWait: half the last commit, at most
// maxGather.
func gatherFor(last time.Duration) time.Duration { return min(last/2, maxGather) }

// commit stores batch in one transaction. If that fails with an error
// that proves nothing was written (a quota, a recipient that went away, a
// constraint), each message is retried alone so that one bad message does
// not fail the others. After any other error (a broken connection, a
// COMMIT whose outcome is unknown) nothing is retried one by one: that
// could store messages twice. Every message carries a DeliveryKey, so
// after ErrCommitUnknown the group runs again as it was to learn the
// outcome (messages already stored are skipped by the store); if that
// does not settle it, the group fails (smtpd answers 451) and the bodies
// stay for the store's garbage sweep.
func (d *Deliverer) commit(ctx context.Context, batch []*commitReq) {
	msgs := make([]*store.NewMessage, 0, len(batch))
	for _, r := range batch {
		msgs = append(msgs, r.all()...)
	}
	err := d.commitSettled(ctx, msgs)
	if err == nil || !nothingWritten(err) {
		for _, r := range batch {
			d.finish(r, err)
		}
		return
	}
	d.log.Debug("group commit refused, retrying one by one", "messages", len(batch), "err", err)
	for _, r := range batch {
		d.finish(r, d.commitPartial(ctx, r))
	}
}

// commitPartial stores r's message alone. While a mailbox of it is over
// quota and other recipients remain, that mailbox is left out (r.full)
// and the rest is stored: one full mailbox does not cost the others
// the message; its sender gets a DSN (QuotaBounce).
func (d *Deliverer) commitPartial(ctx context.Context, r *commitReq) error {
	for {
		msgs := r.all()
		err := d.commitSettled(ctx, msgs)
		var qe *store.QuotaError
		if err == nil || !errors.As(err, &qe) {
			return err
		}
		removed, left := 0, 0
		for _, m := range msgs {
			rest := make([]store.MailboxTarget, 0, len(m.Targets))
			for _, tg := range m.Targets {
				if tg.User != qe.User {
					rest = append(rest, tg)
				}
			}
			removed += len(m.Targets) - len(rest)
			left += len(rest) + len(m.Remote)
			if len(rest) != len(m.Targets) {
				m.Targets = rest
			}
		}
		if removed == 0 || left == 0 {
			return err
		}
		for _, m := range msgs {
			if !hasRecipients(m) && m != r.msg {
				d.removeBlob(m) // a copy for that user alone
			}
		}
		r.full = append(r.full, qe.User)
	}
}

// settleDelays are the pauses before re-running a group whose COMMIT
// outcome is unknown (a new connection usually answers at once).
var settleDelays = [...]time.Duration{0, 200 * time.Millisecond, time.Second}

// commitSettled is CommitMessages, run again with the same delivery keys
// while its outcome is unknown.
func (d *Deliverer) commitSettled(ctx context.Context, msgs []*store.NewMessage) error {
	err := d.store.CommitMessages(ctx, msgs)
	for _, wait := range settleDelays {
		if !errors.Is(err, store.ErrCommitUnknown) {
			return err
		}
		d.log.Warn("commit outcome unknown, running the group again", "messages", len(msgs), "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		err = d.store.CommitMessages(ctx, msgs)
	}
	return err
}

// nothingWritten reports errors after which the store has certainly
// rolled the group back, because of one of its messages.
func nothingWritten(err error) bool {
	return errors.Is(err, store.ErrQuotaExceeded) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrBodyStore)
}
