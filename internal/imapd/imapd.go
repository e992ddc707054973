// Package imapd serves IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051, after
// ENABLE IMAP4rev2) on Mailu's two ports: 993 with implicit TLS (on by
// default) and 143, where STARTTLS must come before any login unless
// TLS_FLAVOR=notls. Extensions: LITERAL+, SASL-IR, ENABLE, IDLE,
// NAMESPACE, UIDPLUS, MOVE, SPECIAL-USE, LIST-EXTENDED, LIST-STATUS,
// ESEARCH, UNSELECT, QUOTA, CONDSTORE, QRESYNC, ID and CHILDREN.
//
// Files: imapd.go the options and the listener; session.go the command
// loop; wire.go the command reader (decoder); respond.go the response
// writer; command.go the command table types; view.go the selected
// mailbox; sync.go the untagged updates (EXISTS, EXPUNGE, VANISHED, FETCH
// FLAGS) of changes made elsewhere; the other files the commands.
//
// # Adding a command
//
// A command is a commandSpec in a table: coreCommands (core.go and the
// files it names) or messageCommands (msgcommands.go: FETCH and SEARCH).
// The key is the upper-case name; UID commands are keyed "UID FETCH".
//
//	"FETCH":     {states: selectedOnly, run: cmdFetch, noExpunge: true},
//	"UID FETCH": {states: selectedOnly, run: cmdFetch},
//
// noExpunge marks FETCH, STORE and SEARCH by sequence number: RFC 9051
// 7.4.1 forbids EXPUNGE responses around them, so the session holds
// expunges made elsewhere back until a later command.
//
// run has the signature func(s *session, c *command) error. c.tag and
// c.name are read; c.uid says the UID prefix was given. The decoder
// c.args stands right after the command name and reads the arguments
// off the wire (literals included, with their continuation requests):
//
//	d := c.args
//	d.SP()
//	set := d.SeqSet()
//	d.SP()
//	d.List(func() bool { items = append(items, d.Atom()); return true })
//	if err := d.End(); err != nil { // consumes CRLF; first error, sticky
//		return err // a syntax error becomes BAD with its text
//	}
//
// Other readers: Atom, AString, String, NString, Number, NzNumber,
// Number64, Flag, ListMailbox, Literal(limit), Is/Accept/Expect(byte),
// AtEOL. Parse every argument and call End before doing anything.
//
// Responses go to s.w (respWriter), one line at a time:
//
//	s.w.Untagged(); s.w.Uint(uint64(seq)); s.w.Raw(" FETCH (UID ")
//	s.w.Uint(uint64(uid)); s.w.Raw(" BODY[] ")
//	s.w.LiteralHeader(size, false); io.Copy(s.w, body); s.w.Raw(")")
//	s.w.CRLF()
//
// String, NString, AString, Literal and Flags encode values; Raw is only
// for protocol text the server made up. The handler's result is its
// return value: nil is "tag OK <NAME> completed"; ok(code, text),
// no(code, text) and bad(text) give other tagged responses (code without
// brackets: "TRYCREATE", "COPYUID 7 1:2 5:6"); any other error is logged
// and answered "NO [UNAVAILABLE]".
//
// The selected mailbox is s.sel (view.go): s.sel.resolve(set, c.uid)
// turns a sequence or UID set into sequence numbers; s.sel.msg(seq) is
// the message as the client knows it (UID, flags, modseq, size, internal
// date, BodyID for s.srv.opts.Store.OpenBody); s.sel.isGone(uid) says it
// was expunged elsewhere and its EXPUNGE is still pending. A handler never
// writes EXISTS, EXPUNGE or VANISHED: after it returns, the session syncs
// with the store and reports what changed (sync.go). A handler that
// changes flags itself (FETCH BODY[] setting \Seen, RFC 9051 6.4.5) calls
// s.applyFlags(&store.FlagUpdate{...}), which updates s.sel and writes
// nothing, and reports the new FLAGS in its own FETCH response (unless
// s.sel.readOnly: EXAMINE never sets \Seen); s.writeFlagsFetch writes a
// stand-alone "* n FETCH (UID u FLAGS (..) [MODSEQ (m)])". s.condstore
// says MODSEQ belongs in every FETCH with FLAGS (RFC 7162 3.2.4), and
// s.enableCondstore() is called by a CONDSTORE enabling command (RFC
// 7162 3.1: FETCH MODSEQ, SEARCH MODSEQ). s.rev2 is IMAP4rev2 (ESEARCH
// answers for SEARCH, RFC 9051 7.3.4; no RECENT); s.w.utf8 follows it.
// Store errors may be returned as they are (wrapped with %w).
package imapd

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
	// DefaultIdleTimeout is RFC 9051 5.4's autologout timer: "at least 30
	// minutes" (an IDLE client re-issues IDLE within 29 minutes).
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultLoginTimeout is how long a client that has not logged in
	// may stay silent: RFC 9051 5.4's 30 minutes apply after login only.
	DefaultLoginTimeout = 3 * time.Minute
	// DefaultWriteTimeout bounds each write to a client that stopped
	// reading.
	DefaultWriteTimeout = 5 * time.Minute
	// DefaultMaxConns bounds all connections of one listener.
	DefaultMaxConns = 5000
	// DefaultMaxConnsPerIP bounds the connections of one client address.
	DefaultMaxConnsPerIP = 100
	// DefaultMaxConnsPerUserIP is Mailu's Dovecot
	// mail_max_userip_connections: logged-in sessions per user and address.
	DefaultMaxConnsPerUserIP = 20
	// DefaultMaxLineLength bounds a command line outside literals, and a
	// literal inside a command other than APPEND (Dovecot:
	// imap_max_line_length = 64k).
	DefaultMaxLineLength = 64 << 10
	// DefaultMaxMessageSize bounds an APPEND (Mailu: MESSAGE_SIZE_LIMIT,
	// 50 MB).
	DefaultMaxMessageSize = 50_000_000
	// DefaultPollInterval is how often a session in IDLE asks the store
	// for changes that Watch cannot see (other nodes).
	DefaultPollInterval = 500 * time.Millisecond
)

