// Package fetch polls users' remote mailboxes (Mailu's fetchmail): every
// FETCHMAIL_DELAY each account in the store is read over POP3 or IMAP,
// with TLS when the account says so, and every message not seen before is
// handed to the normal local delivery (app wires inbound, so the spam
// checks, the user's spam settings, forwarding and auto-reply all apply).
// What was delivered is remembered per account in the store (POP3 UIDL,
// IMAP folder/UIDVALIDITY/UID), in the transaction that stores the
// message, so a restart, even one between a delivery and the poller's
// next step, fetches nothing twice; the remote copy is deleted
// afterwards unless the account keeps it.
package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/petrelmail/petrel/internal/store"
)

// Sink delivers one fetched message to f.UserEmail. It must record
// (f.ID, key) as seen in the transaction that stores the message
// (store.NewMessage.Fetched) and store nothing when the key is recorded
// already: that makes fetching exactly once, even when the process dies
// right after the delivery.
type Sink interface {
	Deliver(ctx context.Context, f *store.Fetch, key string, msg []byte) error
}

// ErrRejected is what a Sink returns for a message refused for good (a
// virus, spam above the reject score). Like fetchmail's "antispam"
// replies (Mailu: 501, 504, 550, 553, 554) the message counts as
// fetched: it is not tried again, and deleted unless the account keeps
// mail.
var ErrRejected = errors.New("fetch: message refused by the inbound checks")

// Defaults.
const (
	DefaultDelay   = 600 * time.Second // Mailu FETCHMAIL_DELAY
	DefaultTimeout = 60 * time.Second
	maxParallel    = 4
	errorMax       = 300 // characters of an error kept for the user
)

// Options configures a Poller.
type Options struct {
	Store  store.Fetches // required
	Sink   Sink          // required
	Sealer *Sealer       // required: opens the stored passwords
	Delay  time.Duration // FETCHMAIL_DELAY; default DefaultDelay
	// Owner names this node in the store's leases (hostname and pid).
	Owner string
	// TLSConfig is the base for TLS connections (RootCAs); ServerName is
	// set per account. nil: the system roots.
	TLSConfig *tls.Config
	Timeout   time.Duration // per network step; default DefaultTimeout
	MaxSize   int64         // MESSAGE_SIZE_LIMIT: larger messages stay on the server; 0: none
	Logger    *slog.Logger
	Now       func() time.Time
}

// Poller fetches every due account.
type Poller struct {
	o   Options
	log *slog.Logger
}

