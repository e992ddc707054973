package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/store"
)

// attempt makes one delivery attempt for a group and records what became
// of each entry.
func (w *Worker) attempt(ctx, attemptCtx context.Context, g *group) {
	first := g.items[0]
	actx, cancel := context.WithTimeout(attemptCtx, w.o.AttemptTimeout)
	defer cancel()

	msg := &Message{ID: first.MessageID, Sender: first.Sender, Size: first.Size,
		Body:       func() (io.ReadCloser, error) { return w.o.Store.OpenBody(actx, first.BodyID) },
		Ret:        first.DSNRet,
		EnvID:      first.DSNEnvID,
		RequireTLS: first.RequireTLS,
	}
	if !msg.RequireTLS {
		msg.TLSRequiredNo = tlsRequiredNo(msg.Body) // RFC 8689 4.1: ignored with REQUIRETLS
	}
	seen := map[string]bool{}
	for _, it := range g.items {
		if !seen[it.Recipient] {
			seen[it.Recipient] = true
			msg.Recipients = append(msg.Recipients, it.Recipient)
			if it.DSNNotify != "" || it.DSNORcpt != "" {
				if msg.DSN == nil {
					msg.DSN = map[string]store.RcptDSN{}
				}
				msg.DSN[it.Recipient] = store.RcptDSN{Notify: it.DSNNotify, ORcpt: it.DSNORcpt}
			}
		}
	}
	var results []RecipientResult
	var groupErr error
	if w.o.RewriteSender != nil && msg.Sender != "" {
		s, err := w.o.RewriteSender(actx, msg.Sender)
		if err != nil {
			groupErr = &DeliveryError{Message: "sender rewriting failed: " + err.Error()}
		} else {
			msg.Sender = s
		}
	}
	msg.UTF8 = !isASCII(msg.Sender)
	for _, r := range msg.Recipients {
		msg.UTF8 = msg.UTF8 || !isASCII(r)
	}
	if groupErr == nil {
		results, groupErr = w.o.Transport.Deliver(actx, msg)
	}
	now := w.o.Now()
	// Cancelled by shutdown or a lost lease (errLeaseLost): what did not
	// get through is left for the
	// next run or the lease holder, without counting an attempt.
	shutdown := attemptCtx.Err() != nil

	exact := map[string]RecipientResult{}
	folded := map[string]RecipientResult{}
	for _, r := range results {
		exact[r.Recipient] = r
		folded[strings.ToLower(r.Recipient)] = r
	}
	var ups []store.QueueUpdate
	var fails, delays, relayed []dsnRecipient
	var failItems, delayItems, abandoned []store.QueueItem
	deferIdx := map[int64]int{} // entry id -> index in ups
	for _, it := range g.items {
		res, ok := exact[it.Recipient]
		if !ok {
			res, ok = folded[strings.ToLower(it.Recipient)]
		}
		err := res.Err
		if !ok {
			err = groupErr
			if err == nil {
				err = &DeliveryError{Message: "the transport returned no result for this recipient"}
			}
		}
		if err == nil {
			ups = append(ups, store.QueueUpdate{ID: it.ID, Delete: true})
			w.logOutcome("delivered", it, nil, slog.String("remote", res.Remote), slog.String("reply", res.Reply),
				slog.Duration("delay", now.Sub(it.CreatedAt)))
			// RFC 3461 4.1: a next hop that took NOTIFY with the message
			// reports success itself; one without DSN leaves it to us.
			if notifies(it.DSNNotify, "SUCCESS") && res.NoDSN {
				relayed = append(relayed, dsnRecipient{Recipient: it.Recipient, ORcpt: it.DSNORcpt, LastAttempt: now,
					Err: &DeliveryError{Code: 250, Enhanced: "2.0.0", Remote: res.Remote, Message: strings.TrimPrefix(res.Reply, "250 ")}})
			}
			continue
		}
		if shutdown {
			abandoned = append(abandoned, it)
			continue
		}
		de := asDeliveryError(err)
		expired := !de.Permanent && now.Sub(it.CreatedAt) >= w.o.Lifetime
		if de.Permanent || expired {
			fails = append(fails, dsnRecipient{Recipient: it.Recipient, Err: de, Expired: expired, LastAttempt: now, ORcpt: it.DSNORcpt, notify: it.DSNNotify})
			failItems = append(failItems, it)
			continue
		}
		up := w.deferral(it, de, now)
		deferIdx[it.ID] = len(ups)
		ups = append(ups, up)
		w.logOutcome("deferred", it, de, slog.Time("retry", up.NextAttempt))
		if w.o.DelayWarning > 0 && !it.DelayNotified && it.Sender != "" && now.Sub(it.CreatedAt) >= w.o.DelayWarning &&
			(it.DSNNotify == "" || notifies(it.DSNNotify, "DELAY")) {
			delays = append(delays, dsnRecipient{Recipient: it.Recipient, Err: de, LastAttempt: now, ORcpt: it.DSNORcpt})
			delayItems = append(delayItems, it)
		}
	}

	// Bookkeeping goes on after shutdown: the attempt has happened.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer bcancel()
	if len(fails) > 0 {
		// The DSN is durable before the entries go: a crash in between
		// costs at worst a second DSN, never a lost one.
		note, err := w.bounce(bctx, first, fails, "", now)
		for i, it := range failItems {
			r := fails[i]
			if err != nil {
				// Keep the entries; the next attempt bounces again.
				w.log.Error("queue: DSN could not be handed on; entry kept", "msgid", it.MessageID,
					"rcpt", it.Recipient, "err", err)
				ups = append(ups, w.deferral(it, r.Err, now))
				continue
			}
			ups = append(ups, store.QueueUpdate{ID: it.ID, Delete: true})
			what := "bounced"
			if r.Expired {
				what = "expired"
			}
			w.logOutcome(what, it, r.Err, slog.String("status", r.status(false)), slog.String("dsn", note))
		}
	}
	if len(delays) > 0 {
		note, err := w.bounce(bctx, first, delays, "delayed", now)
		for i, it := range delayItems {
			if err != nil {
				w.log.Warn("queue: delay notice could not be handed on", "msgid", it.MessageID,
					"rcpt", it.Recipient, "err", err)
				continue
			}
			ups[deferIdx[it.ID]].DelayNotified = true
			w.logOutcome("delayed notice", it, delays[i].Err, slog.String("dsn", note))
		}
	}
	if len(relayed) > 0 {
		// The deliveries stand whatever becomes of the notice.
		if note, err := w.bounce(bctx, first, relayed, "relayed", now); err != nil {
			w.log.Warn("queue: success notice could not be handed on", "msgid", first.MessageID, "err", err)
		} else {
			w.log.Info("success notice", "msgid", first.MessageID, "rcpts", len(relayed), "dsn", note)
		}
	}
	if err := w.record(ups); err != nil {
		// The leases run out and the entries are tried again.
		w.log.Error("queue: outcomes not recorded", "msgid", first.MessageID, "entries", len(ups), "err", err)
	}
	w.releaseLeases(bctx, abandoned)
}

