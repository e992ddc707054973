package inbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/sieve"
	"github.com/petrelmail/petrel/internal/store"
)

// SieveScripts reads a user's active Sieve script; store.ErrNotFound when
// the user has none. The SQL store implements it (ManageSieve's storage).
type SieveScripts interface {
	SieveActiveScript(ctx context.Context, email string) (name string, script []byte, err error)
}

// MailboxLookup tells whether a user's mailbox exists (store.IMAP).
type MailboxLookup interface {
	GetMailbox(ctx context.Context, user, name string) (*store.Mailbox, error)
}

// SieveOptions turns on users' Sieve scripts at local delivery. Mailu's
// global rules (spam into Junk, the reply_* auto-reply, forwarding) stay
// native and come first: a copy they filed into Junk runs no script, as
// Mailu's sieve_before script stops there.
type SieveOptions struct {
	Scripts SieveScripts
	// Mailboxes answers fileinto without :create and mailboxexists; nil:
	// every mailbox exists (the store creates missing ones).
	Mailboxes MailboxLookup
	// Router resolves redirect addresses: local users get the copy in
	// their INBOX (without running their own script, so two scripts
	// cannot redirect to each other forever), others go to the queue.
	Router RecipientResolver
	// Reject sends the refusal of a reject/ereject to env.Sender, as a
	// DSN (RFC 5429 2.1: a DSN when the SMTP transaction is over); never
	// called for the null sender. nil: the refusal is only logged.
	Reject func(ctx context.Context, env *Envelope, user, reason string, headers []byte) error
	// Queued is called after redirects went into the outbound queue;
	// nil: the queue finds them at its next poll.
	Queued func()
	// CacheTTL is how long a user's script (or its absence) is trusted
	// without asking the store again; default DefaultSieveCacheTTL.
	CacheTTL time.Duration
}

// Sieve limits.
const (
	// DefaultSieveCacheTTL: a burst of mail to one user costs one store
	// look-up; a script changed through ManageSieve on any node applies
	// within this time. The compiled script is kept while its name and
	// hash are unchanged, so a refresh does not re-parse.
	DefaultSieveCacheTTL = time.Second
	// maxSieveCache bounds the per-user cache; past it, expired entries go.
	maxSieveCache = 50_000
	// maxRedirectHops: a message with this many Received fields is not
	// redirected again (RFC 5228 4.2 loop control; Postfix refuses at 50).
	maxRedirectHops = 30
	// maxSieveRedirects bounds redirect copies of one message over all
	// its recipients' scripts.
	maxSieveRedirects = 20
)

// sieveHost runs scripts for a Deliverer and carries out their actions.
type sieveHost struct {
	opts SieveOptions
	d    *Deliverer
	log  *slog.Logger

	mu    sync.Mutex
	cache map[string]*cachedScript
}

// cachedScript is one user's active script as last read.
type cachedScript struct {
	read   time.Time
	name   string // "" when the user has no active script
	sum    [32]byte
	script *sieve.Script
	err    error // the script did not compile
}

func newSieveHost(d *Deliverer, opts SieveOptions) *sieveHost {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = DefaultSieveCacheTTL
	}
	return &sieveHost{opts: opts, d: d, log: d.log, cache: map[string]*cachedScript{}}
}

// forget drops user's cached script ("" drops all), so the next delivery
// reads it again: the store announced a change (on any node).
func (h *sieveHost) forget(user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if user == "" {
		clear(h.cache)
		return
	}
	delete(h.cache, user)
}