// New returns a Poller; Run starts it.
func New(o Options) *Poller {
	if o.Delay <= 0 {
		o.Delay = DefaultDelay
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{o: o, log: o.Logger}
}

// Run polls until ctx ends. It looks for due accounts every tenth of
// the delay (at most every 30 s), so a new account is fetched soon and
// the delay between two polls of one account stays FETCHMAIL_DELAY.
func (p *Poller) Run(ctx context.Context) {
	tick := min(p.o.Delay/10, 30*time.Second)
	tick = max(tick, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if err := p.PollDue(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("fetched accounts not polled", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PollDue polls every account that is due now and returns when all are
// done. An account's own failure is recorded on it, not returned.
func (p *Poller) PollDue(ctx context.Context) error {
	all, err := p.o.Store.ListFetches(ctx, "")
	if err != nil {
		return err
	}
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i := range all {
		f := &all[i]
		now := p.o.Now()
		ok, err := p.o.Store.ClaimFetch(ctx, f.ID, p.o.Owner, now, now.Add(-p.o.Delay), now.Add(p.o.Delay+time.Hour))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.pollOne(ctx, f)
		}()
	}
	wg.Wait()
	return nil
}

// pollOne polls one claimed account and records the outcome.
func (p *Poller) pollOne(ctx context.Context, f *store.Fetch) {
	log := p.log.With("fetch_id", f.ID, "user", f.UserEmail, "remote", f.Protocol+"://"+net.JoinHostPort(f.Host, strconv.Itoa(f.Port)))
	start := p.o.Now()
	n, err := p.poll(ctx, f, log)
	text := ""
	if err != nil {
		text = firstLine(err.Error())
		log.Warn("fetch failed", "fetched", n, "err", text)
	} else {
		log.Info("fetched", "fetched", n, "ms", p.o.Now().Sub(start).Milliseconds())
	}
	// The outcome is recorded even when ctx ended (shutdown), so the
	// lease does not outlive the process.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.o.Store.FinishFetch(fctx, f.ID, p.o.Now(), text); err != nil {
		log.Warn("fetch outcome not recorded", "err", err)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > errorMax {
		s = s[:errorMax]
	}
	return s
}

func (p *Poller) tlsFor(f *store.Fetch) *tls.Config {
	if !f.TLS {
		return nil // Mailu: "ssl" only when tls is set, else no TLS at all
	}
	var tc *tls.Config
	if p.o.TLSConfig != nil {
		tc = p.o.TLSConfig.Clone()
	} else {
		tc = &tls.Config{}
	}
	tc.ServerName = f.Host // Mailu: --sslcertck, the certificate is checked
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	return tc
}

// poll fetches f's new messages and returns how many were delivered.
func (p *Poller) poll(ctx context.Context, f *store.Fetch, log *slog.Logger) (int, error) {
	pass, err := p.o.Sealer.Open(f.Password)
	if err != nil {
		return 0, err
	}
	seenList, err := p.o.Store.FetchSeen(ctx, f.ID)
	if err != nil {
		return 0, err
	}
	seen := make(map[string]bool, len(seenList))
	for _, k := range seenList {
		seen[k] = true
	}
	addr := net.JoinHostPort(f.Host, strconv.Itoa(f.Port))
	var n int
	var present []string
	switch f.Protocol {
	case "pop3":
		n, present, err = p.pollPOP3(ctx, f, addr, pass, seen, log)
	case "imap":
		n, present, err = p.pollIMAP(ctx, f, addr, pass, seen, log)
	default:
		return 0, fmt.Errorf("fetch: unknown protocol %q", f.Protocol)
	}
	if err != nil {
		return n, err
	}
	// What is no longer on the server need not be remembered.
	on := make(map[string]bool, len(present))
	for _, k := range present {
		on[k] = true
	}
	var gone []string
	for _, k := range seenList {
		if !on[k] {
			gone = append(gone, k)
		}
	}
	return n, p.o.Store.ForgetFetchSeen(ctx, f.ID, gone)
}

// take delivers one message and remembers it. A message refused for good
// is remembered too (and so deleted unless kept); any other failure
// stops the poll, to be tried again next time. The Sink records a
// stored message's key itself; recording it here again is a no-op then,
// and covers what stored nothing (refused, or discarded by a script).
func (p *Poller) take(ctx context.Context, f *store.Fetch, key string, msg []byte, log *slog.Logger) (delivered bool, err error) {
	err = p.o.Sink.Deliver(ctx, f, key, msg)
	switch {
	case errors.Is(err, ErrRejected):
		log.Info("fetched message refused", "key", key, "err", err.Error())
	case err != nil:
		return false, err
	}
	if err := p.o.Store.AddFetchSeen(ctx, f.ID, key); err != nil {
		return false, err
	}
	return err == nil, nil
}

func (p *Poller) pollPOP3(ctx context.Context, f *store.Fetch, addr, pass string, seen map[string]bool, log *slog.Logger) (int, []string, error) {
	c, err := dialPOP3(ctx, addr, p.tlsFor(f), p.o.Timeout)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	if err := c.login(f.Username, pass); err != nil {
		return 0, nil, err
	}
	msgs, err := c.list()
	if err != nil {
		return 0, nil, err
	}
	n := 0
	present := make([]string, 0, len(msgs))
	for _, m := range msgs {
		present = append(present, m.uid)
		if seen[m.uid] {
			if !f.Keep {
				// Delivered before, but the DELE did not happen then.
				if err := c.dele(m.num); err != nil {
					return n, nil, err
				}
			}
			continue
		}
		if p.o.MaxSize > 0 && m.size > p.o.MaxSize {
			log.Warn("fetched message too large; left on the server", "key", m.uid, "size", m.size)
			continue
		}
		limit := int64(0) // no MESSAGE_SIZE_LIMIT: no limit
		if p.o.MaxSize > 0 {
			limit = p.o.MaxSize + 1024 // LIST sizes may be estimates (RFC 1939 5)
		}
		body, err := c.retr(m.num, limit)
		if err != nil {
			return n, nil, err
		}
		ok, err := p.take(ctx, f, m.uid, body, log)
		if err != nil {
			return n, nil, err
		}
		if ok {
			n++
		}
		if !f.Keep {
			if err := c.dele(m.num); err != nil {
				return n, nil, err
			}
		}
	}
	// RFC 1939 6: the DELEs take effect at QUIT.
	if err := c.quit(); err != nil {
		return n, nil, err
	}
	if !f.Keep {
		present = nil // deleted at QUIT: nothing to remember
	}
	return n, present, nil
}

func (p *Poller) pollIMAP(ctx context.Context, f *store.Fetch, addr, pass string, seen map[string]bool, log *slog.Logger) (int, []string, error) {
	s, err := dialIMAP(ctx, addr, p.tlsFor(f), p.o.Timeout)
	if err != nil {
		return 0, nil, err
	}
	defer s.Close()
	if err := s.login(f.Username, pass); err != nil {
		return 0, nil, err
	}
	folders := f.Folders
	if len(folders) == 0 {
		folders = []string{"INBOX"} // Mailu: no folders means INBOX
	}
	n := 0
	var present []string
	for _, folder := range folders {
		validity, msgs, err := s.open(folder)
		if err != nil {
			return n, nil, err
		}
		var remove []imap.UID
		for _, m := range msgs {
			key := imapKey(folder, validity, m.uid)
			if seen[key] {
				if !f.Keep {
					remove = append(remove, m.uid)
				} else {
					present = append(present, key)
				}
				continue
			}
			if p.o.MaxSize > 0 && m.size > p.o.MaxSize {
				log.Warn("fetched message too large; left on the server", "key", key, "size", m.size)
				continue
			}
			body, err := s.body(m.uid)
			if errors.Is(err, errGone) {
				continue
			}
			if err != nil {
				return n, nil, err
			}
			ok, err := p.take(ctx, f, key, body, log)
			if err != nil {
				return n, nil, err
			}
			if ok {
				n++
			}
			if f.Keep {
				present = append(present, key)
			} else {
				remove = append(remove, m.uid)
			}
		}
		if err := s.remove(remove); err != nil {
			return n, nil, err
		}
	}
	s.logout()
	return n, present, nil
}
