package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

// session is one go-smtp session: from EHLO to QUIT, or to STARTTLS (after
// which go-smtp starts a fresh one, forgetting AUTH as RFC 3207 4.2 wants).
type session struct {
	srv    *Server
	conn   *smtp.Conn
	tc     *trackedConn
	log    *slog.Logger
	ctx    context.Context // cancelled by Logout
	cancel context.CancelFunc
	tls    bool

	user *store.User // authenticated submission user

	// The transaction (RFC 5321 3.3), cleared by Reset.
	mailSeen bool
	sender   string // normalised reverse-path, "" for <>
	size     int64  // MAIL FROM SIZE= (RFC 1870), 0 if not given
	dsnRet   string // MAIL FROM RET= (RFC 3461 4.3), "" if not given
	dsnEnvID string // MAIL FROM ENVID= (RFC 3461 4.4), decoded
	// requireTLS: MAIL FROM REQUIRETLS (RFC 8689), only taken under TLS.
	requireTLS bool
	routes     []inbound.Route
	rcptSeen   map[string]bool
	// overshoot counts the RCPTs answered 452 over MaxRecipients in this
	// transaction (Postfix rcpt_overshoot, reset with the transaction).
	overshoot int

	// rate is the transaction's place under MESSAGE_RATELIMIT, taken at
	// MAIL and settled at the end of DATA, RSET or Logout (which go-smtp
	// may call from another goroutine, hence the lock).
	rateMu sync.Mutex
	rate   *rateHold
}

type rateHold struct{ key, ticket string }

func (s *Server) newSession(c *smtp.Conn, tc *trackedConn) *session {
	_, isTLS := c.TLSConnectionState()
	ctx, cancel := context.WithCancel(tc.Context())
	return &session{
		srv:    s,
		conn:   c,
		tc:     tc,
		log:    tc.log,
		ctx:    ctx,
		cancel: cancel,
		tls:    isTLS,
	}
}

// Reset implements smtp.Session: RSET, a new EHLO, or the end of DATA
// (after its reply has been written).
func (ss *session) Reset() {
	ss.hangUpIfPending()
	ss.rateSettle(false) // a message that went was settled in Data
	ss.overshoot = 0
	ss.mailSeen = false
	ss.sender = ""
	ss.dsnRet, ss.dsnEnvID = "", ""
	ss.requireTLS = false
	ss.routes = nil
	ss.rcptSeen = nil
}

// Logout implements smtp.Session.
func (ss *session) Logout() error {
	ss.rateSettle(false)
	ss.cancel()
	return nil
}

// authOffered reports whether AUTH may be advertised and used now: only on
// submission, and only over TLS unless TLS_FLAVOR=notls (Mailu: ssl =
// required, disable_plaintext_auth).
func (ss *session) authOffered() bool {
	return ss.srv.opts.Role.submission() && (ss.tls || ss.srv.opts.NoTLS)
}

// AuthMechanisms implements smtp.AuthSession. Port 25 never lists any
// (Mailu: nginx smtp_auth none), nor does 587 before STARTTLS.
func (ss *session) AuthMechanisms() []string {
	if !ss.authOffered() {
		return nil
	}
	// Mailu: auth_mechanisms = plain login; Petrel adds SCRAM-SHA-256
	// (and -PLUS over TLS) when the authenticator offers it.
	mechs := []string{sasl.Plain, auth.LoginMechanism}
	return append(auth.ScramMechanismsOf(ss.srv.opts.Auth, ss.tls), mechs...)
}

// scramOffered reports whether mech is a SCRAM mechanism offered now.
func (ss *session) scramOffered(mech string) (auth.ScramProvider, bool) {
	sp, ok := ss.srv.opts.Auth.(auth.ScramProvider)
	if !ok {
		return nil, false
	}
	for _, m := range sp.ScramMechanisms(ss.tls) {
		if m == mech {
			return sp, true
		}
	}
	return nil, false
}

