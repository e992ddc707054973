package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/obs"
)

// Limits that end a session which is going nowhere.
const (
	// maxBadCommands: unknown commands and syntax errors before the
	// server hangs up.
	maxBadCommands = 20
	// maxAuthFailures: refused logins before the server hangs up (as
	// Dovecot's login processes do after three).
	maxAuthFailures = 3
	// maxSASLSteps bounds the challenges of one AUTH exchange (LOGIN
	// needs two).
	maxSASLSteps = 4
	// handshakeTimeout bounds a TLS handshake.
	handshakeTimeout = 30 * time.Second
)

type state int

const (
	stateAuthorization state = iota
	stateTransaction
)

var (
	errLineTooLong = errors.New("line too long")
	errDraining    = errors.New("server shutting down")
)

// session is one client connection.
type session struct {
	srv  *Server
	tc   *trackedConn
	conn net.Conn // tc, or TLS over it
	r    *bufio.Reader
	w    *bufio.Writer
	log  *slog.Logger
	ctx  context.Context
	// trace logs the dialogue at LOG_LEVEL=TRACE (trace.go); nil below.
	trace *obs.Trace

	tls          bool
	state        state
	userArg      string // from USER, waiting for PASS
	authFailures int
	badCommands  int
	closing      bool // the reply being written is the last one
	linger       bool // the client may still be sending: drain before closing

	// TRANSACTION state (maildrop.go)
	user      string
	drop      []message
	uidv      uint32
	loginAt   time.Time
	retrieved int
	expunged  int
	logout    string // why the session ended, for the logout line
}

func newSession(srv *Server, tc *trackedConn) *session {
	return &session{
		srv:  srv,
		tc:   tc,
		conn: tc,
		log:  tc.log,
		ctx:  tc.Context(),
	}
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	var in io.Reader = c
	var out io.Writer = c
	if s.trace == nil {
		s.trace = obs.NewTrace(s.log, &popTraceFilter{}) // nil below LOG_LEVEL=TRACE
	}
	if s.trace != nil {
		in = io.TeeReader(in, s.trace.Client())
		out = io.MultiWriter(out, s.trace.Server())
	}
	s.r = bufio.NewReaderSize(in, s.srv.opts.MaxLineLength)
	s.w = bufio.NewWriterSize(out, 32<<10)
}

// run is the whole session: greeting, commands, and the logout line.
func (s *session) run() {
	s.log.Debug("connect")
	defer func() {
		if s.linger {
			s.tc.Linger(s.conn)
		}
		if s.conn != s.tc {
			_ = s.conn.Close() // TLS: close_notify, then the socket
		}
		if s.state == stateTransaction {
			s.endTransaction()
		}
		s.log.Debug("disconnect")
	}()
	if s.srv.opts.Implicit {
		if !s.startTLS() {
			return
		}
	} else {
		s.setConn(s.tc)
	}
	// RFC 1939 4: the greeting.
	s.ok("POP3 " + s.srv.opts.Hostname + " ready")
	for !s.closing {
		line, err := s.readLine()
		switch {
		case errors.Is(err, errLineTooLong):
			s.lineTooLong()
			return
		case err != nil:
			s.readFailed(err)
			return
		}
		s.dispatch(line)
	}
	_ = s.w.Flush()
}

// readLine reads one client line without its line end (CRLF, or a bare
// LF from a sloppy client). Replies wait in the buffer while pipelined
// commands are still unread (RFC 2449 6.6), and go out before the
// server blocks.
func (s *session) readLine() (string, error) {
	if s.r.Buffered() == 0 {
		if err := s.w.Flush(); err != nil {
			return "", err
		}
	}
	if !s.tc.armRead(s.srv.opts.IdleTimeout) {
		return "", errDraining
	}
	b, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// The rest is not read: its end may never come (issue 17); the
		// caller answers and closes.
		return "", errLineTooLong
	}
	if err != nil {
		return "", err // a last line without LF is not a command
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return string(b), nil
}

// lineTooLong answers a line over MaxLineLength and ends the session
// without reading the rest of it.
func (s *session) lineTooLong() {
	s.log.Info("line too long, closing", "max_line_length", s.srv.opts.MaxLineLength)
	s.err("Line too long, closing the connection")
	s.closing, s.linger = true, true
	s.logout = "line too long"
	_ = s.w.Flush()
}

