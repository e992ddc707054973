package smtpd

// Per-connection error limits, as Postfix's smtpd (which Mailu runs) has
// them (postconf(5); smtpd.c smtpd_proto, smtpd_chat.c smtpd_chat_reply):
//
//   - every command that gets a 4xx/5xx reply is one error
//     (smtpd_proto: "if (cmdp->action(...) != 0) state->error_count++"),
//     AUTH on port 25 included;
//   - once the count reaches smtpd_hard_error_limit (20) the client gets
//     "421 4.7.0 <hostname> Error: too many errors" and the connection is
//     closed, right after the reply that made the count;
//   - from smtpd_soft_error_limit (10) errors on, every reply is delayed by
//     smtpd_error_sleep_time (1s) ("sleep-on-anything");
//   - junk commands (NOOP, RSET, VRFY, HELO/EHLO; Postfix's
//     SMTPD_CMD_FLAG_LIMIT, ETRN being unknown to go-smtp) beyond
//     smtpd_junk_command_limit (100) each count as an error;
//   - the first smtpd_recipient_overshoot_limit (1000) RCPTs of a
//     transaction answered 452 over smtpd_recipient_limit are not errors,
//     later ones are;
//   - a message accepted for delivery forgives everything: the error and
//     junk counts go back to 0 (smtpd.c data_cmd: "Forgive any previous
//     client errors when a message was received successfully"), so a
//     client that delivers is never cut.
//
// The counts belong to the connection (trackedConn), not the go-smtp
// Session, which go-smtp replaces after STARTTLS.
//
// go-smtp v0.25.1 answers some commands itself (syntax errors, unknown
// commands, NOOP, RSET, VRFY, HELP, commands out of sequence) without
// calling the Session. On a plaintext connection (port 25, and 587 before
// STARTTLS) Petrel recognises those replies on their way out in
// trackedConn.Write and counts them too; under TLS (465, 587 after
// STARTTLS) the bytes there are ciphertext, so only Petrel's own replies
// count. go-smtp bounds unknown and unparsable commands itself (its
// errThreshold: the fourth is followed by "500 5.5.1 Too many errors" and
// a close), on every port.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// errCounter is one connection's error and junk-command counts.
type errCounter struct {
	mu      sync.Mutex
	errors  int
	junk    int
	pending bool   // the hard limit was reached in DATA: hang up at the next chance
	hungUp  bool   // the 421 was sent and the connection closed
	own     []byte // the reply Petrel's Session just returned, counted already
}

// errLimits are the resolved limits of a Server (see Options).
type errLimits struct {
	hard, soft, junk, overshoot int // <0: off (soft: never sleep)
	sleep                       time.Duration
}

// addError counts one error and reports the new count and whether it
// reached the hard limit (Postfix: "error_count >= var_smtpd_hard_erlim").
func (c *trackedConn) addError() (int, bool) {
	c.errs.mu.Lock()
	defer c.errs.mu.Unlock()
	c.errs.errors++
	lim := c.srv.limits.hard
	return c.errs.errors, lim >= 0 && c.errs.errors >= lim
}

// addJunk counts one junk command; beyond the junk limit it is also an
// error (Postfix: "if (state->junk_cmds++ > var_smtpd_junk_cmd_limit)
// state->error_count++").
func (c *trackedConn) addJunk() (int, bool) {
	c.errs.mu.Lock()
	over := c.srv.limits.junk >= 0 && c.errs.junk > c.srv.limits.junk
	c.errs.junk++
	c.errs.mu.Unlock()
	if !over {
		return 0, false
	}
	return c.addError()
}

// forgive clears the counts after a message was accepted.
func (c *trackedConn) forgive() {
	c.errs.mu.Lock()
	defer c.errs.mu.Unlock()
	c.errs.errors, c.errs.junk = 0, 0
}

// markOwn records the reply Petrel's Session returns, so that Write does
// not take it for one of go-smtp's.
func (c *trackedConn) markOwn(r *smtp.SMTPError) {
	c.errs.mu.Lock()
	defer c.errs.mu.Unlock()
	c.errs.own = []byte(formatReply(r))
}

