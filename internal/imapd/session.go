package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/obs"
)

// Limits that end a session which is going nowhere.
const (
	// maxBadCommands: syntax errors and unknown commands before BYE.
	maxBadCommands = 20
	// maxAuthFailures: refused logins before BYE (Dovecot's login
	// processes hang up after three).
	maxAuthFailures = 3
	// handshakeTimeout bounds a TLS handshake.
	handshakeTimeout = 30 * time.Second
	// skipBudget bounds the bytes of a refused command the server reads
	// and drops before it gives up on the client.
	skipBudget = 64 << 20
)

// trackedConn is the connection bookkeeping a session needs
// (*connlimit.Conn).
type trackedConn interface {
	net.Conn
	Context() context.Context
	Remote() netip.AddrPort
	Draining() bool
	// ClaimUser counts the logged-in session against the per user and
	// address limit; false when it is reached.
	ClaimUser(user string) bool
	ReleaseUser()
	// SetBusy protects an upload in progress from a drain.
	SetBusy(bool)
	// Linger drains the client's input before a hang-up.
	Linger(top net.Conn)
}

// session is one client connection.
type session struct {
	srv  *Server
	tc   trackedConn
	conn net.Conn // tc, or TLS over it
	r    *bufio.Reader
	w    *respWriter
	d    *decoder
	// readers are the goroutines that read s.r while the session waits
	// (IDLE, NOTIFY); the buffers go back to their pools after them.
	readers sync.WaitGroup
	log     *slog.Logger
	// trace logs the dialogue at LOG_LEVEL=TRACE (trace.go); nil below.
	trace *obs.Trace
	ctx   context.Context

	tls          bool
	compressed   bool // COMPRESS=DEFLATE is on (RFC 4978)
	state        sessionState
	user         string // the logged-in address
	badCommands  int
	authFailures int
	closing      bool   // the response being written is the last one
	linger       bool   // the client may still be sending: drain before closing
	byeAfter     string // a BYE to send after the tagged response
	logout       string // why the session ended, for the log

	// Enabled extensions (RFC 5161 ENABLE, or a CONDSTORE enabling
	// command, RFC 7162 3.1).
	rev2      bool // IMAP4rev2 (RFC 9051)
	condstore bool // RFC 7162 CONDSTORE
	qresync   bool // RFC 7162 QRESYNC (implies condstore)

	// sel is the selected mailbox in the Selected state, nil otherwise.
	sel *view
	// notify is the NOTIFY SET in force (RFC 5465, notify.go), nil for
	// none; quietFlags hides flag changes of the selected mailbox from
	// a sync it makes without FlagChange.
	notify     *notifyState
	quietFlags bool
}

func newSession(srv *Server, tc trackedConn, log *slog.Logger) *session {
	return &session{
		srv:   srv,
		tc:    tc,
		conn:  tc,
		log:   log,
		ctx:   tc.Context(),
		state: stateNotAuthenticated,
	}
}

// setConn (re)builds the reader, writer and decoder over c (after TLS).
func (s *session) setConn(c net.Conn) {
	s.conn = c
	var in io.Reader = c
	var out io.Writer = &deadlineWriter{c: c, timeout: s.srv.opts.WriteTimeout}
	var zw interface{ Flush() error }
	if s.compressed {
		in, zw = s.compressLayers(in, out)
		out = zw.(io.Writer)
	}
	if s.trace == nil {
		s.trace = obs.NewTrace(s.log, &imapTraceFilter{}) // nil below LOG_LEVEL=TRACE
	}
	if s.trace != nil {
		in = io.TeeReader(in, s.trace.Client())
		out = io.MultiWriter(out, s.trace.Server())
	}
	// The same buffers for the whole session: what is buffered when the
	// connection changes is either spent (STARTTLS must not carry
	// plaintext over) or taken along (compressLayers).
	if s.r == nil {
		s.r = sessionReaders.Get().(*bufio.Reader)
	}
	s.r.Reset(in)
	var bw *bufio.Writer
	if s.w != nil {
		bw = s.w.bw
	} else {
		bw = sessionWriters.Get().(*bufio.Writer)
	}
	bw.Reset(out)
	s.w = newRespWriter(bw)
	s.w.z = zw
	s.w.utf8 = s.rev2
	s.d = newDecoder(s.r, s.srv.opts.MaxLineLength, int64(s.srv.opts.MaxLineLength))
	s.d.cont = func() error {
		s.w.Continue("Ready for literal")
		return s.w.Flush()
	}
	s.d.arm = func() { s.arm() }
}

