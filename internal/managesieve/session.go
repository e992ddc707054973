package managesieve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/obs"
)

// Limits that end a session which is going nowhere.
const (
	maxBadCommands   = 20
	maxAuthFailures  = 3 // as Dovecot's login processes
	maxSASLSteps     = 4
	handshakeTimeout = 30 * time.Second
	// maxStringLiteral bounds a literal that is not a script: a name or
	// a SASL response.
	maxStringLiteral = 16 << 10
	// hardMaxScript bounds a script literal even when Limits.MaxSize is
	// off: the reader holds a literal in memory.
	hardMaxScript = 16 << 20
)

// session is one client connection.
type session struct {
	srv  *Server
	tc   *trackedConn
	conn net.Conn // tc, or TLS over it
	cr   *cmdReader
	w    *bufio.Writer
	log  *slog.Logger
	ctx  context.Context
	// trace logs the dialogue at LOG_LEVEL=TRACE (trace.go); nil below.
	trace *obs.Trace

	tls          bool
	user         string // "" before AUTHENTICATE
	authFailures int
	badCommands  int
	closing      bool
	linger       bool   // the client may still be sending: drain before closing
	logout       string // why the session ended
}

func newSession(srv *Server, tc *trackedConn) *session {
	return &session{srv: srv, tc: tc, conn: tc, log: tc.log, ctx: tc.Context()}
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	var in io.Reader = c
	var out io.Writer = c
	if s.trace == nil {
		s.trace = obs.NewTrace(s.log, &sieveTraceFilter{}) // nil below LOG_LEVEL=TRACE
	}
	if s.trace != nil {
		in = io.TeeReader(in, s.trace.Client())
		out = io.MultiWriter(out, s.trace.Server())
	}
	opts := &s.srv.opts
	maxScript := opts.Limits.MaxSize
	if maxScript <= 0 || maxScript > hardMaxScript {
		maxScript = hardMaxScript
	}
	s.cr = &cmdReader{
		r:         bufio.NewReaderSize(in, opts.MaxLineLength),
		maxString: maxStringLiteral,
		maxScript: maxScript,
		// A script a little over MAXSIZE is read and refused with NO; a
		// literal far beyond it ends the session instead.
		maxSkip: max(4*maxScript, 4<<20),
		arm:     func(first bool) bool { return s.tc.armRead(first, opts.IdleTimeout) },
	}
	s.w = bufio.NewWriterSize(out, 32<<10)
}

// run is the whole session.
func (s *session) run() {
	s.log.Debug("connect")
	defer func() {
		if s.linger {
			s.tc.Linger(s.conn)
		}
		if s.conn != s.tc {
			_ = s.conn.Close()
		}
		if s.user != "" {
			s.log.Info("sieve logout", "reason", s.logout)
		}
		s.log.Debug("disconnect", "reason", s.logout)
	}()
	s.setConn(s.tc)
	// RFC 5804 1.7: the greeting is the capability list and OK.
	s.capabilities()
	s.ok("", s.srv.opts.Hostname+" Petrel ManageSieve ready")
	for !s.closing {
		if s.cr.r.Buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				s.logout = "disconnect"
				return
			}
		}
		cmd, err := s.cr.readCommand()
		if err != nil {
			s.readFailed(err)
			continue
		}
		s.dispatch(cmd)
	}
	_ = s.w.Flush()
}

