package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
)

// Deliverer defaults.
const (
	DefaultInlineMax = 128 << 10 // bodies up to this size live in the database
	DefaultMaxBatch  = 64        // messages per group commit
)

var (
	// ErrClosed: Deliver after Close (or before Start). smtpd answers 451.
	ErrClosed = errors.New("inbound: deliverer is not running")
	// ErrNoRecipients: an envelope whose routes name no mailbox and no
	// remote address.
	ErrNoRecipients = errors.New("inbound: message has no recipients")
)

// MessageStore is what the Deliverer needs from the store.
type MessageStore interface {
	// CommitMessages stores msgs in one transaction (one fsync), all or
	// nothing (store.Mail).
	CommitMessages(ctx context.Context, msgs []*store.NewMessage) error
}

var _ MessageStore = store.Mail(nil)

// DelivererOptions configures a Deliverer.
type DelivererOptions struct {
	Store MessageStore
	// Blobs receives bodies larger than InlineMax; it must be the store's
	// blob directory (sqlstore.Store.Blobs), since the store opens the
	// blob by name. Without it such bodies fail to spool.
	Blobs *blob.Dir
	// BodiesInDatabase: the store copies a blob body into its database
	// (store.BodyHome, PostgreSQL), so the blob file is only a spool that
	// the Deliverer removes once the message is stored and every
	// after-commit step (DSN headers, auto-reply, Sieve) has read it.
	BodiesInDatabase bool
	InlineMax        int64 // default DefaultInlineMax
	MaxBatch         int   // default DefaultMaxBatch
	Logger           *slog.Logger
	Now              func() time.Time // default time.Now
	// AutoReply turns on users' auto-replies (autoreply.go); nil: none.
	AutoReply *AutoReplyOptions
	// QuotaBounce, when set, reports to the sender the mailboxes that
	// were left out of a delivery because they were over quota while the
	// other recipients got the message (a DSN, RFC 3464 / RFC 3463
	// 5.2.2). full lists those users; headers is the original header
	// block. It is called after the commit, never for the null sender.
	QuotaBounce func(ctx context.Context, env *Envelope, full []string, headers []byte) error
	// SuccessNotice, when set, sends the RFC 3461 NOTIFY=SUCCESS notice
	// (Action: delivered) for the routes whose mailboxes here got the
	// message; the error is logged, the delivery stands.
	SuccessNotice func(ctx context.Context, env *Envelope, routes []Route, headers []byte) error
	// OnDelivered, when set, is told how many mailboxes each committed
	// message reached (the status page's counters).
	OnDelivered func(mailboxes int)
	// Sieve runs users' active Sieve scripts (sieve.go); nil: none.
	Sieve *SieveOptions
	// Reports hands mail for the TLS-RPT address to its parser
	// (reporttap.go); nil: none.
	Reports *ReportTap
}

// Deliverer makes accepted messages durable. One committer goroutine
// gathers every delivery waiting at that moment into one CommitMessages
// call (group commit), so concurrent SMTP sessions share one fsync; each
// Deliver returns when the transaction holding its message has committed.
type Deliverer struct {
	store     MessageStore
	blobs     *blob.Dir
	spoolOnly bool // blob files are spools: removed after the commit
	inlineMax int64
	maxBatch  int
	log       *slog.Logger
	now       func() time.Time
	reply     *autoReplier // nil: no auto-replies
	sieve     *sieveHost   // nil: no Sieve scripts
	bounce    func(ctx context.Context, env *Envelope, full []string, headers []byte) error
	notice    func(ctx context.Context, env *Envelope, routes []Route, headers []byte) error
	delivered func(int)  // nil: not counted
	tap       *ReportTap // nil: no reporting address

	// spooling counts the spools being written: messages still arriving
	// or being checked, which the committer may wait a little for
	// (gather); gathering is set while it does.
	spooling   atomic.Int64
	gathering  atomic.Bool
	gatherWait func(last time.Duration) time.Duration // how long gather may wait after a commit that took last

	mu      sync.Mutex
	state   int
	pending []*commitReq
	wake    chan struct{} // 1-buffered: "pending changed or closing"
	done    chan struct{} // closed when the committer has drained and exited
}

const (
	stateNew = iota
	stateRunning
	stateClosing
)

// commitReq is one message waiting for the committer.
type commitReq struct {
	msg *store.NewMessage
	// extra are per-user copies with their own header (Sieve), stored in
	// the same transaction; msg itself may then have no recipient left.
	extra  []*store.NewMessage
	env    *Envelope
	result chan error // 1-buffered, so the committer never blocks on a caller that left
	full   []string   // users left out as over quota (set before result)
}

