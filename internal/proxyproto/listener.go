package proxyproto

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultTimeout bounds how long a trusted proxy may take to send the
// header.
const DefaultTimeout = 10 * time.Second

// Options configures Listen.
type Options struct {
	// Trusted are the proxies that may (and must) send a header
	// (REAL_IP_FROM). A connection from anywhere else is refused: a port
	// that expects PROXY headers cannot tell a client from a proxy that
	// forgot one.
	Trusted []netip.Prefix
	Timeout time.Duration // for the header; 0 = DefaultTimeout
	Logger  *slog.Logger  // refusals are WARN; nil = discard
}

// Listener accepts connections from trusted proxies, reads each one's
// header off the accept path (a slow proxy holds up no one else) and hands
// out connections whose RemoteAddr is the client's.
type Listener struct {
	inner net.Listener
	opts  Options
	conns chan net.Conn
	done  chan struct{}

	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // why accepting stopped
	wg        sync.WaitGroup
}

// Listen wraps ln. Closing the Listener closes ln.
func Listen(ln net.Listener, opts Options) *Listener {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{inner: ln, opts: opts, conns: make(chan net.Conn), done: make(chan struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and the like: back off and go
				// on, as net/http does.
				l.opts.Logger.Warn("accept failed; retrying", "err", err.Error())
				select {
				case <-l.done:
				case <-time.After(50 * time.Millisecond):
					continue
				}
			}
			l.errMu.Lock()
			l.err = err
			l.errMu.Unlock()
			l.Close()
			return
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake checks the peer and reads its header, then queues the
// connection for Accept; anything wrong is logged and the socket closed.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	peer := addrPort(c.RemoteAddr())
	if !l.trusted(peer.Addr()) {
		l.refuse(c, peer, "PROXY protocol expected on this port, but the peer is not in REAL_IP_FROM", nil)
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(l.opts.Timeout))
	br := bufio.NewReaderSize(c, 256)
	h, err := Read(br)
	if err != nil {
		l.refuse(c, peer, "bad or missing PROXY header from a trusted proxy", err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &Conn{Conn: c, r: br, remote: c.RemoteAddr(), local: c.LocalAddr(), Header: h}
	if !h.Local {
		pc.remote = net.TCPAddrFromAddrPort(h.Src)
		pc.local = net.TCPAddrFromAddrPort(h.Dst)
	}
	select {
	case l.conns <- pc:
	case <-l.done:
		c.Close()
	}
}

func (l *Listener) refuse(c net.Conn, peer netip.AddrPort, why string, err error) {
	attrs := []any{"remote", peer.String(), "local", c.LocalAddr().String()}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	l.opts.Logger.Warn("connection refused: "+why, attrs...)
	c.Close()
}

func (l *Listener) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.opts.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Accept returns the next connection whose header was good.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections still sending their header are
// closed.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Conn is a connection that came through a proxy: RemoteAddr is the
// client's and LocalAddr the address the client connected to (the
// proxy's own for a LOCAL header). Reads start after the header.
type Conn struct {
	net.Conn
	Header Header
	r      *bufio.Reader
	remote net.Addr
	local  net.Addr
}

func (c *Conn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil // drained: read the socket directly from now on
	}
	return c.Conn.Read(p)
}

func (c *Conn) RemoteAddr() net.Addr { return c.remote }
func (c *Conn) LocalAddr() net.Addr  { return c.local }

// NetConn returns the socket, for connlimit.As and the like.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// CloseWrite shuts the sending side (connlimit's Linger uses it).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("proxyproto: connection cannot half-close")
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