// readFailed answers what the reader could not turn into a command.
func (s *session) readFailed(err error) {
	var se *syntaxError
	var tl *tooLargeError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		s.bad(se.msg)
	case errors.As(err, &tl) && tl.script:
		s.no("QUOTA/MAXSIZE", "Script is larger than "+strconv.FormatInt(tl.limit, 10)+" octets")
	case errors.As(err, &tl):
		s.bad("String too long")
	case errors.Is(err, errLineTooLong):
		s.log.Info("line too long, closing", "max_line_length", s.srv.opts.MaxLineLength)
		s.bye("", "Line too long")
		s.closing, s.linger, s.logout = true, true, "line too long"
	case errors.Is(err, errLiteralHuge):
		s.log.Info("literal too large, closing")
		s.bye("QUOTA/MAXSIZE", "Literal too large")
		s.closing, s.linger, s.logout = true, true, "literal too large"
	case errors.Is(err, errDraining) || s.tc.Draining():
		// RFC 5804 1.3 TRYLATER.
		s.bye("TRYLATER", "Server shutting down, try again later")
		s.closing, s.logout = true, "shutdown"
	case errors.As(err, &ne) && ne.Timeout():
		s.bye("", "Disconnected for inactivity")
		s.closing, s.logout = true, "timeout"
	default:
		s.closing, s.logout = true, "disconnect"
	}
}

// ---- replies ----

