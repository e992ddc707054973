package imapd

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

// errAnswered: the handler wrote its own tagged response (STARTTLS must
// answer before the handshake).
var errAnswered = errors.New("answered")

// maxSASLSteps bounds the challenges of one AUTHENTICATE (LOGIN needs two).
const maxSASLSteps = 4

// Texts of refused logins. Mailu's nginx.py answers IMAP failures with
// "Authentication failed" and rate limits with "Temporary authentication
// failure (rate-limit)"; the codes are RFC 5530's.
const (
	textAuthFailed  = "Authentication failed"
	textRateLimited = "Temporary authentication failure (rate-limit)"
	textNeedTLS     = "Use STARTTLS first"
)

// cmdStartTLS switches to TLS (RFC 9051 6.2.1).
func cmdStartTLS(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	switch {
	case s.tls:
		return bad("TLS is already active")
	case !s.startTLSOffered():
		return no("", "STARTTLS is not available: this server has no certificate (TLS_FLAVOR=notls)")
	}
	s.tagged(c.tag, &result{kind: "OK", text: "Begin TLS negotiation now"})
	if err := s.w.Flush(); err != nil {
		s.closing = true
		return errAnswered
	}
	if n := s.r.Buffered(); n > 0 {
		// Anything sent after STARTTLS in plaintext could have been
		// injected by a man in the middle (CVE-2011-0411); it is dropped.
		s.log.Warn("plaintext after STARTTLS discarded", "bytes", n)
	}
	if !s.startTLS() {
		s.closing = true
	}
	return errAnswered
}

// cmdLogin is LOGIN user password (RFC 9051 6.2.3).
func cmdLogin(s *session, c *command) error {
	d := c.args
	d.SP()
	user := d.AString()
	d.SP()
	pass := d.AString()
	if err := d.End(); err != nil {
		return err
	}
	if !s.loginAllowed() {
		// RFC 9051 6.2.3 with LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
		return no("PRIVACYREQUIRED", textNeedTLS)
	}
	return s.login("LOGIN", user, pass)
}

// authCapabilities lists the AUTH= capabilities: Mailu's plain and
// login, and SCRAM-SHA-256 (-PLUS over TLS) when the authenticator
// offers it.
func (srv *Server) authCapabilities(tlsOn bool) []string {
	caps := []string{"AUTH=PLAIN", "AUTH=LOGIN"} // Mailu: auth_mechanisms = plain login
	for _, m := range auth.ScramMechanismsOf(srv.opts.Auth, tlsOn) {
		caps = append(caps, "AUTH="+m)
	}
	return caps
}

// scramLogin starts a SCRAM exchange if mech is a SCRAM mechanism
// offered now.
func (s *session) scramLogin(mech string) *auth.ScramLogin {
	var cs *tls.ConnectionState
	if tc, ok := s.conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cs = &st
	}
	return auth.StartScram(s.ctx, s.srv.opts.Auth, mech, s.tls, cs, auth.Attempt{
		Protocol: "imap", // the core checks enable_imap
		Port:     s.srv.Port(),
		Remote:   s.tc.Remote().Addr(),
		Log:      s.log,
	})
}

// cmdAuthenticate is AUTHENTICATE mechanism [initial-response] (RFC 9051
// 6.2.2, RFC 4959 SASL-IR) for PLAIN, LOGIN and SCRAM-SHA-256[-PLUS]
// (RFC 5802, RFC 7677; the server-final message is a last continuation
// the client answers with an empty line).
func cmdAuthenticate(s *session, c *command) error {
	d := c.args
	d.SP()
	mechName := strings.ToUpper(d.Atom())
	var ir []byte // nil: no initial response
	if d.Accept(' ') {
		arg := d.run(func(c byte) bool { return isAtomChar(c) || c == '=' })
		if d.Err() == nil {
			if arg == "=" {
				ir = []byte{} // RFC 4959: "=" is an empty initial response
			} else if b, err := base64.StdEncoding.DecodeString(arg); err == nil {
				ir = b
			} else {
				d.fail("Initial response is not base64")
			}
		}
	}
	if err := d.End(); err != nil {
		return err
	}
	if !s.loginAllowed() {
		return no("PRIVACYREQUIRED", textNeedTLS)
	}
	var username, password string
	var srv sasl.Server
	var scram *auth.ScramLogin
	switch mechName {
	case sasl.Plain:
		srv = sasl.NewPlainServer(func(identity, u, p string) error {
			if identity != "" && identity != u {
				// RFC 4616 authzid: Petrel has no proxy logins.
				return errAuthzid
			}
			username, password = u, p
			return nil
		})
	case auth.LoginMechanism:
		srv = auth.NewLoginServer(func(u, p string) error {
			username, password = u, p
			return nil
		})
	default:
		scram = s.scramLogin(mechName)
		if scram == nil {
			return no("CANNOT", "Unsupported authentication mechanism: use PLAIN or LOGIN")
		}
		srv = scram
	}
	resp := ir
	for step := 0; ; step++ {
		challenge, done, err := srv.Next(resp)
		if err != nil && scram != nil {
			if errors.Is(err, auth.ErrScramMalformed) || errors.Is(err, auth.ErrScramExchange) {
				return s.authFailed(mechName, scram.Username(), err.Error(), nil)
			}
			return s.authFailed(mechName, scram.Username(), "", err)
		}
		if err != nil {
			reason := "malformed SASL response"
			if errors.Is(err, errAuthzid) {
				reason = err.Error()
			}
			return s.authFailed(mechName, username, reason, nil)
		}
		if done {
			break
		}
		if step == maxSASLSteps {
			return s.authFailed(mechName, username, "too many SASL steps", nil)
		}
		s.w.Raw("+ ")
		s.w.Raw(base64.StdEncoding.EncodeToString(challenge))
		s.w.CRLF()
		if err := s.w.Flush(); err != nil {
			return errAnswered // the session ends on the write error
		}
		line, err := s.readLine()
		if err != nil {
			return err
		}
		if line == "*" {
			// RFC 9051 6.2.2: the client cancels; the server says BAD.
			return bad("Authentication canceled")
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return s.authFailed(mechName, username, "SASL response is not base64", nil)
		}
		resp = b
	}
	if scram != nil {
		return s.loggedIn(mechName, scram.Username(), scram.Result(), nil)
	}
	return s.login(mechName, username, password)
}

