package inbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

// Auto-reply limits.
const (
	// DefaultAutoReplyPeriod is Mailu's `vacation :days 1`: at most one
	// reply per user and sender in 24 hours, counted from the last reply
	// (Dovecot marks the sender as answered until now + :days).
	DefaultAutoReplyPeriod = 24 * time.Hour
	// autoReplyKeep: bookkeeping older than this is pruned (at least the
	// period), at most once per autoReplyPruneEvery.
	autoReplyKeep       = 7 * 24 * time.Hour
	autoReplyPruneEvery = time.Hour
	// autoReplyTimeout bounds the work after the original commit.
	autoReplyTimeout = 30 * time.Second
	// maxReplyHeader is how much of the original header is read.
	maxReplyHeader = 256 << 10
)

// AutoReplyOptions turns on auto-replies (Mailu: reply_enabled,
// reply_subject, reply_body, reply_startdate, reply_enddate; implemented in
// Mailu as the sieve `vacation :days 1` of internal/templates/default.sieve
// with Dovecot's sieve_vacation_dont_check_recipient,
// sieve_vacation_send_from_recipient and
// sieve_vacation_to_header_ignore_envelope).
type AutoReplyOptions struct {
	Users  UserLookup        // the replying user's row (subject, body, dates, display name)
	Sent   store.AutoReplies // who was answered when, shared by every node
	Router RecipientResolver // where a reply goes: the sender's mailbox or the outbound queue
	// Signer DKIM-signs replies from local domains (*msgauth.Signers,
	// as Mailu's rspamd signs what Dovecot sends); nil: unsigned.
	Signer ReplySigner
	// Hostname is the right side of the replies' Message-IDs; "" uses
	// the user's domain.
	Hostname string
	// NewID returns the Petrel message id of a reply; nil: random.
	NewID func() string
	// NewMessageID returns the left side of a reply's Message-ID; nil:
	// the time and 64 random bits.
	NewMessageID func() string
	// Queued is called after a reply went into the outbound queue (the
	// app wakes the queue with it); nil: the queue finds it at its next
	// poll.
	Queued func()
	// Period is how long a sender is not answered again; 0 means
	// DefaultAutoReplyPeriod.
	Period time.Duration
}

// UserLookup reads a user row (store.Accounts).
type UserLookup interface {
	GetUser(ctx context.Context, email string) (*store.User, error)
}

// RecipientResolver resolves an address as for RCPT TO (*Router).
type RecipientResolver interface {
	Resolve(ctx context.Context, rcpt string) (Route, error)
}

// ReplySigner returns the DKIM-Signature field for a message, picked by
// its From domain (*msgauth.Signers). An error means "send unsigned".
type ReplySigner interface {
	Signature(ctx context.Context, r io.Reader) (string, error)
}

// autoReplier answers for users whose auto-reply is on, after their copy of
// a message is committed. Whatever goes wrong is logged and never fails
// the original delivery.
type autoReplier struct {
	opts AutoReplyOptions
	d    *Deliverer
	log  *slog.Logger

	mu        sync.Mutex
	lastPrune time.Time
}

func newAutoReplier(d *Deliverer, opts AutoReplyOptions) *autoReplier {
	if opts.Users == nil || opts.Sent == nil || opts.Router == nil {
		d.log.Error("auto-replies disabled: AutoReplyOptions needs Users, Sent and Router")
		return nil
	}
	if opts.Period <= 0 {
		opts.Period = DefaultAutoReplyPeriod
	}
	return &autoReplier{opts: opts, d: d, log: d.log}
}

// afterDelivery runs once msg (made from env) is committed: every user of
// env's routes with the auto-reply enabled whose copy went to INBOX may
// answer the sender. Mailu's default.sieve files spam into Junk and stops
// before the vacation action, so a copy filed elsewhere gets no reply.
func (a *autoReplier) afterDelivery(ctx context.Context, env *Envelope, msg *store.NewMessage) {
	users := replyCandidates(env, msg)
	if len(users) == 0 {
		return
	}
	// The original is stored: the client leaving must not cut the reply
	// short, but a stuck store must not hold the session forever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), autoReplyTimeout)
	defer cancel()
	log := a.log.With("msgid", env.ID, "from", env.Sender)

	sender, reason := replySender(env.Sender)
	if reason != "" {
		log.Debug("no auto-reply", "reason", reason)
		return
	}
	h, err := a.readHeader(msg)
	if err != nil {
		log.Warn("no auto-reply: cannot read the message header", "err", err)
		return
	}
	if reason := headerSuppression(&h); reason != "" {
		log.Debug("no auto-reply", "reason", reason)
		return
	}
	for _, c := range users {
		a.replyFor(ctx, log, env, sender, &h, c)
	}
	a.prune(ctx)
}

// replyCandidate is one user who may answer, with the addresses the
// message reached them through.
type replyCandidate struct {
	user  string
	rcpts []string
}