// script returns user's compiled active script, nil when there is none.
func (h *sieveHost) script(ctx context.Context, user string) (*cachedScript, error) {
	now := h.d.now()
	h.mu.Lock()
	c := h.cache[user]
	h.mu.Unlock()
	if c != nil && now.Sub(c.read) < h.opts.CacheTTL && !c.read.After(now) {
		return c, nil
	}
	name, src, err := h.opts.Scripts.SieveActiveScript(ctx, user)
	var fresh *cachedScript
	switch {
	case errors.Is(err, store.ErrNotFound):
		fresh = &cachedScript{read: now}
	case err != nil:
		return nil, err
	default:
		sum := sha256.Sum256(src)
		if c != nil && c.name == name && c.sum == sum {
			// Unchanged: keep the compiled script, only the time moves.
			fresh = &cachedScript{read: now, name: name, sum: sum, script: c.script, err: c.err}
		} else {
			s, cerr := sieve.Compile(src)
			fresh = &cachedScript{read: now, name: name, sum: sum, script: s, err: cerr}
		}
	}
	h.mu.Lock()
	if len(h.cache) >= maxSieveCache {
		for k, v := range h.cache {
			if now.Sub(v.read) >= h.opts.CacheTTL {
				delete(h.cache, k)
			}
		}
		if len(h.cache) >= maxSieveCache {
			clear(h.cache)
		}
	}
	h.cache[user] = fresh
	h.mu.Unlock()
	return fresh, nil
}

// sieveOutcome is what the scripts made of one message: the main message
// (targets and remote rewritten in place), per-user copies with their own
// header (editheader, or the X-Sieve-Error of a failed run), and the
// replies and refusals to send once the message is committed.
type sieveOutcome struct {
	extra  []*store.NewMessage
	after  []func(ctx context.Context)
	queued bool // redirects went to the queue
}

// apply runs the active script of every user whose copy is headed for
// INBOX. It never fails the delivery: whatever goes wrong for one user
// keeps that user's copy in INBOX (with an X-Sieve-Error field when the
// script failed) and is logged.
func (h *sieveHost) apply(ctx context.Context, env *Envelope, msg *store.NewMessage) sieveOutcome {
	var out sieveOutcome
	var src *sieveSource
	targets := make([]store.MailboxTarget, 0, len(msg.Targets))
	remote := newAddrSet(msg.Remote)
	redirects := 0
	for _, t := range msg.Targets {
		if t.Mailbox != "INBOX" {
			targets = append(targets, t) // filed by Mailu's global rules
			continue
		}
		cs, err := h.script(ctx, t.User)
		if err != nil {
			h.log.Warn("sieve script not read, message kept in INBOX", "msgid", env.ID, "user", t.User, "err", err)
			targets = append(targets, t)
			continue
		}
		if cs.name == "" {
			targets = append(targets, t)
			continue
		}
		if src == nil {
			src = &sieveSource{d: h.d, msg: msg}
		}
		log := h.log.With("msgid", env.ID, "user", t.User, "script", cs.name)
		res, err := h.run(ctx, env, t.User, cs, src)
		if err == nil && res.redirects+redirects > maxSieveRedirects {
			err = fmt.Errorf("too many redirects for one message (more than %d)", maxSieveRedirects)
		}
		if err != nil {
			// The failure is the user's to see: their copy carries it.
			log.Warn("sieve script failed, message kept in INBOX", "err", err)
			hdr, herr := src.header()
			if herr != nil {
				targets = append(targets, t)
				continue
			}
			v, verr := h.variant(msg, append(sieve.ErrorHeader(cs.name, err), hdr...), src)
			if verr != nil {
				log.Warn("cannot add the error field, copy kept without it", "err", verr)
				targets = append(targets, t)
				continue
			}
			v.Targets = []store.MailboxTarget{t}
			out.extra = append(out.extra, v)
			continue
		}
		redirects += res.redirects
		log.Debug("sieve", "actions", res.summary) // the delivery line is the message's INFO record
		if res.edited != nil && (len(res.targets) > 0 || len(res.remote.list) > 0) {
			v, verr := h.variant(msg, res.edited, src)
			if verr == nil {
				v.Targets, v.Remote = res.targets, res.remote.list
				out.extra = append(out.extra, v)
				out.after = append(out.after, res.after...)
				continue
			}
			log.Warn("cannot store the edited header, copy kept as received", "err", verr)
		}
		targets = append(targets, res.targets...)
		for _, r := range res.remote.list {
			remote.add(r)
		}
		out.after = append(out.after, res.after...)
	}
	msg.Targets = dedupeTargets(targets)
	out.queued = len(remote.list) > len(msg.Remote)
	for _, x := range out.extra {
		out.queued = out.queued || len(x.Remote) > 0
	}
	msg.Remote = remote.list
	if out.queued && h.opts.Queued != nil {
		out.after = append(out.after, func(context.Context) { h.opts.Queued() })
	}
	return out
}