// readFailed says goodbye after a read error, when the client can still
// hear it.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errDraining) || s.tc.Draining():
		s.logout = "shutdown"
		s.err("[SYS/TEMP] Server shutting down, try again later")
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 1939 3: the autologout timer; no UPDATE state.
		s.logout = "timeout"
		s.err("Disconnected for inactivity.")
	default:
		s.logout = "disconnect"
		return
	}
	_ = s.w.Flush()
}

// ok and err write one status line. Texts are fixed or built from safe
// parts: nothing from the client is echoed.
func (s *session) ok(text string) {
	s.w.WriteString("+OK")
	if text != "" {
		s.w.WriteString(" " + text)
	}
	s.w.WriteString("\r\n")
}

func (s *session) err(text string) { s.w.WriteString("-ERR " + text + "\r\n") }

// bad answers a command the server cannot parse, and hangs up after too
// many.
func (s *session) bad(text string) {
	s.badCommands++
	if s.badCommands >= maxBadCommands {
		s.err("Too many bad commands, closing the connection")
		s.closing, s.linger = true, true
		s.logout = "bad commands"
		return
	}
	s.err(text)
}

// dispatch runs one command line.
func (s *session) dispatch(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if h := s.srv.opts.OnCommand; h != nil && knownVerb(verb) {
		h(verb)
	}
	if s.state == stateTransaction {
		s.transaction(verb, arg)
		return
	}
	switch verb {
	case "CAPA":
		s.capa()
	case "USER":
		s.cmdUser(arg)
	case "PASS":
		s.cmdPass(arg)
	case "AUTH":
		s.cmdAuth(arg)
	case "STLS":
		s.cmdSTLS(arg)
	case "QUIT":
		s.ok("Logging out.")
		s.closing = true
		s.logout = "quit"
	case "APOP":
		s.err("APOP is not supported; use USER and PASS, or AUTH")
	case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "LAST":
		s.err("Log in first (USER and PASS, or AUTH)")
	default:
		s.bad("Unknown command")
	}
}

// knownVerb: the RFC 1939, 2449, 2595 and 5034 commands, so that a
// client's junk never becomes a metrics label.
func knownVerb(v string) bool {
	switch v {
	case "CAPA", "USER", "PASS", "AUTH", "STLS", "QUIT", "APOP", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "LAST":
		return true
	}
	return false
}

// loginAllowed: TLS is up, or TLS_FLAVOR=notls.
func (s *session) loginAllowed() bool { return s.tls || s.srv.opts.NoTLS }

// stlsOffered: port 110 with a certificate, before TLS.
func (s *session) stlsOffered() bool {
	return !s.tls && !s.srv.opts.Implicit && s.srv.opts.TLSConfig != nil && s.state == stateAuthorization
}

// capa answers CAPA (RFC 2449 5). USER and SASL are only listed while a
// login is possible now (RFC 2595 4), STLS only before TLS.
func (s *session) capa() {
	s.ok("Capability list follows")
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	if s.state == stateAuthorization {
		if s.loginAllowed() {
			caps = append(caps, "USER", "SASL "+strings.Join(s.saslMechanisms(), " "))
		}
		if s.stlsOffered() {
			caps = append(caps, "STLS")
		}
	}
	caps = append(caps, "IMPLEMENTATION Petrel")
	for _, c := range caps {
		s.w.WriteString(c + "\r\n")
	}
	s.w.WriteString(".\r\n")
}

// replyNeedTLS keeps Mailu's encryption failure text (nginx.py STATUSES
// "encryption") and says what to do.
const replyNeedTLS = "Authentication canceled. Use STLS first"

func (s *session) cmdUser(arg string) {
	switch {
	case !s.loginAllowed():
		s.err(replyNeedTLS)
	case arg == "":
		s.bad("USER needs your full email address")
	default:
		// RFC 1939 7: +OK whether or not the user exists, so that USER
		// tells nobody which addresses are real.
		s.userArg = arg
		s.ok("Send your password with PASS")
	}
}

// cmdPass takes the rest of the line as the password: RFC 1939 7 allows
// spaces in it.
func (s *session) cmdPass(arg string) {
	switch {
	case !s.loginAllowed():
		s.err(replyNeedTLS)
	case s.userArg == "":
		s.bad("Send USER first")
	default:
		user := s.userArg
		s.userArg = ""
		s.login("USER", user, arg)
	}
}