// scram runs a SCRAM-SHA-256[-PLUS] exchange (RFC 5802, RFC 7677) through
// the auth core; the server-final message goes out as a last 334
// challenge, answered by an empty line (RFC 4954 has no additional data
// with success).
func (ss *session) scram(sp auth.ScramProvider, mech string) sasl.Server {
	var cs *tls.ConnectionState
	if st, ok := ss.conn.TLSConnectionState(); ok {
		cs = &st
	}
	l := sp.NewScramLogin(ss.ctx, auth.Attempt{
		Protocol: "smtp",
		Port:     ss.srv.opts.Role.Port(),
		Remote:   ss.tc.Remote().Addr(),
		Log:      ss.log,
	}, mech == auth.ScramSHA256Plus, cs)
	return saslFunc(func(resp []byte) ([]byte, bool, error) {
		ch, done, err := l.Next(resp)
		switch {
		case err != nil:
			r := replyForSASL(err)
			if !errors.Is(err, auth.ErrBadCredentials) && !errors.Is(err, auth.ErrRateLimited) && !errors.Is(err, auth.ErrScramMalformed) && !errors.Is(err, auth.ErrScramExchange) {
				r = replyLocalProblem() // the store could not answer
			}
			ss.logReply("auth failed", r, err, "mech", mech, "username", l.Username())
			return nil, false, r
		case !done:
			return ch, false, nil
		}
		return nil, true, ss.loggedIn(mech, l.Username(), l.Result())
	})
}

// auth answers AUTH (wrapped by Auth in errlimit.go).
func (ss *session) auth(mech string) (sasl.Server, error) {
	switch {
	case ss.mailSeen:
		// RFC 4954 4: not during a mail transaction.
		return nil, replyAuthInTransaction()
	case ss.srv.opts.Role == RoleMX:
		return ss.port25Auth(mech)
	case !ss.authOffered():
		return nil, replyStartTLSFirst()
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return saslReplies{sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				// RFC 4616 authzid: Petrel has no proxy logins.
				ss.log.Info("auth failed", "mech", "PLAIN", "username", username,
					"reason", "authorization identity differs from the username")
				return replyBadCredentials()
			}
			return ss.login("PLAIN", username, password)
		})}, nil
	case auth.LoginMechanism:
		return saslReplies{auth.NewLoginServer(func(username, password string) error {
			return ss.login(auth.LoginMechanism, username, password)
		})}, nil
	}
	if sp, ok := ss.scramOffered(strings.ToUpper(mech)); ok {
		return ss.scram(sp, strings.ToUpper(mech)), nil
	}
	return nil, replyUnknownMechanism()
}

// login checks one AUTH attempt. The password is handed over as an
// auth.Secret and never logged.
func (ss *session) login(mech, username, password string) error {
	res, err := ss.srv.opts.Auth.Authenticate(ss.ctx, auth.Attempt{
		Username: username,
		Password: auth.Secret(password),
		Protocol: "smtp", // Mailu: Auth-Protocol for submission logins
		Port:     ss.srv.opts.Role.Port(),
		Remote:   ss.tc.Remote().Addr(),
		Log:      ss.log,
	})
	if err != nil {
		r := replyFor(err)
		ss.logReply("auth failed", r, err, "mech", mech, "username", username)
		return r
	}
	return ss.loggedIn(mech, username, res)
}

// loggedIn records a successful login.
func (ss *session) loggedIn(mech, username string, res *auth.Result) error {
	if res == nil || res.User == nil {
		ss.log.Error("authenticator returned no user", "username", username)
		return replyLocalProblem()
	}
	ss.user = res.User
	ss.log = ss.log.With("user", res.User.Email)
	ss.log.Info("authenticated", "mech", mech, "app_token", res.ViaToken)
	return nil
}