// deferral schedules the next attempt after a temporary failure; the
// last one falls on the expiry time, so an entry that never gets through
// is bounced on time.
func (w *Worker) deferral(it store.QueueItem, de *DeliveryError, now time.Time) store.QueueUpdate {
	next := now.Add(w.o.Backoff(it.Attempts + 1))
	if exp := it.CreatedAt.Add(w.o.Lifetime); next.After(exp) {
		next = exp
	}
	if !next.After(now) {
		next = now.Add(time.Second)
	}
	return store.QueueUpdate{ID: it.ID, NextAttempt: next, LastAttempt: now, LastError: de.Error(),
		LastCode: de.Code, LastStatus: de.Enhanced, LastRemote: de.Remote}
}

// asDeliveryError makes any Transport error a *DeliveryError. A
// *smtp.SMTPError is permanent when it is a 5xx; any other error is
// temporary (a network error is never a reason to bounce at once).
func asDeliveryError(err error) *DeliveryError {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de
	}
	// A bare SMTP reply from go-smtp's client: 5xx is permanent.
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		de := &DeliveryError{Permanent: se.Code >= 500, Code: se.Code, Message: se.Message}
		if ec := se.EnhancedCode; ec[0] > 0 {
			de.Enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
		}
		return de
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &DeliveryError{Message: "delivery attempt timed out"}
	}
	return &DeliveryError{Message: err.Error()}
}