// quote makes a quoted string of a fixed text (RFC 5804 4): no CR or LF
// ever reaches it; DQUOTE and "\" are escaped.
func quote(text string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\r', '\n', 0:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeString sends data as a quoted string when it can be one, else as a
// literal {n} (RFC 5804 4 literal-s2c).
func (s *session) writeString(data []byte) {
	if len(data) <= maxQuoted && bytes.IndexAny(data, "\r\n\x00") < 0 {
		s.w.WriteString(quote(string(data)))
		return
	}
	s.w.WriteString("{" + strconv.Itoa(len(data)) + "}\r\n")
	s.w.Write(data)
}

func (s *session) status(kind, code, text string) {
	s.w.WriteString(kind)
	if code != "" {
		s.w.WriteString(" (" + code + ")")
	}
	if text != "" {
		s.w.WriteString(" " + quote(text))
	}
	s.w.WriteString("\r\n")
}

func (s *session) ok(code, text string)  { s.status("OK", code, text) }
func (s *session) no(code, text string)  { s.status("NO", code, text) }
func (s *session) bye(code, text string) { s.status("BYE", code, text) }

// bad answers a command the server cannot parse or does not know, and
// hangs up after too many.
func (s *session) bad(text string) {
	s.badCommands++
	if s.badCommands >= maxBadCommands {
		s.bye("", "Too many bad commands")
		s.closing, s.linger, s.logout = true, true, "bad commands"
		return
	}
	s.no("", text)
}

// ---- dispatch ----

func (s *session) dispatch(c *command) {
	name := strings.ToUpper(c.name)
	switch name {
	case "":
		s.bad("Empty command")
		return
	case "CAPABILITY":
		if s.noArgs(c) {
			s.capabilities()
			s.ok("", "Capability completed")
		}
		return
	case "NOOP":
		s.cmdNoop(c)
		return
	case "LOGOUT":
		if s.noArgs(c) {
			s.ok("", "Logout completed")
			s.closing, s.logout = true, "logout"
		}
		return
	}
	if s.user == "" {
		switch name {
		case "STARTTLS":
			s.cmdStartTLS(c)
		case "AUTHENTICATE":
			s.cmdAuthenticate(c)
		case "HAVESPACE", "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT",
			"RENAMESCRIPT", "CHECKSCRIPT", "UNAUTHENTICATE":
			s.no("", "Authenticate first")
		default:
			s.bad("Unknown command")
		}
		return
	}
	switch name {
	case "HAVESPACE":
		s.cmdHaveSpace(c)
	case "PUTSCRIPT":
		s.cmdPutScript(c)
	case "CHECKSCRIPT":
		s.cmdCheckScript(c)
	case "LISTSCRIPTS":
		s.cmdListScripts(c)
	case "SETACTIVE":
		s.cmdSetActive(c)
	case "GETSCRIPT":
		s.cmdGetScript(c)
	case "DELETESCRIPT":
		s.cmdDeleteScript(c)
	case "RENAMESCRIPT":
		s.cmdRenameScript(c)
	case "UNAUTHENTICATE":
		s.cmdUnauthenticate(c)
	case "STARTTLS", "AUTHENTICATE":
		s.no("", "Already authenticated")
	default:
		s.bad("Unknown command")
	}
}

// noArgs answers NO for a command that takes no arguments but got some.
func (s *session) noArgs(c *command) bool {
	if len(c.args) != 0 {
		s.bad(strings.ToUpper(c.name) + " takes no arguments")
		return false
	}
	return true
}

// stringArgs returns the command's arguments as n strings, or answers NO.
func (s *session) stringArgs(c *command, n int) ([][]byte, bool) {
	if len(c.args) != n {
		s.bad("Wrong number of arguments")
		return nil, false
	}
	out := make([][]byte, n)
	for i, a := range c.args {
		if a.kind != argString {
			s.bad("Arguments must be strings (quoted or literals)")
			return nil, false
		}
		out[i] = a.s
	}
	return out, true
}

// cmdNoop: RFC 5804 2.13, with the optional tag echoed in (TAG).
func (s *session) cmdNoop(c *command) {
	switch {
	case len(c.args) == 0:
		s.ok("", "Done")
	case len(c.args) == 1 && c.args[0].kind == argString:
		s.w.WriteString("OK (TAG ")
		s.writeString(c.args[0].s)
		s.w.WriteString(") \"Done\"\r\n")
	default:
		s.bad("NOOP takes one optional string")
	}
}

// ---- capabilities ----

// loginAllowed: TLS is up, or TLS_FLAVOR=notls.
func (s *session) loginAllowed() bool { return s.tls || s.srv.opts.NoTLS }

// saslMechanisms: Mailu's plain and login, and SCRAM-SHA-256 (-PLUS over
// TLS) when the authenticator offers it; none while a login is not
// allowed (RFC 5804 1.7: SASL "" before STARTTLS).
func (s *session) saslMechanisms() []string {
	if !s.loginAllowed() {
		return nil
	}
	mechs := []string{sasl.Plain, auth.LoginMechanism}
	return append(mechs, auth.ScramMechanismsOf(s.srv.opts.Auth, s.tls)...)
}

// capabilities writes the capability lines (RFC 5804 1.7).
func (s *session) capabilities() {
	o := &s.srv.opts
	line := func(name, value string) {
		s.w.WriteString(quote(name))
		if value != "" || name == "SASL" {
			s.w.WriteString(" " + quote(value))
		}
		s.w.WriteString("\r\n")
	}
	line("IMPLEMENTATION", "Petrel")
	line("SASL", strings.Join(s.saslMechanisms(), " "))
	line("SIEVE", strings.Join(o.Extensions, " "))
	if !s.tls && o.TLSConfig != nil && s.user == "" {
		line("STARTTLS", "")
	}
	if o.MaxRedirects > 0 {
		line("MAXREDIRECTS", strconv.Itoa(o.MaxRedirects))
	}
	if len(o.NotifyMethods) > 0 {
		line("NOTIFY", strings.Join(o.NotifyMethods, " "))
	}
	if s.user != "" {
		line("OWNER", s.user) // RFC 5804 1.7: after authentication
	}
	line("UNAUTHENTICATE", "") // RFC 5804 2.14.1
	line("VERSION", "1.0")
}

// ---- STARTTLS ----

// cmdStartTLS: RFC 5804 2.2.
func (s *session) cmdStartTLS(c *command) {
	switch {
	case !s.noArgs(c):
		return
	case s.tls:
		s.no("", "TLS is already active")
		return
	case s.srv.opts.TLSConfig == nil:
		s.no("", "STARTTLS is not available: no certificate (TLS_FLAVOR=notls)")
		return
	}
	s.ok("", "Begin TLS negotiation now")
	if err := s.w.Flush(); err != nil {
		s.closing, s.logout = true, "disconnect"
		return
	}
	if n := s.cr.r.Buffered(); n > 0 {
		// Plaintext after STARTTLS could have been injected by a man in
		// the middle (CVE-2011-0411); it is dropped.
		s.log.Warn("plaintext after STARTTLS discarded", "bytes", n)
	}
	tc := tls.Server(s.tc, s.srv.opts.TLSConfig)
	d := min(handshakeTimeout, s.srv.opts.IdleTimeout)
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	_ = s.tc.NetConn().SetReadDeadline(time.Now().Add(d))
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Debug("TLS handshake failed", "err", err)
		s.closing, s.logout = true, "tls failed"
		return
	}
	st := tc.ConnectionState()
	s.log.Debug("TLS established", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	s.tls = true
	s.setConn(tc)
	// RFC 5804 2.2: the capabilities again, as they are after TLS.
	s.capabilities()
	s.ok("", "TLS negotiation successful")
}

// ---- AUTHENTICATE ----

var errAuthzid = errors.New("authorization identity differs from the username")

// cmdAuthenticate runs a SASL exchange (RFC 5804 2.1): challenges and
// responses are strings holding base64; "*" cancels; extra data with
// success (SCRAM's server-final message) goes in OK (SASL "...").
func (s *session) cmdAuthenticate(c *command) {
	if len(c.args) < 1 || len(c.args) > 2 || c.args[0].kind == argNumber || (len(c.args) == 2 && c.args[1].kind != argString) {
		s.bad("Use AUTHENTICATE \"mechanism\" [\"initial response\"]")
		return
	}
	if !s.loginAllowed() {
		// RFC 5804 1.3 ENCRYPT-NEEDED.
		s.no("ENCRYPT-NEEDED", "Use STARTTLS first")
		return
	}
	mech := strings.ToUpper(string(c.args[0].s))
	var username, password string
	var srv sasl.Server
	var scram *auth.ScramLogin
	switch mech {
	case sasl.Plain:
		srv = sasl.NewPlainServer(func(identity, u, p string) error {
			if identity != "" && identity != u {
				return errAuthzid // RFC 4616 authzid: Petrel has no proxy logins
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
		scram = s.scramLogin(mech)
		if scram == nil {
			s.no("", "Unsupported authentication mechanism")
			return
		}
		srv = scram
	}
	var resp []byte // nil: no initial response
	if len(c.args) == 2 {
		b, err := base64.StdEncoding.DecodeString(string(c.args[1].s))
		if err != nil {
			s.authFailed(mech, "", "initial response is not base64", nil)
			return
		}
		resp = b
	}
	var final []byte // SCRAM's server-final message
	scramIn := 0     // SCRAM client messages so far: first, then final
	for step := 0; ; step++ {
		if resp != nil {
			scramIn++
		}
		challenge, done, err := srv.Next(resp)
		if err != nil {
			switch {
			case scram != nil && (errors.Is(err, auth.ErrScramMalformed) || errors.Is(err, auth.ErrScramExchange)):
				s.authFailed(mech, scram.Username(), err.Error(), nil)
			case scram != nil:
				s.authFailed(mech, scram.Username(), "", err)
			case errors.Is(err, errAuthzid):
				s.authFailed(mech, username, errAuthzid.Error(), nil)
			default:
				s.authFailed(mech, username, "malformed SASL response", nil)
			}
			return
		}
		if done {
			break
		}
		if scram != nil && scramIn == 2 {
			// The client's proof was accepted: the server-final message
			// goes with OK, and the exchange ends without another round.
			final = challenge
			if _, done, err := srv.Next([]byte{}); err != nil || !done {
				s.authFailed(mech, scram.Username(), "SCRAM did not finish", err)
				return
			}
			break
		}
		if step == maxSASLSteps {
			s.authFailed(mech, username, "too many SASL steps", nil)
			return
		}
		s.writeString([]byte(base64.StdEncoding.EncodeToString(challenge)))
		s.w.WriteString("\r\n")
		if err := s.w.Flush(); err != nil {
			s.closing, s.logout = true, "disconnect"
			return
		}
		r, err := s.cr.readResponse()
		var se *syntaxError
		var tl *tooLargeError
		switch {
		case errors.As(err, &se):
			s.authFailed(mech, username, "bad SASL response: "+se.msg, nil)
			return
		case errors.As(err, &tl):
			s.authFailed(mech, username, "SASL response too long", nil)
			return
		case err != nil:
			s.readFailed(err)
			s.closing = true
			return
		case string(r) == "*":
			s.no("", "Authentication canceled")
			return
		}
		b, err := base64.StdEncoding.DecodeString(string(r))
		if err != nil {
			s.authFailed(mech, username, "SASL response is not base64", nil)
			return
		}
		resp = b
	}
	if scram != nil {
		s.loggedIn(mech, scram.Username(), scram.Result(), nil, final)
		return
	}
	res, err := s.srv.opts.Auth.Authenticate(s.ctx, s.attempt(username, password))
	s.loggedIn(mech, username, res, err, nil)
}

// attempt is one login for the auth core: Mailu's Auth-Protocol "sieve",
// which AUTH_REQUIRE_TOKENS covers. The password is an auth.Secret and
// never logged.
func (s *session) attempt(username, password string) auth.Attempt {
	return auth.Attempt{
		Username: username,
		Password: auth.Secret(password),
		Protocol: "sieve",
		Port:     Port,
		Remote:   s.tc.Remote().Addr(),
		Log:      s.log,
	}
}

func (s *session) scramLogin(mech string) *auth.ScramLogin {
	var cs *tls.ConnectionState
	if tc, ok := s.conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cs = &st
	}
	return auth.StartScram(s.ctx, s.srv.opts.Auth, mech, s.tls, cs, s.attempt("", ""))
}

// loggedIn finishes a login the auth core has decided.
func (s *session) loggedIn(mech, username string, res *auth.Result, err error, final []byte) {
	if err == nil && (res == nil || res.User == nil) {
		err = errors.New("authenticator returned no user")
	}
	if err != nil {
		s.authFailed(mech, username, "", err)
		return
	}
	user := res.User.Email
	if !s.tc.ClaimUser(user) {
		s.log.Warn("login refused: too many sessions of this user from this address", "user", user,
			"limit", s.srv.opts.MaxConnsPerUserIP)
		s.no("TRYLATER", "Too many connections of this account from your address")
		return
	}
	s.user = user
	s.log = s.log.With("user", user)
	s.log.Info("sieve login", "mech", mech, "app_token", res.ViaToken, "tls", s.tls)
	if final != nil {
		s.w.WriteString("OK (SASL ")
		s.writeString([]byte(base64.StdEncoding.EncodeToString(final)))
		s.w.WriteString(") \"Logged in\"\r\n")
		return
	}
	s.ok("", "Logged in")
}

// authFailed answers a refused login and hangs up after maxAuthFailures.
// err is the auth core's verdict, or nil when the exchange itself was
// broken (reason says how).
func (s *session) authFailed(mech, username, reason string, err error) {
	s.authFailures++
	switch {
	case err == nil:
		s.log.Info("auth failed", "mech", mech, "username", username, "reason", reason)
		s.no("", "Authentication failed")
	case errors.Is(err, auth.ErrNotFullAddress):
		s.no("", "Authentication failed: "+auth.NotFullAddressText)
	case errors.Is(err, auth.ErrBadCredentials):
		s.no("", "Authentication failed")
	case errors.Is(err, auth.ErrRateLimited):
		s.no("TRYLATER", "Temporary authentication failure (rate-limit)")
	default:
		s.log.Error("authentication could not be checked", "mech", mech, "username", username, "err", err)
		s.no("TRYLATER", "Temporary server problem, try again later")
	}
	if s.authFailures >= maxAuthFailures {
		s.log.Info("too many failed logins; closing the connection", "failures", s.authFailures)
		s.bye("", "Too many failed logins")
		s.closing, s.logout = true, "auth failures"
	}
}

// cmdUnauthenticate: RFC 5804 2.14.1, back to the state before
// AUTHENTICATE (TLS stays).
func (s *session) cmdUnauthenticate(c *command) {
	if !s.noArgs(c) {
		return
	}
	s.log.Info("sieve unauthenticate")
	s.tc.ReleaseUser()
	s.user = ""
	s.log = s.tc.log
	s.ok("", "Unauthenticated")
}