// Authenticator checks logins. *auth.Authenticator implements it.
type Authenticator interface {
	// Authenticate returns auth.ErrBadCredentials or auth.ErrRateLimited
	// for refused logins; any other error is a local problem. The auth
	// core refuses users with enable_imap=false for protocol "imap".
	Authenticate(ctx context.Context, a auth.Attempt) (*auth.Result, error)
}

// Store is the mail storage IMAP works on. *sqlstore.Store implements it.
// SpaceGuard reports whether the free disk space is below the reserve
// (Postfix queue_minfree); Low must be cheap.
type SpaceGuard interface {
	Low() bool
}

type Store interface {
	EnsureMailboxes(ctx context.Context, user string, specs []store.MailboxSpec) error
	ListMailboxes(ctx context.Context, user string) ([]store.Mailbox, error)
	OpenBody(ctx context.Context, bodyID int64) (io.ReadCloser, error)
	store.Mailboxes
}

// Options configures a Server. Zero values get the documented defaults.
type Options struct {
	// Implicit is port 993: TLS from the first byte. Otherwise the server
	// is port 143 with STARTTLS.
	Implicit bool
	// TLSConfig is the certificate; required for 993, and on 143 it makes
	// STARTTLS available. nil on 143 needs NoTLS.
	TLSConfig *tls.Config
	// NoTLS is TLS_FLAVOR=notls: logins in plaintext are allowed on 143
	// (Mailu: dovecot disable_plaintext_auth = no).
	NoTLS bool
	// Hostname is the first HOSTNAMES entry.
	Hostname string

	Auth  Authenticator // required
	Store Store         // required
	// Space is DISK_RESERVE: while it is low, APPEND gets NO [OVERQUOTA]
	// (*blob.Reserve implements it); nil: no check.
	Space SpaceGuard

	Logger  *slog.Logger // nil: discard
	ConnIDs *obs.ConnIDs // nil: a new generator

	MaxConns          int // per listener; 0: DefaultMaxConns, <0: unlimited
	MaxConnsPerIP     int // per client address; 0: DefaultMaxConnsPerIP, <0: unlimited
	MaxConnsPerUserIP int // logged-in sessions per user and address; 0: DefaultMaxConnsPerUserIP, <0: unlimited
	// IdleTimeout is how long the server waits for a client command, and
	// how long one IDLE may last; 0: DefaultIdleTimeout. Only tests
	// should set less than RFC 9051's 30 minutes.
	IdleTimeout time.Duration
	// LoginTimeout is how long the server waits for a command before
	// login; 0: DefaultLoginTimeout (never more than IdleTimeout).
	LoginTimeout time.Duration
	WriteTimeout time.Duration // per write; 0: DefaultWriteTimeout
	// MaxLineLength bounds a command line; 0: DefaultMaxLineLength.
	MaxLineLength int
	// MaxMessageSize bounds an APPENDed message (MESSAGE_SIZE_LIMIT);
	// 0: DefaultMaxMessageSize.
	MaxMessageSize int64
	// FullTextSearch (FULL_TEXT_SEARCH) makes SEARCH BODY and TEXT ask
	// the store's full-text index (store.FullTextIndex) for candidates
	// and compare the indexed text (search_fts.go);
	// FullTextAttachments (FULL_TEXT_SEARCH_ATTACHMENTS) counts text
	// attachments in it.
	FullTextSearch      bool
	FullTextAttachments bool
	// PollInterval is how often IDLE polls the store while it is not
	// store.Realtime, and how old a poll may be before a command asks
	// the store again; 0: DefaultPollInterval.
	PollInterval time.Duration
	// IdleNotifyInterval is how often IDLE sends "* OK Still here"; 0:
	// DefaultIdleNotifyInterval.
	IdleNotifyInterval time.Duration

	// OnCommand hears the name of every known command before it runs
	// (the metrics); nil: none.
	OnCommand func(name string)

	// CopyObserver hears about COPY and MOVE (spam learning); nil: none.
	CopyObserver CopyObserver

	Now func() time.Time // nil: time.Now
}

