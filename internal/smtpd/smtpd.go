// Package smtpd runs Petrel's SMTP listeners on go-smtp with Mailu's port
// policy: port 25 (MX, no AUTH ever), 465 (implicit TLS submission) and 587
// (STARTTLS submission). The policy decisions live in session.go (commands),
// data.go (the message body), reply.go (the one error-to-reply mapping) and
// errlimit.go (Postfix's per-session error limits); this file holds the
// options and the listener (connection limits and the drain are
// internal/connlimit's).
//
// Every reply a client can get from Petrel's own code is built in reply.go,
// with a text that says what to do. A few replies come from go-smtp v0.25.1
// itself and cannot be changed without forking it; they are listed in
// reply.go.
package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/connlimit"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/submit"
)

// Role is the job of one listener. Mailu names them by port.
type Role int

const (
	// RoleMX is port 25: server-to-server mail, opportunistic STARTTLS,
	// never AUTH (Mailu: nginx smtp_auth none).
	RoleMX Role = iota + 1
	// RoleSubmissions is port 465: TLS from the first byte, AUTH required
	// (Mailu: dovecot submission-login, ssl = yes).
	RoleSubmissions
	// RoleSubmission is port 587: STARTTLS, then AUTH (Mailu: ssl =
	// required, so no AUTH before TLS); plaintext AUTH with NoTLS.
	RoleSubmission
)

// Port is the role's Mailu port number.
func (r Role) Port() int {
	switch r {
	case RoleMX:
		return 25
	case RoleSubmissions:
		return 465
	case RoleSubmission:
		return 587
	}
	return 0
}