// port25Auth answers AUTH on port 25 with 502 5.5.1 and counts the attempt
// against the client's IP limit (Mailu: auth.py nginx_authentication,
// is_port_25 branch). With an initial response (RFC 4954 4) the username
// in it is logged; without one the answer is 502 at once, never a 334
// that would take the client's next command for a username (issue 17).
func (ss *session) port25Auth(mech string) (sasl.Server, error) {
	if ss.srv.opts.Auth == nil {
		return nil, replyNoAuthOn25()
	}
	return saslFunc(func(resp []byte) ([]byte, bool, error) {
		var username string
		switch strings.ToUpper(mech) {
		case sasl.Plain:
			if parts := bytes.Split(resp, []byte{0}); len(parts) == 3 {
				username = string(parts[1])
			}
		case auth.LoginMechanism:
			username = string(resp)
		}
		ss.srv.opts.Auth.Port25Auth(ss.ctx, ss.tc.Remote().Addr(), username, ss.log)
		return nil, false, replyNoAuthOn25()
	}), nil
}

// spaceLow reports whether the free disk space is below DISK_RESERVE.
func (ss *session) spaceLow() bool {
	return ss.srv.opts.Space != nil && ss.srv.opts.Space.Low()
}

// mail answers MAIL (wrapped by Mail in errlimit.go).
func (ss *session) mail(from string, opts *smtp.MailOptions) error {
	o := &ss.srv.opts
	switch {
	case ss.mailSeen:
		// RFC 5321 4.1.4: one transaction at a time.
		return ss.reject("mail", replyNestedMail(), "from", from)
	case o.Role == RoleMX && o.InboundTLSEnforce && !ss.tls:
		return ss.reject("mail", replyStartTLSFirst(), "from", from, "reason", "INBOUND_TLS_ENFORCE")
	case o.Role.submission() && ss.user == nil:
		if !ss.authOffered() {
			return ss.reject("mail", replyStartTLSFirst(), "from", from)
		}
		return ss.reject("mail", replyAuthRequired(), "from", from)
	}

	if opts != nil && opts.RequireTLS && !ss.tls {
		// RFC 8689 4.1: REQUIRETLS is only advertised, and only taken,
		// over TLS (go-smtp would accept it in clear).
		return ss.reject("mail", replyRequireTLSNeedsTLS(), "from", from)
	}
	if ss.spaceLow() {
		// Postfix: queue_minfree, checked at MAIL FROM.
		return ss.reject("mail", replyInsufficientStorage(), "from", from)
	}
	sender, r := parseSender(from)
	if r != nil {
		return ss.reject("mail", r, "from", from)
	}
	if o.Role == RoleMX && sender != "" && !fqdnSender(sender) {
		// Mailu: reject_non_fqdn_sender on port 25.
		return ss.reject("mail", replyNonFQDNSender(sender), "from", from)
	}

	if ss.user != nil {
		ok, err := o.Router.SenderAllowed(ss.ctx, ss.user, sender, o.WildcardSenders)
		if err != nil {
			return ss.fail("mail", err, "from", from)
		}
		if !ok {
			// Mailu: reject_authenticated_sender_login_mismatch.
			return ss.reject("mail", replySenderNotOwned(ss.user.Email), "from", from)
		}
		ok, err = ss.rateTake()
		if err != nil {
			// The count is unknown (the store failed): a temporary
			// refusal, never a pass.
			return ss.fail("mail", fmt.Errorf("message rate limit: %w", err), "from", from)
		}
		if !ok {
			// Mailu: postfix_sender_rate (MESSAGE_RATELIMIT).
			return ss.reject("mail", replyRateLimited(), "from", from)
		}
	}

	ss.mailSeen = true
	ss.sender = sender
	ss.size = 0
	ss.dsnRet, ss.dsnEnvID = "", ""
	ss.requireTLS = false
	if opts != nil {
		ss.requireTLS = opts.RequireTLS
		ss.size = opts.Size // RFC 1870: 0 when not declared
		// RFC 3461 4.3, 4.4: go-smtp checked RET's value and ENVID's
		// xtext; both go with the queue entries and shape the DSNs.
		ss.dsnRet, ss.dsnEnvID = string(opts.Return), opts.EnvelopeID
	}
	ss.routes = nil
	ss.rcptSeen = nil
	ss.overshoot = 0
	return nil
}

