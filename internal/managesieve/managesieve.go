// Package managesieve serves ManageSieve (RFC 5804) on Mailu's port 4190:
// users list, upload, check, activate, rename and delete their Sieve
// scripts, which live in the store so that every node serves and runs the
// same ones. Logins go through the shared auth core (PLAIN, LOGIN,
// SCRAM-SHA-256[-PLUS]) only after STARTTLS, unless TLS_FLAVOR=notls.
//
// The server is ours rather than github.com/migadu/go-managesieve v0.1.1:
// that library hard-codes SASL PLAIN (no LOGIN, no SCRAM with channel
// binding), owns the listener and its own limits where every Petrel
// protocol shares internal/connlimit (per-address and per-user limits,
// drain, linger) and the LOG_LEVEL=TRACE filter, and it was two commits
// old. What RFC 5804 needs fits in this package.
//
// This file holds the options and the listener; reader.go the command
// grammar, session.go the states and login, scripts.go the script
// commands, trace.go the protocol trace.
package managesieve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/connlimit"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/store"
)

// Port is Mailu's ManageSieve port (RFC 5804 1.8).
const Port = 4190

// Defaults for zero Options fields.
const (
	// DefaultIdleTimeout: how long the server waits for a command.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultWriteTimeout bounds each write to a client that stopped reading.
	DefaultWriteTimeout  = 5 * time.Minute
	DefaultMaxConns      = 2000
	DefaultMaxConnsPerIP = 50
	// DefaultMaxConnsPerUserIP is Mailu's Dovecot mail_max_userip_connections.
	DefaultMaxConnsPerUserIP = 20
	// DefaultMaxLineLength bounds one line of a command; scripts come as
	// literals, which MaxScriptSize bounds instead.
	DefaultMaxLineLength = 8192
	// DefaultMaxScriptSize is Dovecot's sieve_max_script_size (1M).
	DefaultMaxScriptSize = 1 << 20
	// DefaultMaxScripts and DefaultMaxStorage bound one user's scripts
	// (Dovecot: sieve_quota_max_scripts, sieve_quota_max_storage; Dovecot
	// has none by default, but scripts live in the shared database here).
	DefaultMaxScripts = 64
	DefaultMaxStorage = 8 << 20
	// maxNameLength bounds a script name in octets (RFC 5804 1.6 asks
	// servers to take at least 128 characters).
	maxNameLength = 512
)

// Authenticator checks logins. *auth.Authenticator implements it (and
// auth.ScramProvider, which turns SCRAM on).
type Authenticator interface {
	Authenticate(ctx context.Context, a auth.Attempt) (*auth.Result, error)
}

// Store keeps the scripts. *sqlstore.Store implements it.
type Store interface {
	ListSieveScripts(ctx context.Context, email string) ([]store.SieveScriptInfo, error)
	GetSieveScript(ctx context.Context, email, name string) ([]byte, error)
	PutSieveScript(ctx context.Context, email, name string, script []byte, lim store.SieveLimits) error
	SieveHaveSpace(ctx context.Context, email, name string, size int64, lim store.SieveLimits) error
	DeleteSieveScript(ctx context.Context, email, name string) error
	RenameSieveScript(ctx context.Context, email, oldName, newName string) error
	SetActiveSieveScript(ctx context.Context, email, name string) error
}

// Options configures a Server. Zero values get the documented defaults.
type Options struct {
	// TLSConfig makes STARTTLS available; nil needs NoTLS.
	TLSConfig *tls.Config
	// NoTLS is TLS_FLAVOR=notls: logins in plaintext are allowed.
	NoTLS bool
	// Hostname is the first HOSTNAMES entry, shown in the greeting.
	Hostname string

	Auth  Authenticator // required
	Store Store         // required
	// Validate checks a script before PUTSCRIPT stores it and for
	// CHECKSCRIPT (internal/sieve.Check); its error text goes to the
	// client, so it should name the line. Required.
	Validate func(script []byte) error
	// Extensions is the SIEVE capability (internal/sieve.Extensions).
	Extensions []string
	// MaxRedirects, when > 0, is the MAXREDIRECTS capability: redirects
	// one script may do per message.
	MaxRedirects int
	// NotifyMethods, when set, is the NOTIFY capability (RFC 5435).
	NotifyMethods []string

	// Limits bounds each user's scripts; zero fields get DefaultMaxScripts,
	// DefaultMaxScriptSize and DefaultMaxStorage, negative ones no limit.
	Limits store.SieveLimits

	Logger  *slog.Logger // nil: discard
	ConnIDs *obs.ConnIDs // nil: a new generator

	MaxConns          int           // per listener; 0: DefaultMaxConns, <0: unlimited
	MaxConnsPerIP     int           // 0: DefaultMaxConnsPerIP, <0: unlimited
	MaxConnsPerUserIP int           // logged-in sessions per user and address; 0: DefaultMaxConnsPerUserIP, <0: unlimited
	IdleTimeout       time.Duration // 0: DefaultIdleTimeout
	WriteTimeout      time.Duration // per write; 0: DefaultWriteTimeout
	MaxLineLength     int           // 0: DefaultMaxLineLength
}