// deadlineWriter gives every write its own deadline, so a long FETCH to
// a slow but live client is not cut off, a stalled one is.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.c.Write(p)
}

// arm sets the read deadline for the client's next bytes: RFC 9051 5.4's
// autologout timer of at least 30 minutes after login, LoginTimeout
// before.
func (s *session) arm() {
	d := s.srv.opts.IdleTimeout
	if s.state == stateNotAuthenticated {
		d = s.srv.opts.LoginTimeout
	}
	_ = s.tc.SetReadDeadline(time.Now().Add(d))
}

// A session's read and write buffers (48 KiB) come from pools: they were
// a sixth of all the bytes the IMAP load allocated, one pair per login.
var (
	sessionReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	sessionWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, respBufSize) }}
)

// release returns the buffers once the connection is closed and the
// goroutines reading it have ended (a closed connection ends their read).
func (s *session) release() {
	s.readers.Wait()
	if s.r != nil {
		s.r.Reset(nil)
		sessionReaders.Put(s.r)
		s.r = nil
	}
	if s.w != nil {
		s.w.bw.Reset(nil)
		sessionWriters.Put(s.w.bw)
		s.w = nil
	}
}

// run is the whole session: greeting, commands, goodbye.
func (s *session) run() {
	s.log.Debug("connect")
	defer func() {
		s.notifyOff()
		if s.linger {
			s.tc.Linger(s.conn)
		}
		if s.conn != net.Conn(s.tc) {
			_ = s.conn.Close() // TLS: close_notify, then the socket
		}
		s.log.Debug("disconnect", "reason", s.logout)
	}()
	if s.srv.opts.Implicit {
		if !s.startTLS() {
			return
		}
	} else {
		s.setConn(s.tc)
	}
	// RFC 9051 7.1.1: the greeting, with the capabilities so that the
	// client needs no CAPABILITY command (RFC 9051 7.2.2).
	s.w.Untagged()
	s.w.Raw("OK [CAPABILITY ")
	s.w.Raw(s.capabilities())
	s.w.Raw("] Petrel ready")
	s.w.CRLF()
	for !s.closing {
		if !s.readCommand() {
			break
		}
	}
	_ = s.w.Flush()
}

// startTLS does the server side of a TLS handshake (implicit TLS, or
// after STARTTLS) and switches the session to it.
func (s *session) startTLS() bool {
	tlsConn := tls.Server(s.tc, s.srv.opts.TLSConfig)
	_ = s.tc.SetDeadline(time.Now().Add(handshakeTimeout))
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		s.log.Debug("TLS handshake failed", "err", err)
		s.logout = "tls handshake failed"
		return false
	}
	_ = s.tc.SetDeadline(time.Time{})
	s.tls = true
	s.setConn(tlsConn)
	st := tlsConn.ConnectionState()
	s.log.Debug("TLS established", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	return true
}

// readCommand reads and runs one command; false ends the session.
func (s *session) readCommand() bool {
	if s.r.Buffered() == 0 {
		// Responses wait while pipelined commands are unread, and go out
		// before the server blocks.
		if err := s.w.Flush(); err != nil {
			s.logout = "write failed"
			return false
		}
		if s.notify != nil && !s.notifyWait() {
			return false
		}
	}
	s.arm()
	s.d.reset()
	d := s.d
	tag := d.Tag()
	if d.Err() != nil {
		if !isSyntaxError(d.Err()) {
			s.readFailed(d.Err())
			return false
		}
		// RFC 9051 7.1.5: no usable tag, so an untagged BAD.
		s.untaggedBad("Missing or invalid command tag")
		return s.skip()
	}
	name := ""
	if d.SP() {
		name = upperASCII(d.Atom())
	}
	if name == "UID" && d.SP() {
		name += " " + upperASCII(d.Atom())
	}
	if err := d.Err(); err != nil {
		if !isSyntaxError(err) {
			s.readFailed(err)
			return false
		}
		s.tagged(tag, &result{kind: "BAD", text: "Missing or invalid command name"})
		return s.skip()
	}
	spec, known := s.srv.commands[name]
	switch {
	case !known:
		s.tagged(tag, &result{kind: "BAD", text: "Unknown command"})
		return s.skip()
	case spec.states&s.state == 0:
		s.tagged(tag, &result{kind: "BAD", text: stateText(s.state, spec.states)})
		return s.skip()
	}
	c := &command{tag: tag, name: name, uid: len(name) > 4 && name[:4] == "UID ", args: d}
	if h := s.srv.opts.OnCommand; h != nil {
		h(name)
	}
	err := spec.run(s, c)
	return s.finish(c, spec, err)
}