// rateTake takes the transaction's place under MESSAGE_RATELIMIT for the
// logged-in user (exempt logins and port 25 have none).
func (ss *session) rateTake() (bool, error) {
	lim := ss.srv.opts.MessageRate
	if lim == nil || ss.user == nil {
		return true, nil
	}
	key := strings.ToLower(ss.user.Email)
	if ss.srv.exempt[key] {
		return true, nil
	}
	ticket, ok, err := lim.Take(ss.ctx, key)
	if err != nil || !ok {
		return false, err
	}
	ss.rateMu.Lock()
	ss.rate = &rateHold{key: key, ticket: ticket}
	ss.rateMu.Unlock()
	return true, nil
}

// rateSettle ends the transaction's place, if it holds one: a sent
// message counts, an unsent one gives its place back. It runs on a
// disconnect too, so it does not use the session's context.
func (ss *session) rateSettle(sent bool) {
	ss.rateMu.Lock()
	h := ss.rate
	ss.rate = nil
	ss.rateMu.Unlock()
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ss.ctx), 10*time.Second)
	defer cancel()
	if err := ss.srv.opts.MessageRate.Settle(ctx, h.key, h.ticket, sent); err != nil {
		ss.log.Warn("message rate limit not settled", "sent", sent, "err", err.Error())
	}
}

// parseSender checks a reverse-path. Routing characters are harmless in a
// sender (nothing is routed to it before a bounce, and a bounce goes
// through the same checks as any RCPT), so the percent hack and bang paths
// are only refused in recipients.
func parseSender(from string) (string, *smtp.SMTPError) {
	p, err := mailaddr.ParsePath(from)
	if err == nil {
		if p.Null {
			return "", nil
		}
		return p.Addr(), nil
	}
	if errors.Is(err, mailaddr.ErrPercentHack) || errors.Is(err, mailaddr.ErrBangPath) {
		if n, nerr := mailaddr.Normalize(from); nerr == nil {
			return n, nil
		}
	}
	return "", replyBadSender(err)
}

// fqdnSender reports whether the sender's domain has a dot (Postfix
// reject_non_fqdn_sender).
func fqdnSender(addr string) bool {
	_, d := mailaddr.Split(addr)
	return strings.Contains(d, ".")
}

// rcpt answers RCPT (wrapped by Rcpt in errlimit.go).
func (ss *session) rcpt(to string, opts *smtp.RcptOptions) error {
	o := &ss.srv.opts
	if !ss.mailSeen {
		// go-smtp checks MAIL first; this only guards a failed MAIL.
		return ss.reject("rcpt", replyNeedMail(), "rcpt", to)
	}
	if len(ss.routes) >= o.MaxRecipients {
		return ss.reject("rcpt", replyTooManyRecipients(), "rcpt", to)
	}
	p, err := mailaddr.ParsePath(to)
	if err != nil {
		return ss.reject("rcpt", replyBadRecipient(to, err), "rcpt", to, "reason", err.Error())
	}
	if p.Null {
		return ss.reject("rcpt", replyBadRecipient(to, mailaddr.ErrSyntax), "rcpt", to)
	}
	route, err := o.Router.Resolve(ss.ctx, p.Addr())
	if err != nil {
		if errors.Is(err, inbound.ErrUnknownRecipient) {
			return ss.reject("rcpt", replyUnknownRecipient(p.Addr()), "rcpt", to)
		}
		if errors.Is(err, inbound.ErrBadAddress) {
			return ss.reject("rcpt", replyBadRecipient(to, err), "rcpt", to, "reason", err.Error())
		}
		return ss.fail("rcpt", err, "rcpt", to)
	}
	if route.Kind == inbound.RouteForeign && o.Role == RoleMX && !ss.inRelayNets() {
		// Mailu: permit_mynetworks, reject_unauth_destination.
		return ss.reject("rcpt", replyRelayDenied(p.Addr()), "rcpt", to)
	}
	if qc, ok := o.Router.(QuotaChecker); ok {
		// One full mailbox refuses its own RCPT only (RFC 3463 4.2.2 /
		// 5.2.2), never the whole transaction after DATA.
		if err := qc.CheckQuota(ss.ctx, route, ss.size); err != nil {
			switch {
			case errors.Is(err, inbound.ErrTooBigForQuota):
				return ss.reject("rcpt", replyTooBigForQuota(), "rcpt", to)
			case errors.Is(err, inbound.ErrMailboxFull):
				return ss.reject("rcpt", replyMailboxFull(), "rcpt", to)
			}
			return ss.fail("rcpt", err, "rcpt", to)
		}
	}
	key := route.Rcpt
	if route.Kind == inbound.RouteLocal {
		// Local look-ups fold case; a remote local part's case is the
		// remote host's to interpret (RFC 5321 2.4).
		key = strings.ToLower(key)
	}
	if ss.rcptSeen[key] {
		return nil // a duplicate RCPT gets one copy, as Postfix's duplicate filter
	}
	if ss.rcptSeen == nil {
		ss.rcptSeen = make(map[string]bool)
	}
	ss.rcptSeen[key] = true
	route.DSN = rcptDSN(opts)
	ss.routes = append(ss.routes, route)
	return nil
}