// Limits returns lim with its zero fields set to DefaultMaxScripts,
// DefaultMaxScriptSize and DefaultMaxStorage: the limits a Server with
// Options.Limits lim enforces. `petrel sieve` uses it so that the CLI
// stores no script ManageSieve would refuse.
func Limits(lim store.SieveLimits) store.SieveLimits {
	if lim.MaxScripts == 0 {
		lim.MaxScripts = DefaultMaxScripts
	}
	if lim.MaxSize == 0 {
		lim.MaxSize = DefaultMaxScriptSize
	}
	if lim.MaxStorage == 0 {
		lim.MaxStorage = DefaultMaxStorage
	}
	return lim
}

// ValidName checks a script name as PUTSCRIPT does (RFC 5804 1.6); it
// returns "" for a valid name, else the problem.
func ValidName(name string) string { return validName([]byte(name)) }

// Server is the ManageSieve listener.
type Server struct {
	opts  Options
	log   *slog.Logger
	conns *connlimit.Tracker
}

// New builds a Server. It does not listen; call Serve.
func New(opts Options) *Server {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&opts.MaxConns, DefaultMaxConns)
	def(&opts.MaxConnsPerIP, DefaultMaxConnsPerIP)
	def(&opts.MaxConnsPerUserIP, DefaultMaxConnsPerUserIP)
	opts.Limits = Limits(opts.Limits)
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConnIDs == nil {
		opts.ConnIDs = obs.NewConnIDs()
	}
	s := &Server{
		opts: opts,
		log:  opts.Logger.With("proto", "sieve"),
		conns: connlimit.New(connlimit.Options{
			MaxConns:     opts.MaxConns,
			MaxPerIP:     opts.MaxConnsPerIP,
			MaxPerUserIP: opts.MaxConnsPerUserIP,
			ReplyTimeout: min(opts.WriteTimeout, 10*time.Second),
		}),
	}
	return s
}

// Port is the Mailu role port.
func (s *Server) Port() int { return Port }

func (s *Server) check() error {
	switch {
	case s.opts.Hostname == "":
		return errors.New("managesieve: Hostname (the first HOSTNAMES entry) is required")
	case s.opts.Auth == nil || s.opts.Store == nil:
		return errors.New("managesieve: Auth and Store are required")
	case s.opts.Validate == nil:
		return errors.New("managesieve: Validate is required: RFC 5804 2.6 stores only scripts that pass a syntax check")
	case s.opts.TLSConfig == nil && !s.opts.NoTLS:
		return errors.New("managesieve: port 4190 needs a TLS certificate for STARTTLS, or NoTLS (TLS_FLAVOR=notls)")
	}
	return nil
}

// Serve accepts connections on ln (plain TCP) until Shutdown, and then
// returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.conns.Serve(ln, connlimit.ServeOptions{
		Log:       s.log,
		Listening: []any{"port", Port, "starttls", s.opts.TLSConfig != nil, "plaintext_login", s.opts.NoTLS},
		Refuse:    s.refuse,
		Handle:    func(lc *connlimit.Conn) { s.handle(s.track(lc)) },
	})
}

// Shutdown stops accepting; a session waiting for a command gets
// BYE (TRYLATER), one inside a command finishes it first. It waits for
// the sessions until ctx is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error { return s.conns.Shutdown(ctx) }

func (s *Server) track(lc *connlimit.Conn) *trackedConn {
	return &trackedConn{
		Conn: lc,
		srv:  s,
		log:  obs.ConnLogger(s.opts.Logger, s.opts.ConnIDs.Next(), "sieve", lc.Remote()),
	}
}

// refuse answers a connection over the limits (RFC 5804 1.3 TRYLATER).
func (s *Server) refuse(c net.Conn, why connlimit.Reason) {
	reason, reply := "server shutting down", ""
	switch why {
	case connlimit.TooManyConns:
		reason = "Too many connections, try again later"
	case connlimit.TooManyFromIP:
		reason = "Too many connections from your address, try again later"
	}
	if why != connlimit.ShuttingDown {
		reply = "BYE (TRYLATER) " + quote(reason) + "\r\n"
	}
	s.log.Warn("connection refused", "remote", connlimit.AddrPort(c.RemoteAddr()).String(), "reason", reason)
	s.conns.Refuse(c, reply)
}

func (s *Server) handle(tc *trackedConn) {
	defer tc.Close()
	defer func() {
		// A bug must cost one connection, not the server.
		if p := recover(); p != nil {
			tc.log.Error("panic in ManageSieve session", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	newSession(s, tc).run()
}

// trackedConn is the raw connection under the session (and under TLS).
type trackedConn struct {
	*connlimit.Conn
	srv *Server
	log *slog.Logger
}

// Write implements net.Conn with a deadline for every write.
func (c *trackedConn) Write(p []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	return c.Conn.Write(p)
}

// armRead sets the deadline for the next read. The first read of a
// command is where a drain may end the session (false once Shutdown has
// begun); the reads inside a command (its literals) mark the connection
// busy, so a drain lets a script upload finish.
func (c *trackedConn) armRead(first bool, d time.Duration) bool {
	c.SetBusy(!first)
	if first && c.Draining() {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	return true
}