// finish writes the command's updates and tagged response.
func (s *session) finish(c *command, spec commandSpec, err error) bool {
	var res *result
	var rerr *readError
	switch {
	case err == nil:
		res = &result{kind: "OK", text: c.name + " completed"}
	case errors.As(err, &res):
	case errors.Is(err, errAnswered):
		return !s.closing && s.w.Err() == nil
	case errors.Is(err, errLogout):
		s.tagged(c.tag, &result{kind: "OK", text: "LOGOUT completed"})
		s.closing = true
		s.logout = "logout"
		return false
	case errors.As(err, &rerr):
		s.readFailed(rerr.err)
		return false
	case isSyntaxError(err):
		res = &result{kind: "BAD", text: err.Error()}
	case s.ctx.Err() != nil:
		s.logout = "closed"
		return false
	default:
		s.log.Error("command failed", "command", c.name, "err", err)
		// RFC 5530 UNAVAILABLE: a subsystem (the store) failed; the
		// client may retry.
		res = &result{kind: "NO", code: "UNAVAILABLE", text: "Internal error, try again later"}
	}
	if !s.d.eol && !s.d.skipRest(skipBudget) {
		s.tagged(c.tag, res)
		s.bye(s.skipFailure())
		return false
	}
	if s.state == stateSelected && !s.closing {
		if err := s.sync(!spec.noExpunge); err != nil {
			if s.ctx.Err() != nil {
				return false
			}
			s.log.Warn("mailbox sync failed", "err", err)
		}
	}
	s.tagged(c.tag, res)
	if res.kind == "BAD" {
		s.badCommands++
		if s.badCommands >= maxBadCommands {
			s.linger = true
			s.bye("Too many invalid commands")
		}
	}
	if s.byeAfter != "" {
		s.bye(s.byeAfter)
	}
	return !s.closing && s.w.Err() == nil
}

// skip drops the rest of a refused command; false ends the session.
func (s *session) skip() bool {
	s.badCommands++
	if s.badCommands >= maxBadCommands {
		s.linger = true
		s.bye("Too many invalid commands")
		return false
	}
	if !s.d.skipRest(skipBudget) {
		if err := s.d.Err(); err != nil && !isSyntaxError(err) {
			s.readFailed(err)
			return false
		}
		s.bye(s.skipFailure())
		return false
	}
	return true
}

// skipFailure is the BYE text when the rest of a command cannot be
// skipped: an over-long line is not read to its end (it may have none).
func (s *session) skipFailure() string {
	s.linger = true
	if s.d.Err() == errLineTooLong {
		s.log.Info("command line too long, closing", "max_line_length", s.d.maxLine)
		return "Command line too long"
	}
	return "Too much invalid input"
}

// stateText says why a command is not valid in the session's state.
func stateText(st, allowed sessionState) string {
	switch {
	case st == stateNotAuthenticated:
		return "Log in first"
	case allowed == stateNotAuthenticated:
		return "Already logged in"
	case allowed == selectedOnly:
		return "No mailbox selected"
	}
	return "Not allowed in this state"
}

// tagged writes the final response of a command.
func (s *session) tagged(tag string, r *result) {
	s.w.Status(tag, r.kind, r.code, r.text)
}

func (s *session) untaggedBad(text string) { s.w.Status("*", "BAD", "", text) }

// bye says goodbye and ends the session after this response.
func (s *session) bye(text string) {
	s.w.Status("*", "BYE", "", text)
	s.closing = true
	if s.logout == "" {
		s.logout = text
	}
	_ = s.w.Flush()
}

// readFailed says goodbye after a read error, when the client can still
// hear it.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case s.tc.Draining():
		s.logout = "shutdown"
		// RFC 9051 7.1.5 BYE; RFC 5530 UNAVAILABLE would need a tag.
		s.bye("Server shutting down, try again later")
	case errors.As(err, &ne) && ne.Timeout():
		s.logout = "timeout"
		s.bye("Autologout; idle for too long") // RFC 9051 5.4
	default:
		s.logout = "disconnect"
	}
}