func replyCandidates(env *Envelope, msg *store.NewMessage) []replyCandidate {
	var out []replyCandidate
	for _, rt := range env.Routes {
		for _, u := range rt.AutoReply {
			if !hasTarget(msg, u, "INBOX") {
				continue
			}
			i := 0
			for i < len(out) && out[i].user != u {
				i++
			}
			if i == len(out) {
				out = append(out, replyCandidate{user: u})
			}
			out[i].rcpts = append(out[i].rcpts, rt.Rcpt)
		}
	}
	return out
}

func hasTarget(msg *store.NewMessage, user, mailbox string) bool {
	for _, t := range msg.Targets {
		if t.User == user && t.Mailbox == mailbox {
			return true
		}
	}
	return false
}

// replyFor decides and sends one user's reply.
func (a *autoReplier) replyFor(ctx context.Context, log *slog.Logger, env *Envelope, sender string, h *textproto.Header, c replyCandidate) {
	log = log.With("user", c.user)
	now := a.d.now()
	u, err := a.opts.Users.GetUser(ctx, c.user)
	if errors.Is(err, store.ErrNotFound) {
		return // deleted since RCPT
	}
	if err != nil {
		log.Warn("no auto-reply: cannot read the user", "err", err)
		return
	}
	if !u.ReplyActive(now) {
		log.Debug("no auto-reply", "reason", "outside the reply dates")
		return
	}
	// Dovecot: "discarded vacation reply to own address".
	if sameAddress(u.Email) == sender {
		log.Debug("no auto-reply", "reason", "own address")
		return
	}
	for _, r := range c.rcpts {
		if sameAddress(r) == sender {
			log.Debug("no auto-reply", "reason", "own address")
			return
		}
	}

	// Claimed before the reply is built, so that two deliveries (or two
	// nodes) never both reply, and a sender answered recently (the usual
	// case) costs no signing and no look-ups. Unlike Dovecot, which marks
	// the sender after sending, a reply that fails after its claim is not
	// retried within the period.
	due, err := a.opts.Sent.ClaimAutoReply(ctx, u.Email, sender, replyHandle(u), now, a.opts.Period)
	if err != nil {
		log.Warn("no auto-reply: cannot record it", "err", err)
		return
	}
	if !due {
		log.Debug("no auto-reply", "reason", "sender answered recently")
		return
	}

	raw, err := buildReply(replyInput{
		user:      u,
		envSender: env.Sender,
		orig:      h,
		now:       now,
		messageID: a.messageID(now) + "@" + a.hostname(u),
	})
	if err != nil {
		log.Warn("no auto-reply: cannot build it", "err", err)
		return
	}
	a.send(ctx, log, env, u.Email, sender, raw)
}

// send signs a reply and delivers it to sender: a local mailbox, or the
// outbound queue.
func (a *autoReplier) send(ctx context.Context, log *slog.Logger, env *Envelope, from, sender string, raw []byte) {
	if a.opts.Signer != nil {
		sig, err := a.opts.Signer.Signature(ctx, bytes.NewReader(raw))
		if err != nil {
			log.Info("auto-reply goes out without DKIM signature", "err", err)
		} else {
			raw = append([]byte(sig), raw...)
		}
	}
	// The reply goes where mail to the sender goes: a local mailbox, or
	// the outbound queue. The route's own auto-replies are dropped: an
	// auto-reply is never answered (its Auto-Submitted says so too).
	route, err := a.opts.Router.Resolve(ctx, env.Sender)
	if err != nil {
		log.Info("no auto-reply: sender does not resolve", "err", err)
		return
	}
	route.AutoReply = nil

	sp, err := a.d.NewSpool()
	if err != nil {
		log.Warn("auto-reply lost", "err", err)
		return
	}
	defer sp.Abort()
	if _, err := sp.Write(raw); err != nil {
		log.Warn("auto-reply lost", "err", err)
		return
	}
	renv := &Envelope{
		ID: a.newID(),
		// Mailu: sieve_vacation_send_from_recipient = yes ("so that DKIM
		// applies"): the reply's MAIL FROM is the user, which also lets
		// it pass SPF aligned with its From. A bounce of the reply goes
		// to the user, never to the original sender.
		Sender:     from,
		Routes:     []Route{route},
		ReceivedAt: a.d.now(),
	}
	if err := a.d.Deliver(ctx, renv, sp); err != nil {
		log.Warn("auto-reply lost", "reply", renv.ID, "err", err)
		return
	}
	log.Info("auto-reply sent", "reply", renv.ID, "to", sender)
	if len(route.Remote) > 0 && a.opts.Queued != nil {
		a.opts.Queued()
	}
}

// prune forgets old bookkeeping, at most once per autoReplyPruneEvery per
// process; any node may do it.
func (a *autoReplier) prune(ctx context.Context) {
	now := a.d.now()
	a.mu.Lock()
	if !a.lastPrune.IsZero() && now.Sub(a.lastPrune) < autoReplyPruneEvery {
		a.mu.Unlock()
		return
	}
	a.lastPrune = now
	a.mu.Unlock()
	keep := max(autoReplyKeep, a.opts.Period)
	n, err := a.opts.Sent.PruneAutoReplies(ctx, now.Add(-keep))
	if err != nil {
		a.log.Warn("cannot prune auto-reply records", "err", err)
		return
	}
	if n > 0 {
		a.log.Debug("pruned auto-reply records", "rows", n)
	}
}

