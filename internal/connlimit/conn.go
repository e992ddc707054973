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

// Conn is an admitted connection. Its Close releases its place in the
// Tracker's counts; while the Tracker drains, its reads time out at once
// unless it is busy.
type Conn struct {
	raw    net.Conn
	t      *Tracker
	remote netip.AddrPort
	ctx    context.Context
	cancel context.CancelFunc
	user   string // the ClaimUser claim, guarded by t.mu

	closeOnce sync.Once

	mu       sync.Mutex
	busy     bool
	draining bool
}

// Remote is the client's address, IPv4-mapped addresses unmapped.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Context is cancelled when the connection is closed and by CloseAll.
func (c *Conn) Context() context.Context { return c.ctx }

// NetConn is the socket under c, as tls.Conn's NetConn. Deadlines set on
// it bypass the drain.
func (c *Conn) NetConn() net.Conn { return c.raw }

// Draining reports whether the Tracker has begun to drain.
func (c *Conn) Draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// SetBusy marks work a drain must let finish (a message body in transit):
// while busy, reads keep the deadlines they are given.
func (c *Conn) SetBusy(b bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = b
}

// Busy reports what SetBusy last set.
func (c *Conn) Busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy
}

// drain marks c for shutdown; called with t.mu held.
func (c *Conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.busy {
		_ = c.raw.SetReadDeadline(past())
	}
}

// ClaimUser counts a logged-in session of user from c's address against
// MaxPerUserIP (Mailu: dovecot mail_max_userip_connections); false when
// the limit is reached. A second claim replaces the first. Close and
// ReleaseUser give the claim back.
func (c *Conn) ClaimUser(user string) bool {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	k := userIP{user, c.remote.Addr()}
	if c.user == user {
		return true
	}
	if t.opts.MaxPerUserIP > 0 && t.perUserIP[k] >= t.opts.MaxPerUserIP {
		return false
	}
	t.releaseUser(c)
	t.perUserIP[k]++
	c.user = user
	return true
}

// ReleaseUser gives back the ClaimUser claim; a no-op without one.
func (c *Conn) ReleaseUser() {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.t.releaseUser(c)
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) { return c.raw.Read(p) }

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) { return c.raw.Write(p) }

// Close implements net.Conn: the first call cancels the context and
// releases c's counts.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.t.release(c)
	})
	return c.raw.Close()
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetReadDeadline implements net.Conn. While draining, a connection that
// is not busy gets a deadline in the past, so a drain cannot be undone by
// a server arming its next read.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining && !c.busy {
		t = past()
	}
	return c.raw.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// SetDeadline implements net.Conn (tls.Conn's handshake uses it).
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.raw.SetWriteDeadline(t)
}

// As finds the connection of type T at or under nc, looking through
// wrappers that have a NetConn method (*tls.Conn, *Conn, and types that
// embed *Conn).
func As[T net.Conn](nc net.Conn) (T, bool) {
	for nc != nil {
		if c, ok := nc.(T); ok {
			return c, true
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	var zero T
	return zero, false
}

// past is a read deadline that has already passed: a read fails at once
// with a timeout.
func past() time.Time { return time.Unix(1, 0) }

// Lingering bounds Linger: how long, and how much input, it waits for.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 1 << 20
)

// Linger is for a server that hangs up on a client that may still be
// sending (a line too long, too many errors). Closing a socket with
// unread input makes the kernel send a reset, which can destroy the
// replies still on their way; so, as net/http does, the sending side is
// shut first (after TLS's close_notify when top is a *tls.Conn) and the
// client's remaining input is read and dropped for a short while. The
// caller closes afterwards as usual.
func (c *Conn) Linger(top net.Conn) {
	if tc, ok := top.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	tcp, ok := c.raw.(interface{ CloseWrite() error })
	if !ok || tcp.CloseWrite() != nil {
		return
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.raw, lingerBytes))
}