var errAuthzid = errors.New("authorization identity differs from the username")

// readLine reads one raw client line (an AUTHENTICATE response) without
// its line end, within the line limit.
func (s *session) readLine() (string, error) {
	s.arm()
	var b strings.Builder
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", &readError{err}
		}
		if c == '\n' {
			return strings.TrimSuffix(b.String(), "\r"), nil
		}
		if b.Len() >= s.srv.opts.MaxLineLength {
			// The rest is not read: the session closes (skipRest).
			s.d.eol = false
			s.d.err = errLineTooLong
			return "", errLineTooLong
		}
		b.WriteByte(c)
	}
}

// login checks credentials with the auth core, claims a place in the per
// user and address limit and creates the default mailboxes. The password
// goes to the core as an auth.Secret and is never logged.
func (s *session) login(mech, username, password string) error {
	res, err := s.srv.opts.Auth.Authenticate(s.ctx, auth.Attempt{
		Username: username,
		Password: auth.Secret(password),
		Protocol: "imap", // Mailu: Auth-Protocol; the core checks enable_imap
		Port:     s.srv.Port(),
		Remote:   s.tc.Remote().Addr(),
		Log:      s.log,
	})
	return s.loggedIn(mech, username, res, err)
}

// loggedIn finishes a login the auth core has decided.
func (s *session) loggedIn(mech, username string, res *auth.Result, err error) error {
	if err == nil && (res == nil || res.User == nil) {
		err = errors.New("authenticator returned no user")
	}
	if err != nil {
		return s.authFailed(mech, username, "", err)
	}
	user := res.User.Email
	if !s.tc.ClaimUser(user) {
		s.log.Warn("login refused: too many sessions of this user from this address", "user", user,
			"limit", s.srv.opts.MaxConnsPerUserIP)
		// RFC 5530 LIMIT: the credentials were right, but the login
		// would exceed Mailu's mail_max_userip_connections.
		return no("LIMIT", "Too many connections of this account from your address, close another mail client first")
	}
	// Mailu: Trash, Drafts, Sent and Junk exist for every user
	// (RFC 6154 special-use), created at the first login.
	if err := s.srv.opts.Store.EnsureMailboxes(s.ctx, user, store.DefaultMailboxes); err != nil {
		s.tc.ReleaseUser()
		s.log.Error("cannot create the default mailboxes", "user", user, "err", err)
		return no("UNAVAILABLE", "Cannot open your mailboxes now, try again later")
	}
	s.state = stateAuthenticated
	s.user = user
	s.log = s.log.With("user", user)
	s.log.Info("imap login", "mech", mech, "app_token", res.ViaToken, "tls", s.tls)
	// RFC 9051 7.1: the capabilities change at login.
	return ok("CAPABILITY "+s.capabilities(), "Logged in")
}

// authFailed answers a refused login and hangs up after
// maxAuthFailures. err is the auth core's verdict, or nil when the
// exchange itself was broken (reason says how).
func (s *session) authFailed(mech, username, reason string, err error) error {
	s.authFailures++
	var res error
	switch {
	case err == nil:
		s.log.Info("auth failed", "mech", mech, "username", username, "reason", reason)
		res = no("AUTHENTICATIONFAILED", textAuthFailed)
	case errors.Is(err, auth.ErrNotFullAddress):
		res = no("AUTHENTICATIONFAILED", "Authentication failed: "+auth.NotFullAddressText)
	case errors.Is(err, auth.ErrBadCredentials):
		res = no("AUTHENTICATIONFAILED", textAuthFailed)
	case errors.Is(err, auth.ErrRateLimited):
		// Mailu: limiter rate limit; RFC 5530 LIMIT.
		res = no("LIMIT", textRateLimited)
	default:
		s.log.Error("authentication could not be checked", "mech", mech, "username", username, "err", err)
		res = no("UNAVAILABLE", "Temporary server problem, try again later")
	}
	if s.authFailures >= maxAuthFailures {
		s.log.Info("too many failed logins; closing the connection", "failures", s.authFailures)
		s.closing = true
		s.logout = "auth failures"
		s.byeAfter = "Too many failed logins"
	}
	return res
}