// userResult is one user's run, turned into targets and queue entries.
type userResult struct {
	targets   []store.MailboxTarget
	remote    *addrSet
	edited    []byte // the new header block, nil when unchanged
	after     []func(ctx context.Context)
	redirects int
	summary   []string
}

func (h *sieveHost) run(ctx context.Context, env *Envelope, user string, cs *cachedScript, src *sieveSource) (*userResult, error) {
	if cs.err != nil {
		return nil, fmt.Errorf("script does not compile: %w", cs.err)
	}
	hdr, err := src.header()
	if err != nil {
		return nil, err
	}
	in := sieve.Input{
		From:   env.Sender,
		To:     envelopeTo(env, user),
		Auth:   env.AuthUser,
		Header: hdr,
		Size:   int(src.msg.Size),
		Body:   src.body,
		Spam:   spamFor(env, user),
	}
	if h.opts.Mailboxes != nil {
		in.MailboxExists = func(ctx context.Context, name string) (bool, error) {
			return h.mailboxExists(ctx, user, name)
		}
	}
	res, err := cs.script.Run(ctx, in)
	if err != nil {
		return nil, err
	}
	ur := &userResult{remote: newAddrSet(nil)}
	flags := res.Flags
	if res.Keep {
		ur.targets = append(ur.targets, store.MailboxTarget{User: user, Mailbox: "INBOX", Flags: flags})
		ur.summary = append(ur.summary, "keep")
	}
	for _, mb := range res.FileInto {
		if !res.Create[mb] && h.opts.Mailboxes != nil {
			ok, err := h.mailboxExists(ctx, user, mb)
			if err != nil {
				return nil, err
			}
			if !ok {
				// RFC 5490 3.2: without :create, a missing mailbox is an error.
				return nil, fmt.Errorf("fileinto: mailbox %q does not exist (use :create)", mb)
			}
		}
		ur.targets = append(ur.targets, store.MailboxTarget{User: user, Mailbox: mb, Flags: flags})
		ur.summary = append(ur.summary, "fileinto "+mb)
	}
	if len(res.Redirect) > 0 {
		if err := h.redirect(ctx, env, src, res.Redirect, ur); err != nil {
			return nil, err
		}
	}
	if len(res.Edits) > 0 {
		ur.edited = sieve.EditHeader(hdr, res.Edits)
		ur.summary = append(ur.summary, "editheader")
	}
	if res.Reject != nil {
		ur.summary = append(ur.summary, "reject")
		ur.after = append(ur.after, h.rejectAction(env, user, res.Reject.Reason, hdr))
	}
	if res.Vacation != nil && h.d.reply != nil {
		ur.summary = append(ur.summary, "vacation")
		ur.after = append(ur.after, h.d.reply.vacationAction(env, user, in.To, hdr, res.Vacation))
	}
	if len(ur.targets) == 0 && len(ur.remote.list) == 0 && res.Reject == nil {
		ur.summary = append(ur.summary, "discard")
	}
	return ur, nil
}