func (ss *session) inRelayNets() bool {
	ip := ss.tc.Remote().Addr()
	if !ip.IsValid() {
		return false
	}
	for _, p := range ss.srv.opts.RelayNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// reject logs a policy refusal (one INFO "rejected" event) and returns the
// reply.
func (ss *session) reject(stage string, r *smtp.SMTPError, args ...any) error {
	ss.log.Info("rejected", append([]any{"stage", stage, "code", r.Code, "reply", r.Message}, args...)...)
	if f := ss.srv.opts.OnReject; f != nil {
		f()
	}
	return r
}

// fail maps an unexpected error and logs its detail; the client sees only
// the short text.
func (ss *session) fail(stage string, err error, args ...any) error {
	r := replyFor(err)
	ss.logReply("failed", r, err, append([]any{"stage", stage}, args...)...)
	return r
}

// logReply logs err with its reply: local problems at WARN with the
// detail, policy outcomes at INFO.
func (ss *session) logReply(msg string, r *smtp.SMTPError, err error, args ...any) {
	args = append(args, "code", r.Code, "reply", r.Message, "err", err.Error())
	if isLocalProblem(r) {
		ss.log.Warn(msg, args...)
		return
	}
	ss.log.Info(msg, args...)
}

// saslReplies wraps a SASL server so that every error it returns reaches
// the client as a Petrel reply, never as go-smtp's raw text.
type saslReplies struct{ sasl.Server }

func (s saslReplies) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := s.Server.Next(resp)
	if err != nil {
		return nil, false, replyForSASL(err)
	}
	return ch, done, nil
}

// saslFunc adapts a function to sasl.Server.
type saslFunc func([]byte) ([]byte, bool, error)

func (f saslFunc) Next(resp []byte) ([]byte, bool, error) { return f(resp) }

// rcptDSN keeps a RCPT's RFC 3461 NOTIFY and ORCPT (go-smtp checked their
// syntax: NEVER alone, xtext-decoded ORCPT of type rfc822 or utf-8).
func rcptDSN(opts *smtp.RcptOptions) store.RcptDSN {
	var d store.RcptDSN
	if opts == nil {
		return d
	}
	if len(opts.Notify) > 0 {
		n := make([]string, len(opts.Notify))
		for i, v := range opts.Notify {
			n[i] = strings.ToUpper(string(v))
		}
		d.Notify = strings.Join(n, ",")
	}
	if opts.OriginalRecipient != "" {
		d.ORcpt = strings.ToLower(string(opts.OriginalRecipientType)) + ";" + opts.OriginalRecipient
	}
	return d
}