// NewDeliverer returns a Deliverer; call Start before Deliver.
func NewDeliverer(opts DelivererOptions) *Deliverer {
	d := &Deliverer{
		store:      opts.Store,
		blobs:      opts.Blobs,
		spoolOnly:  opts.BodiesInDatabase,
		inlineMax:  opts.InlineMax,
		maxBatch:   opts.MaxBatch,
		log:        opts.Logger,
		now:        opts.Now,
		bounce:     opts.QuotaBounce,
		notice:     opts.SuccessNotice,
		delivered:  opts.OnDelivered,
		tap:        opts.Reports,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		gatherWait: gatherFor,
	}
	if d.inlineMax <= 0 {
		d.inlineMax = DefaultInlineMax
	}
	if d.maxBatch <= 0 {
		d.maxBatch = DefaultMaxBatch
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if opts.AutoReply != nil {
		d.reply = newAutoReplier(d, *opts.AutoReply)
	}
	if opts.Sieve != nil && opts.Sieve.Scripts != nil {
		d.sieve = newSieveHost(d, *opts.Sieve)
	}
	return d
}

// ForgetSieve drops user's cached Sieve script ("" drops all), so the
// next delivery reads it from the store: it was changed, maybe on
// another node.
func (d *Deliverer) ForgetSieve(user string) {
	if d.sieve != nil {
		d.sieve.forget(user)
	}
}

// Start runs the committer until Close is called or ctx is done; either
// way every delivery already handed over is committed before it stops
// (commits run with ctx's values but without its cancellation, so a
// shutdown does not lose accepted messages). Start is a no-op after the
// first call.
func (d *Deliverer) Start(ctx context.Context) {
	d.mu.Lock()
	if d.state != stateNew {
		d.mu.Unlock()
		return
	}
	d.state = stateRunning
	d.mu.Unlock()
	go d.run(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
			d.beginClose()
		case <-d.done:
		}
	}()
}

// Close stops accepting deliveries, waits until every pending one has been
// committed (or has failed) and returns. It is safe to call more than once.
func (d *Deliverer) Close() error {
	d.mu.Lock()
	started := d.state != stateNew
	d.state = stateClosing
	d.mu.Unlock()
	if !started {
		return nil
	}
	d.signal()
	<-d.done
	return nil
}

func (d *Deliverer) beginClose() {
	d.mu.Lock()
	d.state = stateClosing
	d.mu.Unlock()
	d.signal()
}

func (d *Deliverer) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// NewSpool returns a Spool for one message body.
func (d *Deliverer) NewSpool() (*Spool, error) {
	d.spooling.Add(1)
	return &Spool{blobs: d.blobs, inlineMax: d.inlineMax, onDone: d.spoolDone}, nil
}

// spoolDone is a spool's onDone: one message fewer on its way; a
// gathering committer looks again.
func (d *Deliverer) spoolDone() {
	d.spooling.Add(-1)
	if d.gathering.Load() {
		d.signal()
	}
}

