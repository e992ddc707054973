package connlimit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// ServeOptions is what a server gives Serve: its own log line attributes
// and the protocol parts, the refusal reply and the session.
type ServeOptions struct {
	// Log gets the "listening" line and accept failures; nil: discard.
	Log *slog.Logger
	// Listening holds the attributes of the "listening" line after addr
	// (port, TLS offers).
	Listening []any
	// Refuse answers a connection Admit turned away (in the protocol's
	// words), logs it and hands it to Tracker.Refuse.
	Refuse func(c net.Conn, why Reason)
	// Handle runs one admitted connection's session, on a goroutine of
	// its own; it must Close c.
	Handle func(c *Conn)
}

// Serve accepts connections on ln until Drain (or Shutdown) and then
// returns nil; a Serve after Drain closes ln at once. Accept errors other
// than a closed listener (EMFILE and friends) are logged and retried
// with a backoff.
func (t *Tracker) Serve(ln net.Listener, o ServeOptions) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t.mu.Lock()
	if t.draining {
		t.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	t.listeners[ln] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.listeners, ln)
		t.mu.Unlock()
	}()
	log.Info("listening", append([]any{"addr", ln.Addr().String()}, o.Listening...)...)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if t.Draining() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends pass; retry without spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "err", err, "retry_in", backoff.String())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		tc, why := t.Admit(c)
		if tc == nil {
			o.Refuse(c, why)
			continue
		}
		go o.Handle(tc)
	}
}

// Shutdown is a whole shutdown: Drain (which closes the listeners Serve
// is accepting on), then Wait until every connection is closed or ctx is
// done; at ctx's end CloseAll and wait for the sessions to notice. It
// returns ctx's error if the deadline cut sessions short.
func (t *Tracker) Shutdown(ctx context.Context) error {
	t.Drain()
	err := t.Wait(ctx)
	if err != nil {
		t.CloseAll()
		_ = t.Wait(context.Background()) // the sessions end once their sockets are gone
	}
	t.Stop()
	return err
}