// logOutcome writes the one INFO record of an outcome.
func (w *Worker) logOutcome(msg string, it store.QueueItem, de *DeliveryError, extra ...slog.Attr) {
	attrs := []slog.Attr{
		slog.String("msgid", it.MessageID),
		slog.String("from", it.Sender),
		slog.String("rcpt", it.Recipient),
		slog.Int("attempts", it.Attempts+1),
	}
	if de != nil {
		attrs = append(attrs, slog.String("remote", de.Remote), slog.String("reply", reply(de)))
	}
	attrs = append(attrs, extra...)
	w.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// bounce sends one DSN about rcpts of the message of it, unless no DSN
// may be sent for that message. It returns what became of the DSN, for
// the log.
func (w *Worker) bounce(ctx context.Context, it store.QueueItem, rcpts []dsnRecipient, kind string, now time.Time) (string, error) {
	// RFC 5321 6.1, RFC 3464 1: never a DSN about a message with the null
	// sender (DSNs themselves have it), so bounces cannot loop.
	if it.Sender == "" {
		return "none (null sender)", nil
	}
	// RFC 3461 4.1: NOTIFY=NEVER, or a list without FAILURE, asks for no
	// failure notice (the entries are dropped all the same).
	if kind == "" {
		var keep []dsnRecipient
		for _, r := range rcpts {
			if r.notify == "" || notifies(r.notify, "FAILURE") {
				keep = append(keep, r)
			}
		}
		if len(keep) == 0 {
			return "none (NOTIFY=" + rcpts[0].notify + ")", nil
		}
		rcpts = keep
	}
	hdr, err := w.headers(ctx, it.BodyID)
	if err != nil {
		w.log.Warn("queue: original headers unreadable; DSN sent without them", "msgid", it.MessageID, "err", err)
	}
	if isDSN(hdr) {
		return "none (the message is a DSN)", nil
	}
	d := &dsn{
		Hostname:   w.o.Hostname,
		ID:         w.o.NewID(),
		MessageID:  it.MessageID,
		Sender:     it.Sender,
		Arrival:    it.CreatedAt,
		Date:       now,
		Delayed:    kind == "delayed",
		EnvID:      it.DSNEnvID,
		RetryUntil: it.CreatedAt.Add(w.o.Lifetime),
		Lifetime:   w.o.Lifetime,
		Headers:    hdr,
		Recipients: rcpts,
	}
	if kind == "relayed" {
		d.Success = "relayed"
	}
	// RFC 3461 4.3: RET asks for the content in failure notices only.
	// RFC 8689 5: the DSN travels without REQUIRETLS, so the content of a
	// message that demanded it stays out; its headers only.
	if kind == "" && it.DSNRet == "FULL" && it.Size <= MaxDSNFull && !it.RequireTLS {
		// RFC 3461 4.3: the whole message, up to a size (Postfix:
		// bounce_size_limit); larger ones get their headers only.
		if full, err := w.full(ctx, it.BodyID); err == nil {
			d.Full = full
		} else {
			w.log.Warn("queue: original message unreadable; DSN carries its headers", "msgid", it.MessageID, "err", err)
		}
	}
	if err := w.o.Bouncer.Bounce(ctx, it.Sender, d.Build()); err != nil {
		return "", err
	}
	return "sent to " + it.Sender, nil
}

func (w *Worker) headers(ctx context.Context, bodyID int64) ([]byte, error) {
	r, err := w.o.Store.OpenBody(ctx, bodyID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readHeaders(r, maxDSNHeaders)
}

// MaxDSNFull is the largest message a RET=FULL DSN returns whole.
const MaxDSNFull = 1 << 20

func (w *Worker) full(ctx context.Context, bodyID int64) ([]byte, error) {
	r, err := w.o.Store.OpenBody(ctx, bodyID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, MaxDSNFull+1))
}

// notifies reports whether an RFC 3461 NOTIFY list names what.
func notifies(notify, what string) bool {
	for _, n := range strings.Split(notify, ",") {
		if strings.EqualFold(strings.TrimSpace(n), what) {
			return true
		}
	}
	return false
}
