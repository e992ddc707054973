package imapd

import (
	"strings"
	"time"
)

// DefaultIdleNotifyInterval is how often a client in IDLE hears "* OK
// Still here", which keeps NAT and firewalls from dropping the
// connection (Mailu: dovecot imap_idle_notify_interval = 29 mins).
const DefaultIdleNotifyInterval = 29 * time.Minute

// maxIdleLine bounds what the client may send in IDLE ("DONE").
const maxIdleLine = 1024

type idleLine struct {
	line string
	err  error
}

// cmdIdle is IDLE (RFC 2177, RFC 9051 6.3.13): "+ idling", then untagged
// updates as soon as the store reports a change (Watch), until DONE.
// Only while the store is not Realtime (PostgreSQL with its LISTEN
// connection down) does it also poll ChangesSince every PollInterval, so
// an idle session costs no query while nothing changes (issue 16).
func cmdIdle(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	watch, stop := s.srv.opts.Store.Watch(s.user)
	defer stop()
	s.w.Continue("idling")
	if err := s.sync(true); err != nil {
		s.log.Warn("mailbox sync failed", "err", err)
	}
	if err := s.w.Flush(); err != nil {
		return errAnswered
	}

	s.arm()
	lines := make(chan idleLine, 1)
	s.readers.Go(func() {
		// The only reader of s.r until it sends; the session ends if
		// IDLE returns before (an error), so nothing reads after it.
		var b strings.Builder
		for {
			c, err := s.r.ReadByte()
			if err != nil {
				lines <- idleLine{err: err}
				return
			}
			if c == '\n' {
				lines <- idleLine{line: strings.TrimSuffix(b.String(), "\r")}
				return
			}
			if b.Len() < maxIdleLine {
				b.WriteByte(c)
			}
		}
	})
	var p idlePoll
	defer p.stop()
	notify := time.NewTicker(s.srv.opts.IdleNotifyInterval)
	defer notify.Stop()
	for {
		force := false
		select {
		case r := <-lines:
			if r.err != nil {
				return &readError{r.err}
			}
			if !strings.EqualFold(strings.TrimSpace(r.line), "DONE") {
				return bad("Expected DONE")
			}
			return ok("", "IDLE terminated")
		case <-watch:
		case <-p.tick(s.srv.realtime, s.srv.opts.PollInterval):
			force = true // other nodes' changes: the counter cannot tell
		case <-notify.C:
			s.w.Status("*", "OK", "", "Still here")
			s.arm() // the client is alive as long as it reads
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
		sync := s.syncChanges
		if s.notify != nil {
			// RFC 5465 4: IDLE sends what NOTIFY asked for.
			sync = s.notifyCheck
		}
		if err := sync(true, force); err != nil {
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			s.log.Warn("mailbox sync failed", "err", err)
		}
		if err := s.w.Flush(); err != nil {
			s.closing = true
			s.logout = "write failed"
			return errAnswered
		}
	}
}

// idlePoll is IDLE's poll ticker, running only while the store cannot
// tell about other nodes' changes. The store wakes every watcher when
// that turns, so checking at each wake-up is enough.
type idlePoll struct{ t *time.Ticker }

// tick returns the channel to wait on: nil (never ready) while realtime
// says the store is realtime, else the ticker's.
func (p *idlePoll) tick(realtime func() bool, every time.Duration) <-chan time.Time {
	if realtime() {
		p.stop()
		return nil
	}
	if p.t == nil {
		p.t = time.NewTicker(every)
	}
	return p.t.C
}

func (p *idlePoll) stop() {
	if p.t != nil {
		p.t.Stop()
		p.t = nil
	}
}
