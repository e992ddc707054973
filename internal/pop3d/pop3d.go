// Package pop3d serves POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC
// 2595), AUTH (RFC 5034) and response codes (RFC 2449, RFC 3206), on
// Mailu's two ports: 995 with implicit TLS (on by default) and 110, where
// STLS must come before any login unless TLS_FLAVOR=notls.
//
// A session shows the user's INBOX as it was at login (RFC 1939 5: new
// deliveries appear in the next session), sends every message with CRLF
// line ends and byte-stuffing, and deletes the messages marked with DELE
// only when the client says QUIT; a dropped connection, a timeout or a
// shutdown deletes nothing (RFC 1939 6).
//
// This file holds the options and the listener (connection limits and
// the drain are internal/connlimit's); session.go the AUTHORIZATION
// state, maildrop.go the TRANSACTION and UPDATE states, wire.go the
// message encoding.
package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/connlimit"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/store"
)

// Defaults for zero Options fields.
const (
	// DefaultIdleTimeout is RFC 1939 3's autologout timer: "at least 10
	// minutes".
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultWriteTimeout bounds each write to a client that stopped
	// reading.
	DefaultWriteTimeout = 5 * time.Minute
	// DefaultMaxConns bounds all connections of one listener.
	DefaultMaxConns = 2000
	// DefaultMaxConnsPerIP bounds the connections of one client address.
	DefaultMaxConnsPerIP = 50
	// DefaultMaxConnsPerUserIP is Mailu's Dovecot
	// mail_max_userip_connections: logged-in sessions per user and address.
	DefaultMaxConnsPerUserIP = 20
	// DefaultMaxLineLength bounds one client line. RFC 2449 4 allows
	// commands of 255 octets; SASL responses (RFC 5034 4) carry base64
	// credentials, so lines get room for long passwords and tokens.
	DefaultMaxLineLength = 4096
)

// Authenticator checks logins. *auth.Authenticator implements it.
type Authenticator interface {
	// Authenticate returns auth.ErrBadCredentials or auth.ErrRateLimited
	// for refused logins; any other error is a local problem. The auth
	// core refuses users with enable_pop=false for protocol "pop3".
	Authenticate(ctx context.Context, a auth.Attempt) (*auth.Result, error)
}

// Store is the mail storage a session reads and expunges.
// *sqlstore.Store implements it.
type Store interface {
	EnsureMailboxes(ctx context.Context, user string, specs []store.MailboxSpec) error
	ListMailboxes(ctx context.Context, user string) ([]store.Mailbox, error)
	ListMessages(ctx context.Context, user, mailbox string) ([]store.MessageInfo, error)
	OpenBody(ctx context.Context, bodyID int64) (io.ReadCloser, error)
	ExpungeMessages(ctx context.Context, user, mailbox string, uids []uint32) error
}

// Options configures a Server. Zero values get the documented defaults.
type Options struct {
	// Implicit is port 995: TLS from the first byte (Serve does the
	// handshake). Otherwise the server is port 110 with STLS.
	Implicit bool
	// TLSConfig is the certificate; required for 995, and on 110 it makes
	// STLS available. nil on 110 needs NoTLS.
	TLSConfig *tls.Config
	// NoTLS is TLS_FLAVOR=notls: logins in plaintext are allowed on 110,
	// as Mailu (dovecot disable_plaintext_auth = no).
	NoTLS bool
	// Hostname is the first HOSTNAMES entry, shown in the greeting.
	Hostname string

	Auth  Authenticator // required
	Store Store         // required

	Logger  *slog.Logger // nil: discard
	ConnIDs *obs.ConnIDs // nil: a new generator

	MaxConns          int // per listener; 0: DefaultMaxConns, <0: unlimited
	MaxConnsPerIP     int // per client address; 0: DefaultMaxConnsPerIP, <0: unlimited
	MaxConnsPerUserIP int // logged-in sessions per user and address; 0: DefaultMaxConnsPerUserIP, <0: unlimited
	// IdleTimeout is how long the server waits for a client line;
	// 0: DefaultIdleTimeout. RFC 1939 3 asks for at least 10 minutes;
	// only tests should set less.
	IdleTimeout  time.Duration
	WriteTimeout time.Duration // per write; 0: DefaultWriteTimeout
	// MaxLineLength bounds a client line; 0: DefaultMaxLineLength.
	MaxLineLength int

	// OnCommand hears the verb of every known command (the metrics);
	// nil: none.
	OnCommand func(verb string)

	Now func() time.Time // nil: time.Now
}

// Server is one POP3 listener (995 or 110).
type Server struct {
	opts  Options
	log   *slog.Logger
	sizes *sizeCache
	conns *connlimit.Tracker // limits, accept loop, drain, refusals
}