// readHeader parses the header of the committed message.
func (a *autoReplier) readHeader(msg *store.NewMessage) (textproto.Header, error) {
	var r io.Reader
	switch {
	case msg.Body != nil:
		r = bytes.NewReader(msg.Body)
	case msg.BlobName != "" && a.d.blobs != nil:
		f, err := a.d.blobs.Open(msg.BlobName)
		if err != nil {
			return textproto.Header{}, err
		}
		defer f.Close()
		r = f
	default:
		return textproto.Header{}, errors.New("no body")
	}
	return textproto.ReadHeader(bufio.NewReader(io.LimitReader(r, maxReplyHeader)))
}

func (a *autoReplier) newID() string {
	if a.opts.NewID != nil {
		return a.opts.NewID()
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}

func (a *autoReplier) messageID(now time.Time) string {
	if a.opts.NewMessageID != nil {
		return a.opts.NewMessageID()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:])
}

func (a *autoReplier) hostname(u *store.User) string {
	if a.opts.Hostname != "" {
		return a.opts.Hostname
	}
	return u.DomainName
}

// replyHandle identifies the reply text: an edited reply answers senders
// already answered with the old one (Dovecot's implicit :handle is made
// from :subject, :from and the reason).
func replyHandle(u *store.User) string {
	sum := sha256.Sum256([]byte(u.DisplayedName + "\x00" + u.ReplySubject + "\x00" + u.ReplyBody))
	return hex.EncodeToString(sum[:8])
}

// replySender checks the envelope sender: the reply goes there, so the
// null sender (bounces, RFC 3834 2) and system addresses (Dovecot:
// _is_system_address) are never answered, nor a no-reply address (Mailu
// checks From and Reply-To for it; the envelope is where the reply would
// land). It returns the normalised sender, or why there is no reply.
func replySender(sender string) (string, string) {
	if sender == "" {
		return "", "null sender"
	}
	n, err := mailaddr.Normalize(sender)
	if err != nil {
		return "", "unusable sender"
	}
	local, _ := mailaddr.Split(n)
	switch {
	case local == "mailer-daemon", local == "listserv", local == "majordomo",
		strings.Contains(local, "-request"), strings.HasPrefix(local, "owner-"):
		return "", "system address"
	case isNoReply(local):
		return "", "no-reply sender"
	}
	return n, ""
}

// isNoReply is Mailu's `address :localpart :contains ["noreply","no-reply"]`
// (i;ascii-casemap).
func isNoReply(local string) bool {
	l := strings.ToLower(local)
	return strings.Contains(l, "noreply") || strings.Contains(l, "no-reply")
}

// headerSuppression says why the original's header forbids a reply, or
// "" when it does not: mailing lists, automatic messages (RFC 3834 2:
// Auto-Submitted other than "no"), Precedence bulk/list/junk,
// X-Auto-Response-Suppress All/OOF (Dovecot), a null Return-Path, and
// no-reply From or Reply-To addresses (Mailu's default.sieve).
func headerSuppression(h *textproto.Header) string {
	// Mailing-list fields (RFC 2369, RFC 2919; Dovecot's vacation list).
	for _, k := range []string{"List-Id", "List-Owner", "List-Subscribe", "List-Post", "List-Unsubscribe", "List-Help", "List-Archive"} {
		if h.Has(k) {
			return "mailing list"
		}
	}
	for _, v := range h.Values("Auto-Submitted") {
		if !strings.EqualFold(firstToken(v), "no") {
			return "auto-submitted"
		}
	}
	for _, v := range h.Values("Precedence") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "list", "junk":
			return "precedence " + strings.ToLower(strings.TrimSpace(v))
		}
	}
	for _, v := range h.Values("X-Auto-Response-Suppress") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); strings.EqualFold(f, "All") || strings.EqualFold(f, "OOF") {
				return "x-auto-response-suppress"
			}
		}
	}
	for _, v := range h.Values("Return-Path") {
		if strings.Join(strings.Fields(v), "") == "<>" {
			return "null return path"
		}
	}
	for _, k := range []string{"From", "Reply-To"} {
		for _, v := range h.Values(k) {
			if headerNoReply(v) {
				return "no-reply sender"
			}
		}
	}
	return ""
}

// firstToken is the keyword of a structured value such as
// "auto-replied; owner-email=..." or "auto-generated (comment)".
func firstToken(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, "; \t("); i >= 0 {
		v = v[:i]
	}
	return v
}

// headerNoReply reports whether an address field names a no-reply
// address. An unparsable field is searched as text: staying silent is the
// safe side.
func headerNoReply(v string) bool {
	addrs, err := parseAddressList(v)
	if err != nil {
		return isNoReply(v)
	}
	for _, a := range addrs {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && isNoReply(a.Address[:i]) {
			return true
		}
	}
	return false
}

func parseAddressList(v string) ([]*mail.Address, error) {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}
	return p.ParseList(v)
}
