// Package connlimit is the connection bookkeeping every Petrel listener
// shares: admission against a total and a per-address limit, the count of
// logged-in sessions per user and address, a bounded pool that answers
// refused connections, and the drain and forced close of a shutdown.
//
// Serve and Shutdown are the accept loop and the shutdown of a server
// that runs its own (pop3d, imapd; go-smtp runs smtpd's).
//
// It knows no protocol: the reply a refused client gets, the session and
// the log attributes stay in the server package (smtpd, pop3d, imapd).
package connlimit

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Reason is why Admit turned a connection away.
type Reason int

const (
	// TooManyConns: Options.MaxConns connections are open.
	TooManyConns Reason = iota + 1
	// TooManyFromIP: Options.MaxPerIP connections from this address are open.
	TooManyFromIP
	// ShuttingDown: Drain was called.
	ShuttingDown
)

// String names the reason for tests and debugging; servers log their own
// reply texts.
func (r Reason) String() string {
	switch r {
	case TooManyConns:
		return "too many connections"
	case TooManyFromIP:
		return "too many connections from this address"
	case ShuttingDown:
		return "shutting down"
	}
	return "admitted"
}

// Defaults for zero Options fields.
const (
	// DefaultMaxReplying bounds the refused connections answered at once;
	// beyond it they are closed without a reply.
	DefaultMaxReplying = 64
	// DefaultReplyTimeout bounds answering one refused connection, TLS
	// handshake included.
	DefaultReplyTimeout = 10 * time.Second
)

// Options configures a Tracker. A limit <= 0 means unlimited.
type Options struct {
	MaxConns     int // open connections in all
	MaxPerIP     int // open connections from one client address
	MaxPerUserIP int // ClaimUser sessions of one user from one address
	// PerIPExempt, when set, names addresses MaxPerIP does not apply to
	// (Postfix: smtpd_client_event_limit_exceptions = $mynetworks).
	PerIPExempt func(netip.Addr) bool

	// TLSConfig, for implicit-TLS ports (465, 993, 995), makes Refuse
	// answer after a TLS handshake, so the client can read the reply.
	TLSConfig *tls.Config
	// MaxReplying bounds the goroutines answering refused connections: on
	// an implicit-TLS port each costs a handshake, which a flood must not
	// be able to multiply. 0: DefaultMaxReplying.
	MaxReplying int
	// ReplyTimeout bounds each of them; 0: DefaultReplyTimeout.
	ReplyTimeout time.Duration
}

// Tracker counts the connections of one listener (or of several that
// share limits) and ends them at shutdown.
type Tracker struct {
	opts     Options
	base     context.Context // parent of every connection's context
	cancel   context.CancelFunc
	slots    chan struct{} // one per refusal being answered
	replying sync.WaitGroup

	mu        sync.Mutex
	conns     map[*Conn]struct{}
	perIP     map[netip.Addr]int
	perUserIP map[userIP]int
	draining  bool
	listeners map[net.Listener]struct{} // those Serve accepts on; Drain closes them
	empty     chan struct{}             // closed when conns becomes empty; nil if nobody waits
}

type userIP struct {
	user string
	ip   netip.Addr
}

// New builds a Tracker.
func New(opts Options) *Tracker {
	if opts.MaxReplying <= 0 {
		opts.MaxReplying = DefaultMaxReplying
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	t := &Tracker{
		opts:      opts,
		slots:     make(chan struct{}, opts.MaxReplying),
		conns:     make(map[*Conn]struct{}),
		perIP:     make(map[netip.Addr]int),
		perUserIP: make(map[userIP]int),
		listeners: make(map[net.Listener]struct{}),
	}
	t.base, t.cancel = context.WithCancel(context.Background())
	return t
}

// Admit registers c and returns it wrapped, or returns nil and why it was
// refused; then hand c to Refuse. The Conn is counted until its Close.
func (t *Tracker) Admit(c net.Conn) (*Conn, Reason) {
	remote := AddrPort(c.RemoteAddr())
	ip := remote.Addr()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.draining:
		return nil, ShuttingDown
	case t.opts.MaxConns > 0 && len(t.conns) >= t.opts.MaxConns:
		return nil, TooManyConns
	case t.opts.MaxPerIP > 0 && ip.IsValid() && t.perIP[ip] >= t.opts.MaxPerIP && (t.opts.PerIPExempt == nil || !t.opts.PerIPExempt(ip)):
		return nil, TooManyFromIP
	}
	tc := &Conn{raw: c, t: t, remote: remote}
	tc.ctx, tc.cancel = context.WithCancel(t.base)
	t.conns[tc] = struct{}{}
	if ip.IsValid() {
		t.perIP[ip]++
	}
	return tc, 0
}

// Refuse writes reply to a connection Admit turned away and closes it, on
// a goroutine of its own (a TLS handshake can take a while). With reply
// "", while draining, or when MaxReplying refusals are being answered, c
// is closed at once without a word.
func (t *Tracker) Refuse(c net.Conn, reply string) {
	answer := false
	if reply != "" {
		// Under mu, so that no Add can follow Drain and race Stop's Wait.
		t.mu.Lock()
		if !t.draining {
			select {
			case t.slots <- struct{}{}:
				t.replying.Add(1)
				answer = true
			default:
			}
		}
		t.mu.Unlock()
	}
	if !answer {
		_ = c.Close()
		return
	}
	go func() {
		defer t.replying.Done()
		defer func() { <-t.slots }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(t.opts.ReplyTimeout))
		var w net.Conn = c
		if t.opts.TLSConfig != nil {
			tc := tls.Server(c, t.opts.TLSConfig)
			if err := tc.Handshake(); err != nil {
				return
			}
			w = tc
		}
		_, _ = io.WriteString(w, reply)
	}()
}

// Drain starts a shutdown: Admit refuses from now on, the listeners Serve
// accepts on are closed, and every open connection that is not busy has
// its pending and next reads fail at once (a read timeout), so its server
// says goodbye and hangs up.
func (t *Tracker) Drain() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draining = true
	for ln := range t.listeners {
		_ = ln.Close()
	}
	for c := range t.conns {
		c.drain()
	}
}

// Draining reports whether Drain was called.
func (t *Tracker) Draining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

// Wait blocks until every admitted connection is closed, or ctx is done.
func (t *Tracker) Wait(ctx context.Context) error {
	t.mu.Lock()
	if len(t.conns) == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	empty := t.empty
	t.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseAll is the shutdown deadline: it closes the sockets under every
// connection, then cancels their contexts. Sockets first, so that no
// reply to the cancelled work reaches a client after the deadline. Each
// Conn stays counted until its server's own Close.
func (t *Tracker) CloseAll() {
	t.mu.Lock()
	for c := range t.conns {
		_ = c.raw.Close()
	}
	t.mu.Unlock()
	t.cancel()
}

// Stop ends a shutdown: it waits for the refusals being answered (each
// bounded by ReplyTimeout) and cancels the context of any connection
// still open.
func (t *Tracker) Stop() {
	t.replying.Wait()
	t.cancel()
}

// Count is the number of open connections.
func (t *Tracker) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// release forgets a closed connection and any user it claimed.
func (t *Tracker) release(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.releaseUser(c)
	delete(t.conns, c)
	if ip := c.remote.Addr(); ip.IsValid() {
		if t.perIP[ip]--; t.perIP[ip] <= 0 {
			delete(t.perIP, ip)
		}
	}
	if len(t.conns) == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
}

// releaseUser drops c's user claim; called with mu held.
func (t *Tracker) releaseUser(c *Conn) {
	if c.user == "" {
		return
	}
	k := userIP{c.user, c.remote.Addr()}
	if t.perUserIP[k]--; t.perUserIP[k] <= 0 {
		delete(t.perUserIP, k)
	}
	c.user = ""
}

// AddrPort is a's address and port, IPv4-mapped IPv6 addresses unmapped
// so that a client counts the same over both stacks; the zero AddrPort if
// a is nil or not an IP address.
func AddrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