// redirect resolves redirect addresses (RFC 5228 4.2): local users get a
// copy in INBOX (spam rules apply, their own script does not run); other
// addresses go to the queue with the original envelope sender, which the
// queue rewrites with SRS when it is not ours (as forwarding does).
func (h *sieveHost) redirect(ctx context.Context, env *Envelope, src *sieveSource, addrs []string, ur *userResult) error {
	hdr, _ := src.header()
	if countField(hdr, "Received") >= maxRedirectHops {
		return fmt.Errorf("redirect: message has passed %d hops, a loop", maxRedirectHops)
	}
	if h.opts.Router == nil {
		return errors.New("redirect is not available")
	}
	for _, a := range addrs {
		route, err := h.opts.Router.Resolve(ctx, a)
		if err != nil {
			return fmt.Errorf("redirect to %s: %w", a, err)
		}
		for _, mb := range route.Mailboxes {
			ur.targets = append(ur.targets, junkTarget(env, mb, route.Spam[mb]))
		}
		for _, r := range route.Remote {
			ur.remote.add(r)
		}
		ur.redirects++
		ur.summary = append(ur.summary, "redirect "+a)
	}
	return nil
}

func (h *sieveHost) mailboxExists(ctx context.Context, user, name string) (bool, error) {
	// Every user has the default mailboxes: the store makes them with the
	// first delivery, which may be this one (Mailu: auto-created).
	for _, d := range store.DefaultMailboxes {
		if name == d.Name || strings.EqualFold(name, "INBOX") {
			return true, nil
		}
	}
	_, err := h.opts.Mailboxes.GetMailbox(ctx, user, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// rejectAction refuses the message to its sender after the commit (RFC
// 5429 2.1); the null sender is never answered (2.1: "MUST NOT").
func (h *sieveHost) rejectAction(env *Envelope, user, reason string, hdr []byte) func(ctx context.Context) {
	return func(ctx context.Context) {
		h.log.Info("rejected", "msgid", env.ID, "from", env.Sender, "user", user, "result", "sieve reject", "reason", reason)
		if env.Sender == "" || h.opts.Reject == nil {
			return
		}
		if err := h.opts.Reject(ctx, env, user, reason, hdr); err != nil {
			h.log.Warn("sieve rejection not sent", "msgid", env.ID, "user", user, "err", err)
		}
	}
}

// variant makes a copy of msg's body with a new header block, for one
// user's mailboxes.
func (h *sieveHost) variant(msg *store.NewMessage, header []byte, src *sieveSource) (*store.NewMessage, error) {
	rest, err := src.rawBody()
	if err != nil {
		return nil, err
	}
	defer rest.Close()
	sp, err := h.d.NewSpool()
	if err != nil {
		return nil, err
	}
	defer sp.Abort()
	if _, err := sp.Write(returnPathFirst(header)); err != nil {
		return nil, err
	}
	if _, err := io.Copy(sp, rest); err != nil {
		return nil, err
	}
	// RFC 8689: a redirected copy keeps the sender's REQUIRETLS.
	v := &store.NewMessage{ID: msg.ID, Sender: msg.Sender, ReceivedAt: msg.ReceivedAt,
		DeliveryKey: store.NewDeliveryKey(), Size: sp.Size(), RequireTLS: msg.RequireTLS}
	if v.Body, v.BlobName, err = sp.finish(); err != nil {
		return nil, err
	}
	return v, nil
}

// returnPathFirst moves the Return-Path field local delivery put on top
// back there after fields a script or its failure added above it: the
// delivery's trace comes first (RFC 5321 4.4).
func returnPathFirst(h []byte) []byte {
	const name = "return-path:"
	for i := 0; i < len(h); {
		end := bytes.IndexByte(h[i:], '\n')
		if end < 0 {
			break
		}
		line := h[i : i+end+1]
		if len(line) >= len(name) && strings.EqualFold(string(line[:len(name)]), name) {
			if i == 0 {
				return h
			}
			out := make([]byte, 0, len(h))
			out = append(out, line...)
			out = append(out, h[:i]...)
			return append(out, h[i+end+1:]...)
		}
		i += end + 1
	}
	return h
}

// sieveSource reads one committed message body for the scripts, once.
type sieveSource struct {
	d       *Deliverer
	msg     *store.NewMessage
	hdr     []byte
	hdrErr  error
	hdrRead bool
}

func (s *sieveSource) open() (io.ReadCloser, error) {
	switch {
	case s.msg.Body != nil:
		return io.NopCloser(bytes.NewReader(s.msg.Body)), nil
	case s.msg.BlobName != "" && s.d.blobs != nil:
		return s.d.blobs.Open(s.msg.BlobName)
	}
	return nil, errors.New("message has no body")
}

// header returns the header block, its final empty line excluded.
func (s *sieveSource) header() ([]byte, error) {
	if s.hdrRead {
		return s.hdr, s.hdrErr
	}
	s.hdrRead = true
	r, err := s.open()
	if err != nil {
		s.hdrErr = err
		return nil, err
	}
	defer r.Close()
	br := bufio.NewReader(io.LimitReader(r, maxReplyHeader))
	var b bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 && line[len(line)-1] == '\n' {
			break
		}
		b.Write(line)
		if err != nil {
			break
		}
	}
	s.hdr = b.Bytes()
	return s.hdr, nil
}

// rawBody reads everything after the header block, the empty line too;
// the caller closes it.
func (s *sieveSource) rawBody() (io.ReadCloser, error) {
	hdr, err := s.header()
	if err != nil {
		return nil, err
	}
	r, err := s.open()
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, r, int64(len(hdr))); err != nil && !errors.Is(err, io.EOF) {
		r.Close()
		return nil, err
	}
	return r, nil
}

