package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/admin/web"
	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/store"
)

// newFetcher builds the poller of fetched accounts (FETCHMAIL_ENABLED).
// The sealing key is derived from SECRET_KEY, so every node sharing the
// database opens the passwords another node stored.
func (p *parts) newFetcher() (*fetch.Poller, error) {
	sealer := p.fetchSealer
	if !p.cfg.FetchmailEnabled {
		return nil, nil
	}
	host, _ := os.Hostname()
	return fetch.New(fetch.Options{
		Store:   p.store,
		Sink:    fetchSink{p},
		Sealer:  sealer,
		Delay:   p.cfg.FetchmailDelay,
		Owner:   fmt.Sprintf("%s/%d", host, os.Getpid()),
		MaxSize: p.cfg.MessageSizeLimit,
		Logger:  p.log.With("part", "fetch"),
	}), nil
}

// fetchSink delivers a fetched message as port 25 would a message to the
// user: resolved like a RCPT (forwarding, auto-reply and the user's spam
// settings apply), checked by the content filters when the account asks
// for a scan (Mailu: scan=true injects through port 25), and stored by
// the deliverer (which adds Return-Path).
type fetchSink struct{ p *parts }

func (s fetchSink) Deliver(ctx context.Context, f *store.Fetch, key string, msg []byte) error {
	p := s.p
	route, err := p.router.Resolve(ctx, f.UserEmail)
	if err != nil {
		return fmt.Errorf("fetch: resolve %s: %w", f.UserEmail, err)
	}
	now := time.Now()
	id := p.connIDs.Next()
	sender := returnPathOf(msg)
	env := &inbound.Envelope{ID: id, Sender: sender, Routes: []inbound.Route{route}, ReceivedAt: now,
		Fetched: &store.FetchedKey{FetchID: f.ID, Key: key}}
	// The trace fetchmail writes (RFC 5321 4.4 asks every hop for one).
	proto := strings.ToUpper(f.Protocol)
	if f.TLS {
		proto += "S"
	}
	received := fmt.Sprintf("Received: from %s\r\n\tby %s (Petrel) with %s id %s\r\n\tfor <%s>; %s\r\n",
		f.Host, p.cfg.Hostnames[0], proto, id, f.UserEmail, now.Format(time.RFC1123Z))

	var verdict filter.Verdict
	if f.Scan && p.checker != nil {
		full := append([]byte(received), msg...)
		fm := &filter.Message{
			ID: id, MailFrom: sender, Rcpts: []string{f.UserEmail}, Users: route.Mailboxes,
			// Mailu: fetchmail injects from inside the stack, a local
			// network to rspamd: no greylisting, no DNSBL on its address.
			Trusted: true, Size: int64(len(full)),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(full)), nil },
		}
		if verdict, err = p.checker.Check(ctx, fm); err != nil {
			return fmt.Errorf("fetch: content checks: %w", err)
		}
		switch verdict.Action {
		case filter.Reject:
			return fmt.Errorf("%w: %s", fetch.ErrRejected, verdict.Reason)
		case filter.TempFail:
			return fmt.Errorf("fetch: content checks deferred the message: %s", verdict.Reason)
		}
		env.Scored, env.SpamScore, env.UserScores = verdict.Scored, verdict.Score, verdict.UserScores
	}

	sp, err := p.deliverer.NewSpool()
	if err != nil {
		return err
	}
	defer sp.Abort()
	for _, h := range verdict.AddHeaders {
		if !fieldNameOK(h.Name) || strings.ContainsAny(h.Value, "\r\n") {
			continue
		}
		if _, err := io.WriteString(sp, h.Name+": "+h.Value+"\r\n"); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(sp, received); err != nil {
		return err
	}
	if _, err := sp.Write(msg); err != nil {
		return err
	}
	return (delivererAdapter{p.deliverer, p.queue}).Deliver(ctx, env, sp)
}

// returnPathOf is the reverse-path the remote server recorded (its
// Return-Path field), "" when there is none: fetchmail's envelope sender.
func returnPathOf(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	rp := strings.TrimSpace(m.Header.Get("Return-Path"))
	rp = strings.TrimSuffix(strings.TrimPrefix(rp, "<"), ">")
	if strings.ContainsAny(rp, " <>\t") {
		return ""
	}
	return rp
}

// fieldNameOK is RFC 5322 2.2's field-name.
func fieldNameOK(n string) bool {
	if n == "" || len(n) > 76 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] > '~' || n[i] == ':' {
			return false
		}
	}
	return true
}

// fetchPages turns on the web UI's fetched accounts pages when
// FETCHMAIL_ENABLED (Mailu shows them only then).
func (p *parts) fetchPages() *web.Fetches {
	if !p.cfg.FetchmailEnabled || p.fetchSealer == nil {
		return nil
	}
	return &web.Fetches{Store: p.store, Seal: p.fetchSealer.Seal}
}