// tarpit delays a reply once the soft limit is reached (Postfix
// smtpd_chat_reply: "if (state->error_count >= var_smtpd_soft_erlim)
// sleep(var_smtpd_err_sleep)"). It returns early when ctx ends.
func (c *trackedConn) tarpit(ctx context.Context) {
	l := c.srv.limits
	c.errs.mu.Lock()
	slow := l.soft >= 0 && l.sleep > 0 && c.errs.errors >= l.soft && !c.errs.hungUp
	c.errs.mu.Unlock()
	if !slow {
		return
	}
	t := time.NewTimer(l.sleep)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// hangUp sends reply (if any) and the 421 on w, the connection as go-smtp
// writes to it (plaintext or TLS), and closes it. go-smtp's own write of
// the reply then fails quietly and its next read ends the session.
func (c *trackedConn) hangUp(w io.WriteCloser, reply *smtp.SMTPError, stage string, n int) {
	c.errs.mu.Lock()
	if c.errs.hungUp {
		c.errs.mu.Unlock()
		return
	}
	c.errs.hungUp, c.errs.pending = true, false
	c.errs.mu.Unlock()

	var b bytes.Buffer
	if reply != nil {
		b.WriteString(formatReply(reply))
	}
	bye := replyTooManyErrors(c.srv.opts.Hostname)
	b.WriteString(formatReply(bye))
	_ = c.SetWriteDeadline(time.Now().Add(min(c.srv.opts.WriteTimeout, 10*time.Second)))
	_, _ = w.Write(b.Bytes())
	// One line per session cut (Postfix: "too many errors after RCPT from
	// ..."); the logger carries cid, proto (the role) and the client's
	// address. Never the command's arguments: they may hold AUTH data.
	c.log.Warn("session ended: too many errors", "stage", stage, "errors", n,
		"hard_error_limit", c.srv.limits.hard, "code", bye.Code, "port", c.srv.opts.Role.Port())
	c.lingerClose(w)
}

// lingerClose closes after the client has had the chance to read the 421
// (connlimit.Conn.Linger says why).
func (c *trackedConn) lingerClose(w io.WriteCloser) {
	if nc, ok := w.(net.Conn); ok {
		c.Conn.Linger(nc)
	}
	_ = w.Close()
}

func (c *trackedConn) isHungUp() bool {
	c.errs.mu.Lock()
	defer c.errs.mu.Unlock()
	return c.errs.hungUp
}

// isGoSMTPJunk recognises go-smtp v0.25.1's replies to junk commands
// (conn.go handle, handleGreet); a multi-line EHLO reply matches on its
// first line.
func isGoSMTPJunk(p []byte) bool {
	for _, j := range [...]string{
		"250 2.0.0 I have successfully done nothing", // NOOP
		"250 2.0.0 Session reset",                    // RSET
		"252 2.5.0 Cannot VRFY user",                 // VRFY
		"250-Hello ",                                 // EHLO
		"250 Hello ",                                 // HELO
	} {
		if bytes.HasPrefix(p, []byte(j)) {
			return true
		}
	}
	return false
}

// isGoSMTPFinal recognises go-smtp's error replies that close the
// connection anyway, and its 421s (idle timeout, shutdown): counting them
// would only add a 421 nobody reads.
func isGoSMTPFinal(p []byte) bool {
	return bytes.HasPrefix(p, []byte("421 ")) ||
		bytes.HasPrefix(p, []byte("500 5.5.1 Too many errors")) ||
		bytes.HasPrefix(p, []byte("500 5.4.0 Too long line"))
}

// observe classifies a plaintext write by go-smtp before it goes out:
// Petrel's own replies pass (counted in the Session), go-smtp's error
// replies count as errors and its replies to junk commands as junk. A
// reply over the soft limit is delayed first. It reports whether the hard
// limit was reached by this reply.
func (c *trackedConn) observe(p []byte) (int, bool) {
	if len(p) < 4 {
		return 0, false
	}
	c.errs.mu.Lock()
	if c.errs.hungUp {
		c.errs.mu.Unlock()
		return 0, false
	}
	own := c.errs.own != nil && bytes.Equal(p, c.errs.own)
	if own {
		c.errs.own = nil
	}
	c.errs.mu.Unlock()
	if own {
		return 0, false
	}
	switch {
	case (p[0] == '4' || p[0] == '5') && p[3] == ' ' && !isGoSMTPFinal(p):
		c.tarpit(c.Context())
		return c.addError()
	case isGoSMTPJunk(p):
		c.tarpit(c.Context())
		return c.addJunk()
	}
	return 0, false
}

// ---- the Session methods go-smtp calls, with the limits around them ----

// enter runs before a command Petrel answers: a pending hang-up happens
// now, and the reply is delayed over the soft limit.
func (ss *session) enter() bool {
	if ss.hangUpIfPending() {
		return false
	}
	ss.tc.tarpit(ss.ctx)
	return true
}

// hangUpIfPending sends the 421 that the hard limit reached in DATA asked
// for (its own reply is out by now: go-smtp calls Reset after writing it).
func (ss *session) hangUpIfPending() bool {
	ss.tc.errs.mu.Lock()
	pending, n := ss.tc.errs.pending, ss.tc.errs.errors
	ss.tc.errs.mu.Unlock()
	if pending {
		ss.tc.hangUp(ss.conn.Conn(), nil, "data", n)
	}
	return pending
}

// answered does the bookkeeping for one reply of Petrel's: err is what the
// Session returns (a *smtp.SMTPError; below 400 is success). counts false
// means the error is free (the recipient overshoot).
func (ss *session) answered(stage string, err error, counts bool) error {
	var r *smtp.SMTPError
	if err == nil || (errors.As(err, &r) && r.Code < 400) {
		return err
	}
	if !counts {
		if r != nil {
			ss.tc.markOwn(r)
		}
		return err
	}
	n, reached := ss.tc.addError()
	switch {
	case reached && stage == "data":
		// Data may run on go-smtp's BDAT goroutine: let go-smtp write
		// the reply, then Reset (called after it) hangs up.
		ss.tc.errs.mu.Lock()
		ss.tc.errs.pending = true
		ss.tc.errs.mu.Unlock()
	case reached:
		ss.tc.hangUp(ss.conn.Conn(), r, stage, n)
		return err
	}
	if r != nil {
		ss.tc.markOwn(r)
	}
	return err
}

// Mail implements smtp.Session.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if !ss.enter() {
		return replyTooManyErrors(ss.srv.opts.Hostname)
	}
	return ss.answered("mail", ss.mail(from, opts), true)
}