// body is the message body for body tests.
func (s *sieveSource) body() ([]byte, error) {
	r, err := s.rawBody()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	b = bytes.TrimPrefix(b, []byte("\r\n"))
	b = bytes.TrimPrefix(b, []byte("\n"))
	return b, err
}

// envelopeTo is the recipient a user's script sees: the RCPT TO address
// when it is the user's own (sub-address kept, for :detail), else the
// user's address (an alias or a forward brought the message).
func envelopeTo(env *Envelope, user string) string {
	ul, ud := mailaddr.Split(user)
	for _, rt := range env.Routes {
		if rt.Rcpt == user {
			return user
		}
		l, d := mailaddr.Split(rt.Rcpt)
		if strings.EqualFold(d, ud) && len(l) > len(ul) && strings.EqualFold(l[:len(ul)], ul) && !isLocalChar(l[len(ul)]) {
			for _, mb := range rt.Mailboxes {
				if mb == user {
					return rt.Rcpt
				}
			}
		}
	}
	return user
}

func isLocalChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_'
}

// spamFor is what spamtest reports for user: the inbound checks' score
// (the user's own classifier's when it scored), on Mailu's X-Spam-Level
// scale; untested when no check scored the message. An X-Spam-Level in
// the message itself is not trusted, as in junkTarget.
func spamFor(env *Envelope, user string) sieve.Spam {
	if s, ok := env.UserScores[user]; ok {
		return sieve.Spam{Tested: true, Percent: filter.SpamPercent(s)}
	}
	if env.Scored {
		return sieve.Spam{Tested: true, Percent: filter.SpamPercent(env.SpamScore)}
	}
	return sieve.Spam{}
}

// countField counts the fields named name in a header block.
func countField(hdr []byte, name string) int {
	n := 0
	for line := range bytes.Lines(hdr) {
		if len(line) > len(name) && line[len(name)] == ':' && strings.EqualFold(string(line[:len(name)]), name) {
			n++
		}
	}
	return n
}

func dedupeTargets(ts []store.MailboxTarget) []store.MailboxTarget {
	out := make([]store.MailboxTarget, 0, len(ts))
	for _, t := range ts {
		dup := false
		for _, o := range out {
			if o.User == t.User && strings.EqualFold(o.Mailbox, t.Mailbox) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}

// addrSet is an ordered set of addresses.
type addrSet struct {
	list []string
	seen map[string]bool
}

func newAddrSet(init []string) *addrSet {
	s := &addrSet{seen: map[string]bool{}}
	for _, a := range init {
		s.add(a)
	}
	return s
}

func (s *addrSet) add(a string) {
	if a != "" && !s.seen[a] {
		s.seen[a] = true
		s.list = append(s.list, a)
	}
}