// String is the name used as proto in log lines.
func (r Role) String() string {
	switch r {
	case RoleMX:
		return "smtp"
	case RoleSubmissions:
		return "submissions"
	case RoleSubmission:
		return "submission"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

func (r Role) submission() bool { return r == RoleSubmissions || r == RoleSubmission }

// Defaults for zero Options fields.
const (
	// DefaultMaxRecipients is Postfix's smtpd_recipient_limit.
	DefaultMaxRecipients = 1000
	// DefaultMaxConns bounds all connections of one listener.
	DefaultMaxConns = 2000
	// DefaultMaxConnsPerIP is Postfix's smtpd_client_connection_count_limit.
	DefaultMaxConnsPerIP = 50
	// DefaultTimeout is the server timeout of RFC 5321 4.5.3.2.7 (5 minutes),
	// used for every read (command or DATA block) and write.
	DefaultTimeout = 5 * time.Minute
	// DefaultMaxLineLength bounds command and DATA lines (go-smtp applies
	// one limit to both). RFC 5322 2.1.1 caps message lines at 998
	// characters, but real mail breaks it and Postfix accepts such lines
	// (line_length_limit only splits them), so refusing them would bounce
	// mail; RFC 5321 4.5.3.1 asks for no limits where possible. 32 KiB
	// still bounds the memory a command line can take.
	DefaultMaxLineLength = 32 << 10
	// DefaultMaxMessageBytes is Mailu's MESSAGE_SIZE_LIMIT default.
	DefaultMaxMessageBytes = 50_000_000

	// Error limits per connection (errlimit.go). Mailu has no settings for
	// them and runs Postfix's defaults (postconf(5)).

	// DefaultHardErrorLimit is Postfix's smtpd_hard_error_limit: at this
	// many errors without a delivered message, 421 and close.
	DefaultHardErrorLimit = 20
	// DefaultSoftErrorLimit is Postfix's smtpd_soft_error_limit: from this
	// many errors on, every reply waits DefaultErrorSleep.
	DefaultSoftErrorLimit = 10
	// DefaultErrorSleep is Postfix's smtpd_error_sleep_time.
	DefaultErrorSleep = time.Second
	// DefaultJunkCommandLimit is Postfix's smtpd_junk_command_limit:
	// NOOP, RSET, VRFY, HELO/EHLO beyond it count as errors.
	DefaultJunkCommandLimit = 100
	// DefaultRecipientOvershootLimit is Postfix's
	// smtpd_recipient_overshoot_limit: RCPTs over MaxRecipients (452) in
	// one transaction that are not yet errors.
	DefaultRecipientOvershootLimit = 1000
)

// Authenticator checks submission logins. *auth.Authenticator implements it.
type Authenticator interface {
	// Authenticate returns auth.ErrBadCredentials or auth.ErrRateLimited
	// for refused logins; any other error is a local problem.
	Authenticate(ctx context.Context, a auth.Attempt) (*auth.Result, error)
	// Port25Auth records an AUTH attempt on port 25 against the client's
	// IP limit and logs why it was refused (Mailu: auth.py is_port_25).
	Port25Auth(ctx context.Context, remote netip.Addr, username string, log *slog.Logger)
}

// Router resolves recipients and checks sender ownership.
// *inbound.Router implements it.
type Router interface {
	Resolve(ctx context.Context, rcpt string) (inbound.Route, error)
	SenderAllowed(ctx context.Context, user *store.User, sender string, wildcardSenders []string) (bool, error)
}

// QuotaChecker is an optional Router method: whether a recipient's
// mailboxes can take a message of size bytes (0: not declared), with
// inbound.ErrMailboxFull or inbound.ErrTooBigForQuota when none can.
// *inbound.Router implements it.
type QuotaChecker interface {
	CheckQuota(ctx context.Context, route inbound.Route, size int64) error
}

// Spool receives one message body. *inbound.Spool implements it.
type Spool interface {
	io.Writer
	Size() int64
	Grow(n int64) // a hint: n more bytes are coming
	Abort()       // discard; a no-op after Deliver
}

// Deliverer makes an accepted message durable. *inbound.Deliverer
// implements it through a small adapter in app (Deliver takes the concrete
// *inbound.Spool that its NewSpool returned).
type Deliverer interface {
	NewSpool() (Spool, error)
	// Deliver returns nil only once the message is durable; then the
	// client gets 250. store.ErrQuotaExceeded (wrapped) means a mailbox
	// is full.
	Deliver(ctx context.Context, env *inbound.Envelope, sp Spool) error
}

// SpaceGuard reports whether the free disk space is below the reserve
// (Postfix queue_minfree). Low must be cheap: it is asked for every MAIL
// and every message.
type SpaceGuard interface {
	Low() bool
}

// RateLimiter is MESSAGE_RATELIMIT, keyed by the login address;
// *msgrate.Shared (several nodes, one count in the store) and
// *msgrate.Memory (one node) implement it. Take is asked at MAIL: whether
// one more message may go now (a shared limiter holds its place from
// here, so sessions racing on several nodes never pass the limit
// together). Settle ends every taken transaction: sent, the message
// counts; not sent (RSET, a failed delivery, a dropped connection), its
// place is given back.
type RateLimiter interface {
	Take(ctx context.Context, key string) (ticket string, ok bool, err error)
	Settle(ctx context.Context, key, ticket string, sent bool) error
}

// Preparer rewrites a submitted message on its way to the spool: header
// scrubbing, Message-ID and Date, DKIM signature. *submit.Preparer
// implements it.
type Preparer interface {
	Prepare(ctx context.Context, src io.Reader, dst io.Writer, meta submit.Meta) error
}

// Resolver looks up the client's reverse DNS for the Received header.
// *net.Resolver implements it.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options configures a Server. Zero values get the documented defaults.
type Options struct {
	Role Role
	// OnReject, when set, is called for each policy refusal (the status
	// page's counters).
	OnReject func()
	// Hostname is the first HOSTNAMES entry: the banner, EHLO and
	// Received "by" name.
	Hostname string
	// TLSConfig is the certificate to offer; nil means none is loaded (no
	// STARTTLS on 25/587). RoleSubmissions requires it: Serve wraps the
	// plain listener it is given in TLS itself.
	TLSConfig *tls.Config
	// NoTLS is TLS_FLAVOR=notls: submission on 587 takes AUTH in plaintext,
	// as Mailu (dovecot disable_plaintext_auth = no).
	NoTLS bool
	// MaxMessageBytes is MESSAGE_SIZE_LIMIT, advertised in EHLO SIZE.
	MaxMessageBytes int64
	// InboundTLSEnforce is INBOUND_TLS_ENFORCE: on port 25, MAIL needs
	// STARTTLS first.
	InboundTLSEnforce bool
	// RelayNets is RELAYNETS: clients that may relay through port 25
	// without AUTH.
	RelayNets []netip.Prefix
	// WildcardSenders is WILDCARD_SENDERS: logins that may send as anyone.
	WildcardSenders []string
	// MessageRate is MESSAGE_RATELIMIT (nil: no limit), and
	// MessageRateExemption MESSAGE_RATELIMIT_EXEMPTION (login addresses).
	MessageRate          RateLimiter
	MessageRateExemption []string

	MaxRecipients int // per message; 0: DefaultMaxRecipients
	MaxConns      int // per listener; 0: DefaultMaxConns, <0: unlimited
	MaxConnsPerIP int // per client address; 0: DefaultMaxConnsPerIP, <0: unlimited
	// PerIPExempt are networks MaxConnsPerIP does not apply to (Postfix
	// exempts $mynetworks, in Mailu loopback and RELAYNETS, from its
	// per-client limits: local programs and trusted relays).
	PerIPExempt []netip.Prefix
	// ReadTimeout bounds waiting for each command line and each DATA read;
	// WriteTimeout each reply. 0: DefaultTimeout.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxLineLength bounds command and DATA lines; 0: DefaultMaxLineLength.
	MaxLineLength int

	// Error limits (Postfix's smtpd_*_error_limit and friends). Mailu has
	// no settings for them: production uses the defaults, tests change
	// them. 0: the Default; negative: off (for ErrorSleep: no delay).
	HardErrorLimit          int
	SoftErrorLimit          int
	ErrorSleep              time.Duration
	JunkCommandLimit        int
	RecipientOvershootLimit int

	Auth      Authenticator // required for submission roles and for AUTH on 25
	Router    Router        // required
	Deliverer Deliverer     // required
	Resolver  Resolver      // optional reverse DNS for Received; nil: [ip] only
	// Space is DISK_RESERVE: while it is low, new mail gets 452 4.3.1
	// (*blob.Reserve implements it); nil: no check.
	Space SpaceGuard
	// The inbound checks of port 25 (checks.go); each nil: not done.
	// Verifier checks SPF, DKIM, DMARC and iprev; LocalDomains enables
	// Mailu's anti-spoofing rule with it; Checker runs the scanners.
	Verifier     Verifier
	LocalDomains LocalDomains
	Checker      Checker
	// Submission prepares what is submitted on 465 and 587 (Mailu: the
	// outclean cleanup service and rspamd's DKIM signing); nil: the body
	// is spooled as on port 25. Port 25 never uses it.
	Submission Preparer

	Logger  *slog.Logger // nil: discard
	ConnIDs *obs.ConnIDs // connection ids; nil: a new generator
	// NewMsgID names each accepted message (msgid, Received id, "queued
	// as"); nil: a fresh obs.ConnIDs generator.
	NewMsgID func() string
	Now      func() time.Time // nil: time.Now
}

// Server is one SMTP listener role.
type Server struct {
	opts   Options
	limits errLimits
	log    *slog.Logger
	smtp   *smtp.Server
	exempt map[string]bool
	conns  *connlimit.Tracker
}

// New builds a Server. It does not listen; call Serve.
func New(opts Options) *Server {
	if opts.MaxRecipients == 0 {
		opts.MaxRecipients = DefaultMaxRecipients
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerIP == 0 {
		opts.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultTimeout
	}
	if opts.MaxLineLength == 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	limits := errLimits{
		hard:      orDefault(opts.HardErrorLimit, DefaultHardErrorLimit),
		soft:      orDefault(opts.SoftErrorLimit, DefaultSoftErrorLimit),
		junk:      orDefault(opts.JunkCommandLimit, DefaultJunkCommandLimit),
		overshoot: orDefault(opts.RecipientOvershootLimit, DefaultRecipientOvershootLimit),
		sleep:     orDefault(opts.ErrorSleep, DefaultErrorSleep),
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ConnIDs == nil {
		opts.ConnIDs = obs.NewConnIDs()
	}
	if opts.NewMsgID == nil {
		opts.NewMsgID = obs.NewConnIDs().Next
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	lim := connlimit.Options{
		MaxConns: opts.MaxConns,
		MaxPerIP: opts.MaxConnsPerIP,
		PerIPExempt: func(ip netip.Addr) bool {
			for _, p := range opts.PerIPExempt {
				if p.Contains(ip) {
					return true
				}
			}
			return false
		},
		ReplyTimeout: min(opts.WriteTimeout, 10*time.Second),
	}
	if opts.Role == RoleSubmissions {
		lim.TLSConfig = opts.TLSConfig // a 421 on 465 needs the handshake first
	}
	s := &Server{
		opts:   opts,
		limits: limits,
		log:    opts.Logger.With("proto", opts.Role.String()),
		exempt: make(map[string]bool, len(opts.MessageRateExemption)),
		conns:  connlimit.New(lim),
	}
	for _, e := range opts.MessageRateExemption {
		s.exempt[strings.ToLower(strings.TrimSpace(e))] = true
	}

	gs := smtp.NewServer(backend{s})
	gs.Domain = opts.Hostname
	gs.MaxMessageBytes = opts.MaxMessageBytes
	gs.MaxLineLength = opts.MaxLineLength
	gs.ReadTimeout = opts.ReadTimeout
	gs.WriteTimeout = opts.WriteTimeout
	// The recipient limit is counted in Session.Rcpt so that the reply is
	// RFC 5321 4.5.3.1.10's "452 Too many recipients".
	gs.MaxRecipients = 0
	gs.EnableSMTPUTF8 = true // RFC 6531; mailaddr handles UTF-8 addresses
	gs.EnableDSN = true      // RFC 3461, advertised by Mailu (nginx smtp_capabilities)
	// RFC 8689: go-smtp lists REQUIRETLS in EHLO only under TLS; the
	// queue keeps the parameter and the relay enforces it.
	gs.EnableREQUIRETLS = true
	gs.TLSConfig = opts.TLSConfig
	// go-smtp would answer AUTH on a plaintext connection with its own
	// "523 5.7.10"; Session.Auth decides instead (502 on 25, 530 on 587).
	gs.AllowInsecureAuth = true
	gs.ErrorLog = errorLog{s.log}
	gs.ConnDebug = s.connTrace // LOG_LEVEL=TRACE: protocol traces (third_party/go-smtp)
	s.smtp = gs
	return s
}

// Serve accepts connections on ln (a plain TCP listener for every role; for
// RoleSubmissions Serve does the TLS) until Shutdown. It returns nil after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.opts.Role != RoleMX && s.opts.Role != RoleSubmission && s.opts.Role != RoleSubmissions {
		return fmt.Errorf("smtpd: unknown role %d", int(s.opts.Role))
	}
	if s.opts.Role == RoleSubmissions && s.opts.TLSConfig == nil {
		return errors.New("smtpd: port 465 needs a TLS certificate (TLSConfig is nil)")
	}
	if s.opts.Role == RoleSubmission && s.opts.TLSConfig == nil && !s.opts.NoTLS {
		// Without STARTTLS nobody could ever AUTH on 587.
		return errors.New("smtpd: port 587 needs a TLS certificate for STARTTLS, or NoTLS (TLS_FLAVOR=notls)")
	}
	if s.opts.Hostname == "" {
		return errors.New("smtpd: Hostname (the first HOSTNAMES entry) is required for the banner")
	}
	if s.opts.Router == nil || s.opts.Deliverer == nil {
		return errors.New("smtpd: Router and Deliverer are required")
	}
	if s.opts.Role.submission() && s.opts.Auth == nil {
		return errors.New("smtpd: submission needs an Authenticator")
	}
	if s.conns.Draining() {
		_ = ln.Close()
		return nil
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "port", s.opts.Role.Port(),
		"starttls", s.opts.TLSConfig != nil && s.opts.Role != RoleSubmissions)
	err := s.smtp.Serve(&limitListener{Listener: ln, srv: s})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, asks idle sessions to leave (they get go-smtp's
// "421 4.4.2" at their next read), lets messages in DATA finish, and waits
// until every session has ended or ctx is done. At ctx's end it cancels
// all sessions' contexts, closes the remaining connections and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.conns.Drain()
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	if ctx.Err() != nil {
		s.conns.CloseAll() // the raw sockets: go-smtp's handlers return and log out
		err = ctx.Err()
	}
	s.conns.Stop()
	return err
}

// limitListener enforces MaxConns and MaxConnsPerIP at accept time and wraps
// each admitted connection (and in TLS on 465).
type limitListener struct {
	net.Listener
	srv *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc, why := l.srv.conns.Admit(c)
		if lc == nil {
			l.srv.refuse(c, why)
			continue
		}
		tc := l.srv.track(lc)
		if l.srv.opts.Role == RoleSubmissions {
			// go-smtp runs the handshake under ReadTimeout and sees a
			// *tls.Conn, so TLSConnectionState works as for STARTTLS.
			return tls.Server(tc, l.srv.opts.TLSConfig), nil
		}
		return tc, nil
	}
}

// track wraps an admitted connection with its id and logger.
func (s *Server) track(lc *connlimit.Conn) *trackedConn {
	cid := s.opts.ConnIDs.Next()
	tc := &trackedConn{
		Conn: lc,
		srv:  s,
		log:  obs.ConnLogger(s.opts.Logger, cid, s.opts.Role.String(), lc.Remote()),

		rdnsDone: make(chan struct{}),
	}
	tc.log.Debug("connect")
	// The look-up runs while the client talks, so a slow resolver costs
	// the Received header its name, never the client its 250.
	go tc.lookupRDNS(s.opts.Resolver)
	return tc
}

// refuse answers a connection over the limits with 421 and closes it; one
// that arrives as Shutdown begins is closed without a word.
func (s *Server) refuse(c net.Conn, why connlimit.Reason) {
	reason, reply := why.String(), ""
	var r *smtp.SMTPError
	switch why {
	case connlimit.TooManyConns:
		r = replyTooManyConns()
	case connlimit.TooManyFromIP:
		r = replyTooManyConnsFromIP()
	}
	if r != nil {
		reason, reply = r.Message, formatReply(r)
	}
	s.log.Warn("connection refused", "remote", connlimit.AddrPort(c.RemoteAddr()).String(), "reason", reason)
	s.conns.Refuse(c, reply)
}

// trackedConn is the connection under go-smtp (and under TLS): the
// connlimit.Conn, which counts it and drains it on Shutdown, with the
// connection's logger and the DATA timeouts.
type trackedConn struct {
	*connlimit.Conn
	srv *Server
	log *slog.Logger

	closeOnce sync.Once

	mu     sync.Mutex
	doomed bool // the client timed out: every read fails from now on

	errs errCounter // the error limits' counts (errlimit.go)

	// rdnsDone is closed when the reverse look-up started at connect has
	// finished; rdns is its result ("" if none) and is read only after.
	rdnsDone chan struct{}
	rdns     string

	trace *obs.Trace // LOG_LEVEL=TRACE only; under mu
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() { c.log.Debug("disconnect") })
	return c.Conn.Close()
}

// Read implements net.Conn. While a message body is read (busy), each
// read gets a fresh ReadTimeout: go-smtp sets the deadline once per
// command, which would bound the whole DATA transfer instead of each block
// (RFC 5321 4.5.3.2.6).
func (c *trackedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if !c.doomed && c.Busy() {
		_ = c.NetConn().SetReadDeadline(time.Now().Add(c.srv.opts.ReadTimeout))
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		c.idleTimeout()
	}
	return n, err
}

// idleTimeout handles a client that went silent between commands (or in
// the TLS handshake). go-smtp v0.25.1 answers "421 4.4.2 Idle timeout"
// itself and logs nothing, so Petrel logs it. And the timeout is made
// final: when the client stalled in the middle of a line, bufio.ReadLine
// hands go-smtp the partial line without the error, go-smtp runs it as a
// command and would then wait another full timeout; dooming the
// connection makes the next read fail at once, so the session ends after
// that one reply. Timeouts inside DATA are Data's, and the drain's forced
// timeouts are no fault of the client.
func (c *trackedConn) idleTimeout() {
	c.mu.Lock()
	skip := c.doomed || c.Busy() || c.Draining()
	if !skip {
		c.doomed = true
		_ = c.NetConn().SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
	if !skip {
		// RFC 5321 4.5.3.2.7: the server timeout (Postfix smtpd_timeout).
		c.log.Info("rejected", "stage", "command", "code", 421,
			"reply", "Idle timeout", "timeout", c.srv.opts.ReadTimeout.String())
	}
}

// Write implements net.Conn. go-smtp v0.25.1 sends a few refusals of its
// own without logging them; on a plaintext session (port 25, 587 before
// STARTTLS) Petrel recognises them on their way out, logs them, and counts
// them against the error limits (errlimit.go). Under TLS the bytes here
// are ciphertext and nothing matches.
func (c *trackedConn) Write(p []byte) (int, error) {
	n, hangUp := c.observe(p)
	c.logGoSMTPRefusal(p)
	written, err := c.Conn.Write(p)
	if hangUp && err == nil {
		c.hangUp(c, nil, "command", n)
	}
	return written, err
}

// logGoSMTPRefusal logs the go-smtp refusals Petrel can recognise.
func (c *trackedConn) logGoSMTPRefusal(p []byte) {
	switch {
	case len(p) == 0 || (p[0] != '5' && p[0] != '4'):
	case bytes.HasPrefix(p, []byte("500 5.4.0 Too long line")):
		// go-smtp server.go: a command line over MaxLineLength (RFC 5321
		// 4.5.3.1.4-5 set the minimum Petrel must accept, 512).
		c.log.Info("rejected", "stage", "command", "code", 500,
			"reply", "Too long line, closing connection", "max_line_length", c.srv.opts.MaxLineLength)
	case bytes.HasPrefix(p, []byte("501 5.5.2 Invalid HELO/EHLO name")):
		// third_party/go-smtp: control characters in the HELO/EHLO name
		// (never echoed, issue 17).
		c.log.Info("rejected", "stage", "helo", "code", 501, "reply", "Invalid HELO/EHLO name: control characters are not allowed")
	case bytes.HasPrefix(p, []byte("552 5.3.4 Max message size exceeded")):
		// go-smtp conn.go: MAIL SIZE= or a BDAT chunk over
		// MESSAGE_SIZE_LIMIT (RFC 1870 6).
		c.log.Info("rejected", "stage", "size", "code", 552,
			"reply", "Max message size exceeded", "message_size_limit", c.srv.opts.MaxMessageBytes)
	}
}

// SetReadDeadline implements net.Conn. A doomed connection's reads fail
// at once; while draining, so do an idle one's (connlimit), so go-smtp
// says 421 and hangs up.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doomed {
		return c.NetConn().SetReadDeadline(time.Unix(1, 0))
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline implements net.Conn (tls.Conn's handshake uses it).
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// doom makes every further read time out at once, so go-smtp says 421 and
// hangs up after the current reply.
func (c *trackedConn) doom() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.doomed = true
	_ = c.NetConn().SetReadDeadline(time.Unix(1, 0))
}

// backend is go-smtp's Backend: one session per EHLO (go-smtp starts a new
// one after STARTTLS).
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc, ok := connlimit.As[*trackedConn](c.Conn())
	if !ok {
		// Not reachable with Serve; refuse rather than run without policy.
		return nil, replyLocalProblem()
	}
	return b.s.newSession(c, tc), nil
}

// errorLog bridges go-smtp's printf logger: panics it recovered are
// errors; connection-level noise (TLS handshakes from scanners, resets) is
// debug.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.emit(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.emit(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e errorLog) emit(msg string) {
	switch {
	case isBDATCloseRace(msg):
		e.log.Debug("go-smtp: client left before its BDAT data was read (go-smtp v0.25.1 race, recovered; nothing delivered)")
	case strings.HasPrefix(msg, "panic"):
		e.log.Error("go-smtp recovered a panic", "detail", msg)
	default:
		e.log.Debug("go-smtp", "detail", msg)
	}
}

// isBDATCloseRace recognises a known, harmless go-smtp v0.25.1 panic: when
// a client disconnects right after a BDAT command, Conn.Close clears the
// session before the goroutine handleBdat started calls Session().Data,
// which then dereferences nil. go-smtp recovers it; no Petrel code runs.
func isBDATCloseRace(msg string) bool {
	return strings.HasPrefix(msg, "panic") && strings.Contains(msg, "nil pointer dereference") &&
		strings.Contains(msg, "go-smtp.(*Conn).handleBdat.func1()") && !strings.Contains(msg, "petrelmail/petrel")
}

// orDefault is v, or def when v is 0.
func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// connCount is the number of open connections.
func (s *Server) connCount() int { return s.conns.Count() }