// Rcpt implements smtp.Session. The 452 over MaxRecipients is free for the
// first RecipientOvershootLimit RCPTs of a transaction (Postfix:
// "if (state->rcpt_overshoot++ < var_smtpd_rcpt_overlim) return (0)").
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !ss.enter() {
		return replyTooManyErrors(ss.srv.opts.Hostname)
	}
	err := ss.rcpt(to, opts)
	counts := true
	var r *smtp.SMTPError
	if errors.As(err, &r) && *r == *replyTooManyRecipients() {
		counts = ss.srv.limits.overshoot < 0 || ss.overshoot >= ss.srv.limits.overshoot
		ss.overshoot++
	}
	return ss.answered("rcpt", err, counts)
}

// Data implements smtp.Session for DATA and BDAT. An accepted message
// forgives the errors before it.
func (ss *session) Data(r io.Reader) error {
	err := ss.data(r)
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code < 400 {
		ss.tc.forgive()
	}
	ss.tc.tarpit(ss.ctx)
	return ss.answered("data", err, true)
}

// Auth implements smtp.AuthSession. Every refused AUTH is an error, AUTH
// on port 25 included (its 502 5.5.1 stays: Mailu's reply).
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.enter() {
		return nil, replyTooManyErrors(ss.srv.opts.Hostname)
	}
	srv, err := ss.auth(mech)
	if err != nil {
		return nil, ss.answered("auth", err, true)
	}
	return saslCounted{Server: srv, ss: ss}, nil
}

// saslCounted counts the error that ends a SASL exchange.
type saslCounted struct {
	sasl.Server
	ss *session
}

func (s saslCounted) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := s.Server.Next(resp)
	if err != nil {
		return nil, false, s.ss.answered("auth", err, true)
	}
	return ch, done, nil
}