// Server is one IMAP listener (993 or 143).
type Server struct {
	opts     Options
	log      *slog.Logger
	conns    *connlimit.Tracker
	commands map[string]commandSpec
	msgs     *msgCommands // FETCH's and SEARCH's caches, behind commands
	views    *viewCache   // mailbox listings shared by SELECTs
	// versions is opts.Store's change counter, nil when it has none
	// (then every command polls ChangesSince).
	versions store.ChangeVersions
	// realtime reports store.Realtime; false without it (IDLE polls).
	realtime func() bool
	// notifyMax: notifications at once before NOTIFICATIONOVERFLOW.
	notifyMax int
	// caps are the CAPABILITY lists, indexed by the caps* bits of a
	// session's state (core.go): every greeting and login sends one, and
	// they depend only on the options and those three facts.
	caps [8]string
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
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = DefaultLoginTimeout
	}
	opts.LoginTimeout = min(opts.LoginTimeout, opts.IdleTimeout)
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.IdleNotifyInterval <= 0 {
		opts.IdleNotifyInterval = DefaultIdleNotifyInterval
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
	msgs := newMsgCommands()
	s := &Server{opts: opts, commands: commandTable(msgs), msgs: msgs, views: newViewCache(defaultViewCacheBytes)}
	s.versions, _ = opts.Store.(store.ChangeVersions)
	s.notifyMax = defaultNotifyMax
	s.realtime = func() bool { return false }
	if rt, ok := opts.Store.(store.Realtime); ok {
		s.realtime = rt.Realtime
	}
	s.log = opts.Logger.With("proto", s.proto())
	for i := range s.caps {
		s.caps[i] = s.buildCapabilities(i&capsAuthenticated != 0, i&capsTLS != 0, i&capsCompressed != 0)
	}
	var tlsForRefusal *tls.Config
	if opts.Implicit {
		tlsForRefusal = opts.TLSConfig
	}
	s.conns = connlimit.New(connlimit.Options{
		MaxConns:     opts.MaxConns,
		MaxPerIP:     opts.MaxConnsPerIP,
		MaxPerUserIP: opts.MaxConnsPerUserIP,
		TLSConfig:    tlsForRefusal,
	})
	return s
}

// Port is the Mailu role port: 993 or 143.
func (s *Server) Port() int {
	if s.opts.Implicit {
		return 993
	}
	return 143
}

// proto names the role in logs.
func (s *Server) proto() string {
	if s.opts.Implicit {
		return "imaps"
	}
	return "imap"
}

// check reports an Options combination no client could use.
func (s *Server) check() error {
	switch {
	case s.opts.Auth == nil || s.opts.Store == nil:
		return errors.New("imapd: Auth and Store are required")
	case s.opts.Implicit && s.opts.TLSConfig == nil:
		return errors.New("imapd: port 993 needs a TLS certificate (TLSConfig is nil)")
	case !s.opts.Implicit && s.opts.TLSConfig == nil && !s.opts.NoTLS:
		// Without STARTTLS nobody could ever log in on 143.
		return errors.New("imapd: port 143 needs a TLS certificate for STARTTLS, or NoTLS (TLS_FLAVOR=notls)")
	}
	return nil
}

// Serve accepts connections on ln (a plain TCP listener; on 993 Serve
// does the TLS) until Shutdown, and then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.conns.Serve(ln, connlimit.ServeOptions{
		Log: s.log,
		Listening: []any{"port", s.Port(),
			"starttls", !s.opts.Implicit && s.opts.TLSConfig != nil, "plaintext_login", !s.opts.Implicit && s.opts.NoTLS},
		Refuse: func(c net.Conn, reason connlimit.Reason) {
			s.log.Warn("connection refused", "remote", connlimit.AddrPort(c.RemoteAddr()).String(), "reason", reason.String())
			// RFC 9051 7.1.5: BYE as the greeting refuses the connection.
			s.conns.Refuse(c, "* BYE Too many connections, try again later\r\n")
		},
		Handle: s.handle,
	})
}

// Shutdown stops accepting and asks every session to leave: one waiting
// for a command (or in IDLE) gets "* BYE" and is closed, one inside a
// command finishes it first. Shutdown waits until every session has ended
// or ctx is done; then it closes the remaining connections and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx)
}

// handle runs one session and cleans up after it.
func (s *Server) handle(tc *connlimit.Conn) {
	defer tc.Close()
	cid := s.opts.ConnIDs.Next()
	log := obs.ConnLogger(s.opts.Logger, cid, s.proto(), tc.Remote())
	defer func() {
		// A bug must cost one connection, not the server.
		if p := recover(); p != nil {
			log.Error("panic in IMAP session", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	sess := newSession(s, tc, log)
	sess.run()
	tc.Close()
	sess.release()
}
