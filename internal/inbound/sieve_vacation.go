package inbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/petrelmail/petrel/internal/sieve"
	"github.com/petrelmail/petrel/internal/store"
)

// vacationAction returns the sending of a Sieve vacation response (RFC
// 5230), run after the message is committed. It keeps Mailu's limits, the
// same as the reply_* auto-reply: once per sender and handle per :days,
// never to the null sender, system or no-reply addresses, lists,
// Precedence bulk/list/junk or Auto-Submitted mail (RFC 5230 4.5, RFC
// 3834 2), and never to the user's own addresses (:addresses).
func (a *autoReplier) vacationAction(env *Envelope, user, rcpt string, hdr []byte, v *sieve.Vacation) func(ctx context.Context) {
	return func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), autoReplyTimeout)
		defer cancel()
		a.vacation(ctx, env, user, rcpt, hdr, v)
	}
}

func (a *autoReplier) vacation(ctx context.Context, env *Envelope, user, rcpt string, hdr []byte, v *sieve.Vacation) {
	log := a.log.With("msgid", env.ID, "from", env.Sender, "user", user, "sieve", "vacation")
	sender, reason := replySender(env.Sender)
	if reason != "" {
		log.Debug("no vacation reply", "reason", reason)
		return
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, hdr...), "\r\n"...))))
	if err != nil {
		log.Info("no vacation reply: unreadable header", "err", err)
		return
	}
	if reason := headerSuppression(&h); reason != "" {
		log.Debug("no vacation reply", "reason", reason)
		return
	}
	for _, own := range append([]string{user, rcpt}, v.Addresses...) {
		if sameAddress(own) == sender {
			log.Debug("no vacation reply", "reason", "own address")
			return
		}
	}
	u, err := a.opts.Users.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		log.Warn("no vacation reply: cannot read the user", "err", err)
		return
	}
	now := a.d.now()
	// The handle is the script's (RFC 5230 4.2), kept apart from the
	// reply_* auto-reply's.
	due, err := a.opts.Sent.ClaimAutoReply(ctx, u.Email, sender, "sieve:"+v.Handle, now, time.Duration(v.Days)*24*time.Hour)
	if err != nil {
		log.Warn("no vacation reply: cannot record it", "err", err)
		return
	}
	if !due {
		log.Debug("no vacation reply", "reason", "sender answered recently")
		return
	}
	raw, err := buildReply(replyInput{
		user:      u,
		envSender: env.Sender,
		orig:      &h,
		now:       now,
		messageID: a.messageID(now) + "@" + a.hostname(u),
		vacation:  v,
		from:      vacationFrom(v.From, u.Email),
	})
	if err != nil {
		log.Warn("no vacation reply: cannot build it", "err", err)
		return
	}
	a.send(ctx, log, env, u.Email, sender, raw)
}

// vacationFrom is :from when it names the user's own address (with any
// display name); another address would let a script send as anyone, so it
// falls back to the default From.
func vacationFrom(from, email string) string {
	if strings.TrimSpace(from) == "" {
		return ""
	}
	a, err := mail.ParseAddress(from)
	if err != nil || sameAddress(a.Address) != sameAddress(email) {
		return ""
	}
	return formatAddress(clip(oneLine(a.Name), maxReplyName), email)
}