// cmdAuth runs a SASL exchange (RFC 5034): PLAIN and LOGIN, with or
// without an initial response.
func (s *session) cmdAuth(arg string) {
	if !s.loginAllowed() {
		s.err(replyNeedTLS)
		return
	}
	s.userArg = ""
	f := strings.Fields(arg)
	if len(f) == 0 {
		// Not in RFC 5034, but clients written for RFC 1734 list the
		// mechanisms this way, and Dovecot answers it.
		s.ok("")
		s.w.WriteString(strings.Join(s.saslMechanisms(), "\r\n") + "\r\n.\r\n")
		return
	}
	if len(f) > 2 {
		s.bad("Too many arguments: use AUTH mechanism [initial-response]")
		return
	}
	var username, password string
	var mech string
	var srv sasl.Server
	var scram *auth.ScramLogin
	switch strings.ToUpper(f[0]) {
	case sasl.Plain:
		mech = sasl.Plain
		srv = sasl.NewPlainServer(func(identity, u, p string) error {
			if identity != "" && identity != u {
				// RFC 4616 authzid: Petrel has no proxy logins.
				return errAuthzid
			}
			username, password = u, p
			return nil
		})
	case auth.LoginMechanism:
		mech = auth.LoginMechanism
		srv = auth.NewLoginServer(func(u, p string) error {
			username, password = u, p
			return nil
		})
	default:
		mech = strings.ToUpper(f[0])
		scram = s.scramLogin(mech)
		if scram == nil {
			s.err("Unsupported authentication mechanism: use PLAIN or LOGIN")
			return
		}
		srv = scram
	}

	var resp []byte // nil: no initial response
	if len(f) == 2 {
		if f[1] == "=" {
			resp = []byte{} // RFC 5034 4: "=" is an empty initial response
		} else {
			b, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil {
				s.authFailed(mech, "", "initial response is not base64", nil)
				return
			}
			resp = b
		}
	}
	for step := 0; ; step++ {
		challenge, done, err := srv.Next(resp)
		if err != nil && scram != nil {
			if errors.Is(err, auth.ErrScramMalformed) || errors.Is(err, auth.ErrScramExchange) {
				s.authFailed(mech, scram.Username(), err.Error(), nil)
			} else {
				s.authFailed(mech, scram.Username(), "", err)
			}
			return
		}
		if err != nil {
			reason := "malformed SASL response"
			if errors.Is(err, errAuthzid) {
				reason = "authorization identity differs from the username"
			}
			s.authFailed(mech, username, reason, nil)
			return
		}
		if done {
			break
		}
		if step == maxSASLSteps {
			s.authFailed(mech, username, "too many SASL steps", nil)
			return
		}
		s.w.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.lineTooLong()
				return
			}
			s.readFailed(err)
			s.closing = true
			return
		}
		if line == "*" {
			// RFC 5034 4: the client cancels; the server says -ERR.
			s.err("Authentication canceled by the client")
			return
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			s.authFailed(mech, username, "SASL response is not base64", nil)
			return
		}
		resp = b
	}
	if scram != nil {
		s.loggedIn(mech, scram.Username(), scram.Result(), nil)
		return
	}
	s.login(mech, username, password)
}

// saslMechanisms lists what AUTH offers: Mailu's plain and login, and
// SCRAM-SHA-256 (-PLUS over TLS) when the authenticator offers it.
func (s *session) saslMechanisms() []string {
	mechs := []string{sasl.Plain, auth.LoginMechanism} // Mailu: auth_mechanisms = plain login
	return append(mechs, auth.ScramMechanismsOf(s.srv.opts.Auth, s.tls)...)
}

// scramLogin starts a SCRAM exchange (RFC 5802, RFC 7677) if mech is a
// SCRAM mechanism offered now; the server-final message is a last "+"
// challenge the client answers with an empty line.
func (s *session) scramLogin(mech string) *auth.ScramLogin {
	var cs *tls.ConnectionState
	if tc, ok := s.conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cs = &st
	}
	return auth.StartScram(s.ctx, s.srv.opts.Auth, mech, s.tls, cs, auth.Attempt{
		Protocol: "pop3", // the core checks enable_pop
		Port:     s.srv.Port(),
		Remote:   s.tc.Remote().Addr(),
		Log:      s.log,
	})
}

var errAuthzid = errors.New("authorization identity differs from the username")