// New builds a Server. It does not listen; call Serve.
func New(opts Options) *Server {
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerIP == 0 {
		opts.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if opts.MaxConnsPerUserIP == 0 {
		opts.MaxConnsPerUserIP = DefaultMaxConnsPerUserIP
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConnIDs == nil {
		opts.ConnIDs = obs.NewConnIDs()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	lim := connlimit.Options{
		MaxConns:     opts.MaxConns,
		MaxPerIP:     opts.MaxConnsPerIP,
		MaxPerUserIP: opts.MaxConnsPerUserIP,
		ReplyTimeout: min(opts.WriteTimeout, 10*time.Second),
	}
	if opts.Implicit {
		lim.TLSConfig = opts.TLSConfig // an -ERR on 995 needs the handshake first
	}
	s := &Server{
		opts:  opts,
		sizes: newSizeCache(defaultSizeCacheEntries),
		conns: connlimit.New(lim),
	}
	s.log = opts.Logger.With("proto", s.proto())
	return s
}

// Port is the Mailu role port: 995 or 110.
func (s *Server) Port() int {
	if s.opts.Implicit {
		return 995
	}
	return 110
}

// proto names the role in logs, as internal/app's role table does.
func (s *Server) proto() string {
	if s.opts.Implicit {
		return "pop3s"
	}
	return "pop3"
}

// check reports an Options combination no client could use.
func (s *Server) check() error {
	switch {
	case s.opts.Hostname == "":
		return errors.New("pop3d: Hostname (the first HOSTNAMES entry) is required for the greeting")
	case s.opts.Auth == nil || s.opts.Store == nil:
		return errors.New("pop3d: Auth and Store are required")
	case s.opts.Implicit && s.opts.TLSConfig == nil:
		return errors.New("pop3d: port 995 needs a TLS certificate (TLSConfig is nil)")
	case !s.opts.Implicit && s.opts.TLSConfig == nil && !s.opts.NoTLS:
		// Without STLS nobody could ever log in on 110.
		return errors.New("pop3d: port 110 needs a TLS certificate for STLS, or NoTLS (TLS_FLAVOR=notls)")
	}
	return nil
}

// Serve accepts connections on ln (a plain TCP listener; on 995 Serve does
// the TLS) until Shutdown, and then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.conns.Serve(ln, connlimit.ServeOptions{
		Log: s.log,
		Listening: []any{"port", s.Port(),
			"stls", !s.opts.Implicit && s.opts.TLSConfig != nil, "plaintext_login", !s.opts.Implicit && s.opts.NoTLS},
		Refuse: s.refuse,
		Handle: func(lc *connlimit.Conn) { s.handle(s.track(lc)) },
	})
}

// Shutdown stops accepting and asks every session to leave: one waiting
// for a command gets "-ERR [SYS/TEMP]" and is closed, one inside a command
// (a RETR, the expunge after QUIT) finishes it first. Nothing marked with
// DELE is deleted for a session that did not QUIT. Shutdown waits until
// every session has ended or ctx is done; then it cancels the sessions'
// store calls, closes their connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx)
}

// track wraps an admitted connection with its id and logger.
func (s *Server) track(lc *connlimit.Conn) *trackedConn {
	cid := s.opts.ConnIDs.Next()
	return &trackedConn{
		Conn: lc,
		srv:  s,
		log:  obs.ConnLogger(s.opts.Logger, cid, s.proto(), lc.Remote()),
	}
}

// refuse answers a connection over the limits with -ERR and closes it;
// one that arrives as Shutdown begins is closed without a word.
func (s *Server) refuse(c net.Conn, why connlimit.Reason) {
	reason, reply := "server shutting down", ""
	switch why {
	case connlimit.TooManyConns:
		reason = "Too many connections, try again later"
	case connlimit.TooManyFromIP:
		reason = "Too many connections from your address, try again later"
	}
	if why != connlimit.ShuttingDown {
		// RFC 2449 8.1.2 SYS/TEMP: a transient problem, try later.
		reply = "-ERR [SYS/TEMP] " + reason + "\r\n"
	}
	s.log.Warn("connection refused", "remote", connlimit.AddrPort(c.RemoteAddr()).String(), "reason", reason)
	s.conns.Refuse(c, reply)
}

// handle runs one session and cleans up after it.
func (s *Server) handle(tc *trackedConn) {
	defer tc.Close()
	defer func() {
		// A bug must cost one connection, not the server.
		if p := recover(); p != nil {
			tc.log.Error("panic in POP3 session", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	newSession(s, tc).run()
}

// connCount is the number of open connections.
func (s *Server) connCount() int { return s.conns.Count() }

// trackedConn is the raw connection under the session (and under TLS):
// the connlimit.Conn, which counts it, holds its context and lets
// Shutdown cut a wait for a command short, with the connection's logger
// and a deadline for every write.
type trackedConn struct {
	*connlimit.Conn
	srv *Server
	log *slog.Logger
}

// Write implements net.Conn: each write gets WriteTimeout, so a long
// RETR to a slow but live client is not cut off, a stalled one is.
func (c *trackedConn) Write(p []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	return c.Conn.Write(p)
}

// armRead sets the deadline for the next client line; false once
// Shutdown has begun. A drain that comes in between still wins: the
// connlimit.Conn keeps the deadline in the past.
func (c *trackedConn) armRead(d time.Duration) bool {
	if c.Draining() {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	return true
}
