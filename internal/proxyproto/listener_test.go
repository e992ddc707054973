package proxyproto

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/testutil"
)

func listen(t *testing.T, trusted string) (*Listener, *testutil.LogBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := new(testutil.LogBuffer)
	l := Listen(ln, Options{Trusted: []netip.Prefix{netip.MustParsePrefix(trusted)}, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { l.Close() })
	return l, logs
}

func dial(t *testing.T, l *Listener, send []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(send); err != nil {
		t.Fatal(err)
	}
	return c
}

func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(10 * time.Second):
		t.Fatal("Accept returned nothing")
	}
	return nil
}

// TestTrustedProxy: v1 and v2 headers from a trusted proxy give the
// connection the client's address, and the bytes after the header arrive.
func TestTrustedProxy(t *testing.T) {
	client := Header{Src: netip.MustParseAddrPort("203.0.113.7:40000"), Dst: netip.MustParseAddrPort("198.51.100.1:25")}
	for name, hdr := range map[string][]byte{"v1": AppendV1(nil, client), "v2": AppendV2(nil, client)} {
		t.Run(name, func(t *testing.T) {
			l, _ := listen(t, "127.0.0.0/8")
			// A proxy that never sends its header holds up no one else.
			dial(t, l, nil)
			dial(t, l, append(hdr, "EHLO client.example\r\n"...))
			c := accept(t, l)
			if got := c.RemoteAddr().String(); got != "203.0.113.7:40000" {
				t.Errorf("RemoteAddr %s, want the client's 203.0.113.7:40000", got)
			}
			if got := c.LocalAddr().String(); got != "198.51.100.1:25" {
				t.Errorf("LocalAddr %s, want 198.51.100.1:25", got)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "EHLO client.example\r\n" {
				t.Errorf("after the header: %q, %v", line, err)
			}
		})
	}
}

// TestLocalKeepsProxyAddress: a health check (v2 LOCAL, v1 UNKNOWN) is
// the proxy's own connection.
func TestLocalKeepsProxyAddress(t *testing.T) {
	l, _ := listen(t, "127.0.0.0/8")
	c := dial(t, l, AppendV2(nil, Header{Local: true}))
	got := accept(t, l)
	if got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("LOCAL: RemoteAddr %s, want the proxy's %s", got.RemoteAddr(), c.LocalAddr())
	}
}

// TestRefusals: a header from outside REAL_IP_FROM, and a trusted peer
// without a valid header, are logged and closed, never accepted.
func TestRefusals(t *testing.T) {
	hdr := AppendV1(nil, Header{Src: netip.MustParseAddrPort("203.0.113.7:1"), Dst: netip.MustParseAddrPort("192.0.2.1:25")})
	for _, tc := range []struct {
		name, trusted string
		send          []byte
		log           string
	}{
		{"untrusted peer", "10.0.0.0/8", hdr, "not in REAL_IP_FROM"},
		{"no header", "127.0.0.0/8", []byte("EHLO x\r\n"), "no PROXY header"},
		{"malformed v1", "127.0.0.0/8", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 25\r\n"), "bad port"},
		{"truncated v2", "127.0.0.0/8", AppendV2(nil, Header{Src: netip.MustParseAddrPort("203.0.113.7:1"), Dst: netip.MustParseAddrPort("192.0.2.1:25")})[:20], "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, logs := listen(t, tc.trusted)
			c := dial(t, l, tc.send)
			if tc.name == "truncated v2" {
				c.(*net.TCPConn).CloseWrite() // the proxy gives up mid-header
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
				t.Fatalf("read from a refused connection: %d, %v; want it closed", n, err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), tc.log) {
				if time.Now().After(deadline) {
					t.Fatalf("log lacks %q:\n%s", tc.log, logs)
				}
				time.Sleep(10 * time.Millisecond) // polling the log
			}
			if !strings.Contains(logs.String(), "level=WARN msg=\"connection refused") {
				t.Errorf("refusal not logged as a WARN:\n%s", logs)
			}
		})
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }
