package relay

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Connection cache defaults, after Postfix's (postconf(5),
// CONNECTION_CACHE_README).
const (
	// DefaultCacheIdle: smtp_connection_cache_time_limit = 2s, how long an
	// unused session waits for the next message.
	DefaultCacheIdle = 2 * time.Second
	// DefaultCacheMaxAge: smtp_connection_reuse_time_limit = 300s, after
	// which a session is not reused however busy the destination.
	DefaultCacheMaxAge = 300 * time.Second
	// DefaultCacheMaxUses bounds the messages of one session. Postfix's
	// smtp_connection_reuse_count_limit defaults to 0 (no limit, the time
	// limit rules); a bound spreads long bursts over fresh sessions, e.g.
	// after RELAYHOST's DNS name moved.
	DefaultCacheMaxUses = 100
	// maxIdleConns bounds the sessions kept idle in all; at most as many
	// as deliveries ran at once can be idle anyway.
	maxIdleConns = 200
	// checkTimeout bounds the NOOP that checks a cached session is alive
	// before it is reused (Postfix: smtp_rset_timeout = 20s; Postfix
	// sends RSET, but go-smtp's Reset forgets the EHLO and would say it
	// again, so the check is NOOP and RSET is sent only after a
	// transaction that did not end).
	checkTimeout = 20 * time.Second
	// idleQuitTimeout bounds the QUIT of a session closed while idle.
	idleQuitTimeout = 2 * time.Second
)

// CacheOptions tune the connection cache. Zero fields take the defaults.
type CacheOptions struct {
	Idle    time.Duration // default DefaultCacheIdle; < 0 disables the cache
	MaxAge  time.Duration // default DefaultCacheMaxAge
	MaxUses int           // default DefaultCacheMaxUses
}

// connKey is what a session is reused for: the same server address, the
// same name (TLS, logs), and the same policy (the hop's kind decides TLS
// verification and AUTH; noTLS is the clear-text retry).
type connKey struct {
	kind  hopKind
	lmtp  bool
	host  string
	addr  netip.AddrPort
	noTLS bool
	tls   string // the TLS policy the session was secured under
}

// smtpConn is an established session: greeted, secured and logged in as
// its next hop asks, between transactions.
type smtpConn struct {
	key        connKey
	raw        net.Conn // the TCP connection under TLS and go-smtp
	sc         *smtp.Client
	tlsVersion string
	born       time.Time
	uses       int  // transactions started on it
	reused     bool // taken from the cache for the current message
	timer      *time.Timer
}

// quit says QUIT without waiting long for the reply, and closes.
func (cn *smtpConn) quit(timeout time.Duration) {
	cn.sc.CommandTimeout = timeout
	if err := cn.sc.Quit(); err != nil {
		cn.raw.Close()
	}
}

// connCache keeps idle sessions per connKey, newest last.
type connCache struct {
	o     CacheOptions
	mu    sync.Mutex
	conns map[connKey][]*smtpConn
	n     int
}

func newConnCache(o CacheOptions) *connCache {
	if o.Idle == 0 {
		o.Idle = DefaultCacheIdle
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultCacheMaxAge
	}
	if o.MaxUses <= 0 {
		o.MaxUses = DefaultCacheMaxUses
	}
	return &connCache{o: o, conns: map[connKey][]*smtpConn{}}
}

// get takes the newest idle session for k, or nil.
func (cc *connCache) get(k connKey) *smtpConn {
	if cc.o.Idle < 0 {
		return nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	list := cc.conns[k]
	for len(list) > 0 {
		cn := list[len(list)-1]
		list = list[:len(list)-1]
		cc.n--
		cn.timer.Stop() // if it fired already, it finds cn gone and leaves it
		if time.Since(cn.born) < cc.o.MaxAge {
			cc.setList(k, list)
			cn.reused = true
			return cn
		}
		cc.closeLater(cn)
	}
	cc.setList(k, list)
	return nil
}

// put keeps cn for the next message to its server and reports whether it
// did; if not, the caller ends the session.
func (cc *connCache) put(cn *smtpConn) bool {
	if cc.o.Idle < 0 || cn.uses >= cc.o.MaxUses || time.Since(cn.born) >= cc.o.MaxAge {
		return false
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n >= maxIdleConns {
		return false
	}
	cn.reused = false
	cc.conns[cn.key] = append(cc.conns[cn.key], cn)
	cc.n++
	cn.timer = time.AfterFunc(cc.o.Idle, func() { cc.expire(cn) })
	return true
}

// expire ends cn after its idle time unless get took it first.
func (cc *connCache) expire(cn *smtpConn) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	list := cc.conns[cn.key]
	for i, c := range list {
		if c == cn {
			cc.setList(cn.key, append(list[:i], list[i+1:]...))
			cc.n--
			cc.closeLater(cn)
			return
		}
	}
}

// closeIdle ends every idle session and returns when they are closed.
func (cc *connCache) closeIdle() {
	cc.mu.Lock()
	var all []*smtpConn
	for k, list := range cc.conns {
		for _, cn := range list {
			cn.timer.Stop()
			all = append(all, cn)
		}
		delete(cc.conns, k)
	}
	cc.n = 0
	cc.mu.Unlock()
	var wg sync.WaitGroup
	for _, cn := range all {
		wg.Go(func() { cn.quit(idleQuitTimeout) })
	}
	wg.Wait()
}

// closeLater says QUIT on cn in the background (an expired session: no
// one waits for it).
func (cc *connCache) closeLater(cn *smtpConn) {
	go cn.quit(idleQuitTimeout)
}

func (cc *connCache) setList(k connKey, list []*smtpConn) {
	if len(list) == 0 {
		delete(cc.conns, k)
		return
	}
	cc.conns[k] = list
}
