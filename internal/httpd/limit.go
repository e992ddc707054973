package httpd

import (
	"net"
	"net/netip"
	"sync"
)

// Connection limits: one client cannot hold every socket (slowloris and
// the like), and the process keeps a ceiling. Trusted proxies
// (RealIPFrom) are exempt from the per-address limit: every client
// arrives from them.
const (
	DefaultMaxConns      = 2048
	DefaultMaxConnsPerIP = 64
)

// limitListener closes connections over the limits as soon as they are
// accepted.
type limitListener struct {
	net.Listener
	max, perIP int
	exempt     func(netip.Addr) bool

	mu    sync.Mutex
	total int
	byIP  map[netip.Addr]int
}

func newLimitListener(ln net.Listener, max, perIP int, exempt func(netip.Addr) bool) *limitListener {
	return &limitListener{Listener: ln, max: max, perIP: perIP, exempt: exempt, byIP: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limits; others are closed.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerAddr(c)
		if l.admit(ip) {
			return &limitConn{Conn: c, l: l, ip: ip}, nil
		}
		_ = c.Close()
	}
}

func (l *limitListener) admit(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return false
	}
	if ip.IsValid() && !l.exempt(ip) && l.byIP[ip] >= l.perIP {
		return false
	}
	l.total++
	l.byIP[ip]++
	return true
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