// cmdSTLS switches to TLS (RFC 2595 4).
func (s *session) cmdSTLS(arg string) {
	switch {
	case arg != "":
		s.bad("STLS takes no arguments")
		return
	case s.tls:
		s.err("TLS is already active")
		return
	case !s.stlsOffered():
		s.err("STLS is not available: this server has no certificate (TLS_FLAVOR=notls)")
		return
	}
	s.ok("Begin TLS negotiation now.")
	if err := s.w.Flush(); err != nil {
		s.closing = true
		return
	}
	if n := s.r.Buffered(); n > 0 {
		// Anything sent after STLS in plaintext could have been injected
		// by a man in the middle (CVE-2011-0411); it is dropped.
		s.log.Warn("plaintext after STLS discarded", "bytes", n)
	}
	if !s.startTLS() {
		s.closing = true
		s.logout = "tls failed"
	}
}

// startTLS runs the server handshake over the raw connection and
// replaces the reader and writer.
func (s *session) startTLS() bool {
	c := tls.Server(s.tc, s.srv.opts.TLSConfig)
	ctx, cancel := context.WithTimeout(s.ctx, min(handshakeTimeout, s.srv.opts.IdleTimeout))
	defer cancel()
	_ = s.tc.NetConn().SetReadDeadline(time.Now().Add(min(handshakeTimeout, s.srv.opts.IdleTimeout)))
	if err := c.HandshakeContext(ctx); err != nil {
		s.log.Debug("TLS handshake failed", "err", err)
		s.logout = "tls failed"
		return false
	}
	st := c.ConnectionState()
	s.log.Debug("TLS established", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	s.tls = true
	s.setConn(c)
	return true
}

// login checks credentials with the auth core and opens the maildrop.
// The password is handed over as an auth.Secret and never logged.
func (s *session) login(mech, username, password string) {
	res, err := s.srv.opts.Auth.Authenticate(s.ctx, auth.Attempt{
		Username: username,
		Password: auth.Secret(password),
		Protocol: "pop3", // Mailu: Auth-Protocol; the core checks enable_pop
		Port:     s.srv.Port(),
		Remote:   s.tc.Remote().Addr(),
		Log:      s.log,
	})
	s.loggedIn(mech, username, res, err)
}

// loggedIn finishes a login the auth core has decided.
func (s *session) loggedIn(mech, username string, res *auth.Result, err error) {
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
		// RFC 2449 8.1.2 IN-USE: the credentials were right.
		s.err("[IN-USE] Too many connections of this account from your address, close another mail client first")
		return
	}
	if err := s.openMaildrop(user); err != nil {
		s.tc.ReleaseUser()
		s.log.Error("cannot open the maildrop", "user", user, "err", err)
		s.err("[SYS/TEMP] Cannot open your mailbox now, try again later")
		return
	}
	s.state = stateTransaction
	s.user = user
	s.loginAt = s.srv.opts.Now()
	s.log = s.log.With("user", user)
	s.log.Info("pop3 login", "mech", mech, "app_token", res.ViaToken, "messages", len(s.drop), "tls", s.tls)
	s.ok("Logged in.")
}

// authFailed answers a refused login (Mailu: nginx.py STATUSES for pop3)
// and hangs up after maxAuthFailures. err is the auth core's verdict, or
// nil when the exchange itself was broken (reason says how).
func (s *session) authFailed(mech, username, reason string, err error) {
	s.authFailures++
	switch {
	case err == nil:
		s.log.Info("auth failed", "mech", mech, "username", username, "reason", reason)
		s.err("[AUTH] Authentication failed")
	case errors.Is(err, auth.ErrNotFullAddress):
		s.err("[AUTH] Authentication failed: " + auth.NotFullAddressText)
	case errors.Is(err, auth.ErrBadCredentials):
		s.err("[AUTH] Authentication failed")
	case errors.Is(err, auth.ErrRateLimited):
		s.err("[LOGIN-DELAY] Retry later. Temporary authentication failure (rate-limit)")
	default:
		s.log.Error("authentication could not be checked", "mech", mech, "username", username, "err", err)
		s.err("[SYS/TEMP] Temporary server problem, try again later")
	}
	if s.authFailures >= maxAuthFailures {
		s.log.Info("too many failed logins; closing the connection", "failures", s.authFailures)
		s.closing = true
		s.logout = "auth failures"
	}
}