// Deliver makes the message env/sp durable: every local mailbox of every
// route gets one copy in INBOX (a mailbox named by several routes gets
// one), and every remote address of every route, deduplicated, becomes an
// outbound queue entry. A spilled body's blob is committed (fsynced) first;
// then the message joins the next group commit and Deliver returns once
// that transaction has committed, or with its error. A quota failure wraps
// store.ErrQuotaExceeded (RFC 3463 5.2.2).
//
// Deliver consumes sp whatever the outcome.
//
// With DelivererOptions.AutoReply, once the message is committed the users
// of env's routes with an active auto-reply answer its sender before
// Deliver returns (autoreply.go); that never changes Deliver's result.
//
// If ctx ends while Deliver waits for the commit, Deliver returns
// ctx.Err() but the message may still be committed moments later: the
// client then sees a temporary failure and may send again. A duplicate is
// better than a lost message.
func (d *Deliverer) Deliver(ctx context.Context, env *Envelope, sp *Spool) error {
	if sp == nil {
		return errors.New("inbound: Deliver without a spool")
	}
	defer sp.Abort()
	if env == nil {
		return errors.New("inbound: Deliver without an envelope")
	}
	msg := d.newMessage(env)
	if len(msg.Targets) == 0 && len(msg.Remote) == 0 {
		return fmt.Errorf("inbound: deliver %s: %w", env.ID, ErrNoRecipients)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !d.running() {
		return ErrClosed
	}
	if len(msg.Targets) > 0 {
		rp, err := d.withReturnPath(env.Sender, sp)
		if err != nil {
			return fmt.Errorf("inbound: deliver %s: %w", env.ID, err)
		}
		if rp != sp {
			sp = rp
			defer sp.Abort()
		}
	}
	// The message stops counting as on its way only once it is pending
	// (or has failed), so a gathering committer never misses it between
	// the two (gather).
	handedOver := sp.takeOnDone()
	defer func() {
		if handedOver != nil {
			handedOver()
		}
	}()
	msg.Size = sp.Size()
	body, name, err := sp.finish()
	if err != nil {
		return fmt.Errorf("inbound: deliver %s: %w", env.ID, err)
	}
	msg.Body, msg.BlobName = body, name

	// Mailu's global rules made msg.Targets; users' scripts come after
	// them. The auto-reply (a global rule too) looks at the targets as
	// they were before the scripts ran.
	replyView := msg
	var sv sieveOutcome
	if d.sieve != nil {
		snap := *msg
		replyView = &snap
		sv = d.sieve.apply(ctx, env, msg)
		for _, x := range sv.extra {
			x.Fetched = env.Fetched // stored or left out with msg
		}
	}
	req := &commitReq{msg: msg, extra: sv.extra, env: env, result: make(chan error, 1)}
	if !hasRecipients(msg) {
		// Every copy went elsewhere, or a script discarded the message:
		// the body is stored only through the copies.
		defer d.removeBlob(msg)
		if len(sv.extra) == 0 {
			d.logOutcome(req, nil, false)
			d.afterCommit(ctx, env, req, replyView, sv)
			return nil
		}
	}
	d.mu.Lock()
	if d.state != stateRunning {
		d.mu.Unlock()
		for _, m := range req.all() {
			d.removeBlob(m)
		}
		return ErrClosed
	}
	d.pending = append(d.pending, req)
	d.mu.Unlock()
	handedOver()
	handedOver = nil
	d.signal()

	select {
	case err := <-req.result:
		if err == nil {
			d.afterCommit(ctx, env, req, replyView, sv)
			if d.spoolOnly {
				for _, m := range req.all() {
					d.removeBlob(m)
				}
			}
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("inbound: deliver %s: gave up waiting for commit: %w", env.ID, ctx.Err())
	}
}

// afterCommit sends what a stored message calls for: the DSN for
// mailboxes left out as over quota, auto-replies, and what Sieve scripts
// asked for (vacation, reject). It runs after the commit, so nothing goes
// out for a message that was not stored, and it cannot fail the delivery.
func (d *Deliverer) afterCommit(ctx context.Context, env *Envelope, req *commitReq, replyView *store.NewMessage, sv sieveOutcome) {
	if len(req.full) > 0 {
		d.bounceFull(ctx, env, req.msg, req.full)
	}
	d.notifySuccess(ctx, env, req.msg, req.full)
	d.tapReports(env, req.msg)
	if d.reply != nil {
		d.reply.afterDelivery(ctx, env, replyView)
	}
	for _, f := range sv.after {
		f(ctx)
	}
}

func hasRecipients(m *store.NewMessage) bool { return len(m.Targets) > 0 || len(m.Remote) > 0 }

// all is the request's messages that have a recipient.
func (r *commitReq) all() []*store.NewMessage {
	out := make([]*store.NewMessage, 0, 1+len(r.extra))
	if hasRecipients(r.msg) {
		out = append(out, r.msg)
	}
	for _, m := range r.extra {
		if hasRecipients(m) {
			out = append(out, m)
		}
	}
	return out
}

func (d *Deliverer) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state == stateRunning
}

// newMessage builds the store message from the envelope's routes, without
// the body.
func (d *Deliverer) newMessage(env *Envelope) *store.NewMessage {
	msg := &store.NewMessage{
		ID:          env.ID,
		Sender:      env.Sender,
		ReceivedAt:  env.ReceivedAt,
		DeliveryKey: store.NewDeliveryKey(),
		RequireTLS:  env.RequireTLS,
		Fetched:     env.Fetched,
	}
	if msg.ReceivedAt.IsZero() {
		msg.ReceivedAt = d.now()
	}
	seenBox := map[string]bool{}
	seenRemote := map[string]bool{}
	for _, rt := range env.Routes {
		for _, mb := range rt.Mailboxes {
			if mb != "" && !seenBox[mb] {
				seenBox[mb] = true
				msg.Targets = append(msg.Targets, junkTarget(env, mb, rt.Spam[mb]))
			}
		}
		for _, r := range rt.Remote {
			if r != "" && !seenRemote[r] {
				seenRemote[r] = true
				msg.Remote = append(msg.Remote, r)
				addDSN(msg, env, rt, r)
			}
		}
	}
	return msg
}

// addDSN records the RFC 3461 parameters of remote recipient r of route
// rt. RFC 3461 4.2: a recipient reached through an alias or forward keeps
// the address the client gave as its ORCPT, so the DSN names it.
func addDSN(msg *store.NewMessage, env *Envelope, rt Route, r string) {
	d := rt.DSN
	if d.ORcpt == "" && (d.Notify != "" || env.DSNRet != "" || env.DSNEnvID != "") && !strings.EqualFold(r, rt.Rcpt) {
		typ := "rfc822"
		if !isASCII(rt.Rcpt) {
			typ = "utf-8"
		}
		d.ORcpt = typ + ";" + rt.Rcpt
	}
	if d == (store.RcptDSN{}) && env.DSNRet == "" && env.DSNEnvID == "" {
		return
	}
	if msg.DSN == nil {
		msg.DSN = &store.DSNParams{Ret: env.DSNRet, EnvID: env.DSNEnvID, Rcpts: map[string]store.RcptDSN{}}
	}
	msg.DSN.Rcpts[r] = d
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// seenFlags is the initial flag list of a message marked as read; shared,
// never modified.
var seenFlags = []string{`\Seen`}

// junkTarget decides where user's copy goes (Mailu's default sieve
// script, run before the user's own): into Junk when the message is spam
// for that user (spam_enabled and spamtest :percent > spam_threshold),
// marked \Seen when spam_mark_as_read; a DMARC p=quarantine failure goes
// to Junk whatever the spam settings (RFC 7489 6.3 "quarantine").
//
// Only the score the inbound checks computed counts (env.Scored). An
// X-Spam-Level header inside the message is never read here: on port 25
// the sender may have written it, and the checks remove such copies
// before adding their own, so the header a user's client sees is always
// Petrel's (or rspamd's through Petrel).
func junkTarget(env *Envelope, user string, p SpamPrefs) store.MailboxTarget {
	t := store.MailboxTarget{User: user, Mailbox: "INBOX"}
	score, scored := env.SpamScore, env.Scored
	if s, ok := env.UserScores[user]; ok {
		score, scored = s, true
	}
	spam := scored && p.Enabled && filter.IsSpamFor(score, p.Threshold)
	if spam || env.Quarantine {
		t.Mailbox = "Junk"
		if p.MarkAsRead {
			t.Flags = seenFlags
		}
	}
	return t
}

// bounceFull reports the mailboxes left out as over quota to the sender.
func (d *Deliverer) bounceFull(ctx context.Context, env *Envelope, m *store.NewMessage, full []string) {
	d.log.Info("bounced", "msgid", m.ID, "from", env.Sender, "rcpts", full, "result", "quota",
		"reply", "552 5.2.2 mailbox full")
	if d.bounce == nil || env.Sender == "" { // RFC 3464: never a DSN to the null sender
		return
	}
	if err := d.bounce(ctx, env, full, d.headersOf(m)); err != nil {
		d.log.Error("DSN for over-quota mailboxes not sent", "msgid", m.ID, "rcpts", full, "err", err)
	}
}

// notifySuccess sends the RFC 3461 success notice for local routes that
// asked for one (NOTIFY=SUCCESS) and whose mailboxes got the message.
// Remote addresses of a route are left to the queue (relayed notices).
func (d *Deliverer) notifySuccess(ctx context.Context, env *Envelope, m *store.NewMessage, full []string) {
	if d.notice == nil || env.Sender == "" {
		return
	}
	isFull := map[string]bool{}
	for _, f := range full {
		isFull[f] = true
	}
	var routes []Route
	for _, rt := range env.Routes {
		if !notifiesSuccess(rt.DSN.Notify) {
			continue
		}
		for _, mb := range rt.Mailboxes {
			if !isFull[mb] {
				routes = append(routes, rt)
				break
			}
		}
	}
	if len(routes) == 0 {
		return
	}
	if err := d.notice(ctx, env, routes, d.headersOf(m)); err != nil {
		d.log.Error("success notice (NOTIFY=SUCCESS) not sent", "msgid", m.ID, "err", err)
		return
	}
	d.log.Info("success notice", "msgid", m.ID, "to", env.Sender, "rcpts", len(routes))
}

func notifiesSuccess(notify string) bool {
	for _, n := range strings.Split(notify, ",") {
		if strings.EqualFold(strings.TrimSpace(n), "SUCCESS") {
			return true
		}
	}
	return false
}

// maxBounceHeaders bounds the original header block a DSN carries.
const maxBounceHeaders = 64 << 10

// headersOf returns the header block of a stored message's body.
func (d *Deliverer) headersOf(m *store.NewMessage) []byte {
	body := m.Body
	if m.BlobName != "" && d.blobs != nil {
		f, err := d.blobs.Open(m.BlobName)
		if err != nil {
			return nil
		}
		defer f.Close()
		buf := make([]byte, maxBounceHeaders)
		n, _ := io.ReadFull(f, buf)
		body = buf[:n]
	}
	body = body[:min(len(body), maxBounceHeaders)]
	if i := bytes.Index(body, []byte("\r\n\r\n")); i >= 0 {
		return body[:i+2]
	}
	return body
}

// finish logs the outcome of one message and hands it to its caller. The
// log line is written here rather than in Deliver so that a message whose
// caller stopped waiting is still logged exactly once.
func (d *Deliverer) finish(r *commitReq, err error) {
	m := r.msg
	quota := errors.Is(err, store.ErrQuotaExceeded)
	if quota {
		// A quota refusal is a clean rollback, so nothing references
		// the blob. After other errors the outcome of COMMIT may be
		// unknown (a lost PostgreSQL connection); the blob is then
		// left to the store's garbage sweep rather than risk deleting
		// the body of a stored message.
		d.removeBlob(m)
		for _, x := range r.extra {
			d.removeBlob(x)
		}
	}
	d.logOutcome(r, err, quota)
	if err != nil {
		r.result <- fmt.Errorf("inbound: deliver %s: %w", m.ID, err)
		return
	}
	if n := r.mailboxes(); d.delivered != nil && n > 0 {
		d.delivered(n)
	}
	r.result <- nil
}

// logOutcome writes the message's log line, building its attributes only
// when the line is written (at LOG_LEVEL=WARNING a delivery logs nothing,
// and the attributes would be allocations on every message).
func (d *Deliverer) logOutcome(r *commitReq, err error, quota bool) {
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	if !d.log.Enabled(context.Background(), level) {
		return
	}
	m := r.msg
	rcpts := make([]string, len(r.env.Routes))
	for i, rt := range r.env.Routes {
		rcpts[i] = rt.Rcpt
	}
	mailboxes := make([]string, 0, len(m.Targets))
	var junk []string
	remote := m.Remote
	for _, x := range append([]*store.NewMessage{m}, r.extra...) {
		for _, t := range x.Targets {
			mailboxes = append(mailboxes, t.User)
			if t.Mailbox == "Junk" {
				junk = append(junk, t.User)
			}
		}
		if x != m {
			remote = append(remote, x.Remote...)
		}
	}
	attrs := []slog.Attr{
		slog.String("msgid", m.ID),
		slog.String("from", m.Sender),
		slog.Int("nrcpt", len(rcpts)),
		slog.Any("rcpts", rcpts),
		slog.Any("mailboxes", mailboxes),
		slog.Any("remote", remote),
		slog.Int64("size", m.Size),
	}
	if r.env.AuthUser != "" {
		attrs = append(attrs, slog.String("user", r.env.AuthUser))
	}
	if len(junk) > 0 {
		attrs = append(attrs, slog.Any("junk", junk)) // filed into Junk (spam settings or DMARC quarantine)
	}
	if err != nil {
		result := "error"
		if quota {
			result = "quota"
		}
		attrs = append(attrs, slog.String("result", result), slog.Any("err", err))
		d.log.LogAttrs(context.Background(), level, "delivery failed", attrs...)
		return
	}
	event := "delivered"
	switch {
	case len(mailboxes) == 0 && len(remote) == 0:
		event = "discarded" // by Sieve scripts
	case len(mailboxes) == 0:
		event = "queued"
	}
	attrs = append(attrs, slog.String("result", "ok"))
	d.log.LogAttrs(context.Background(), level, event, attrs...)
}

// mailboxes counts the copies a request stores.
func (r *commitReq) mailboxes() int {
	n := len(r.msg.Targets)
	for _, x := range r.extra {
		n += len(x.Targets)
	}
	return n
}

// removeBlob deletes the blob of a message known not to be stored.
func (d *Deliverer) removeBlob(m *store.NewMessage) {
	if m.BlobName == "" || d.blobs == nil {
		return
	}
	if err := d.blobs.Remove(m.BlobName); err != nil {
		d.log.Warn("cannot remove blob of failed delivery", "msgid", m.ID, "blob", m.BlobName, "err", err)
	}
}
