package connlimit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// addrConn is one end of a net.Pipe that claims to come from addr.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

// pipeFrom returns a server end from ip (for the Tracker) and the client
// end.
func pipeFrom(t *testing.T, ip string) (server net.Conn, client net.Conn) {
	t.Helper()
	s, c := net.Pipe()
	t.Cleanup(func() { s.Close(); c.Close() })
	a := net.ParseIP(ip)
	if !strings.Contains(ip, ":") {
		a = a.To4() // as an IPv4 socket reports it; "::ffff:..." stays 16 bytes
	}
	return addrConn{s, &net.TCPAddr{IP: a, Port: 4000}}, c
}

// tcpPair returns both ends of a real loopback connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func mustAdmit(t *testing.T, tr *Tracker, c net.Conn) *Conn {
	t.Helper()
	tc, r := tr.Admit(c)
	if tc == nil {
		t.Fatalf("refused %v: %v", c.RemoteAddr(), r)
	}
	return tc
}

func TestAdmitLimits(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		ips   []string // admitted in order
		next  string
		want  Reason // for next; 0: admitted
		count int    // open connections at the end
	}{
		{"total", Options{MaxConns: 2}, []string{"192.0.2.1", "192.0.2.2"}, "192.0.2.3", TooManyConns, 2},
		{"per IP", Options{MaxPerIP: 2}, []string{"192.0.2.1", "192.0.2.1"}, "192.0.2.1", TooManyFromIP, 2},
		{"per IP, other address", Options{MaxPerIP: 2}, []string{"192.0.2.1", "192.0.2.1"}, "192.0.2.2", 0, 3},
		{"total before per IP", Options{MaxConns: 2, MaxPerIP: 2}, []string{"192.0.2.1", "192.0.2.1"}, "192.0.2.1", TooManyConns, 2},
		{"mapped IPv6 counts as IPv4", Options{MaxPerIP: 1}, []string{"192.0.2.1"}, "::ffff:192.0.2.1", TooManyFromIP, 1},
		{"IPv4 after mapped", Options{MaxPerIP: 1}, []string{"::ffff:192.0.2.1"}, "192.0.2.1", TooManyFromIP, 1},
		{"IPv6", Options{MaxPerIP: 1}, []string{"2001:db8::1"}, "2001:db8::2", 0, 2},
		{"unlimited", Options{}, []string{"192.0.2.1", "192.0.2.1", "192.0.2.1"}, "192.0.2.1", 0, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(tc.opts)
			for _, ip := range tc.ips {
				s, _ := pipeFrom(t, ip)
				mustAdmit(t, tr, s)
			}
			s, _ := pipeFrom(t, tc.next)
			c, r := tr.Admit(s)
			if r != tc.want || (c == nil) != (tc.want != 0) {
				t.Fatalf("Admit = %v, %v; want reason %v", c, r, tc.want)
			}
			if n := tr.Count(); n != tc.count {
				t.Errorf("Count = %d, want %d", n, tc.count)
			}
		})
	}
}

// Closing a connection frees its place, once however often it is closed.
func TestReleaseOnClose(t *testing.T) {
	tr := New(Options{MaxConns: 3, MaxPerIP: 2})
	s1, _ := pipeFrom(t, "192.0.2.1")
	s2, _ := pipeFrom(t, "::ffff:192.0.2.1")
	a, b := mustAdmit(t, tr, s1), mustAdmit(t, tr, s2)
	if a.Remote() != netip.MustParseAddrPort("192.0.2.1:4000") || b.Remote().Addr() != a.Remote().Addr() {
		t.Fatalf("remotes %v %v", a.Remote(), b.Remote())
	}
	s3, _ := pipeFrom(t, "192.0.2.1")
	if c, r := tr.Admit(s3); c != nil || r != TooManyFromIP {
		t.Fatalf("third from one address: %v %v", c, r)
	}
	a.Close()
	a.Close()
	if n := tr.Count(); n != 1 {
		t.Fatalf("Count after double Close = %d", n)
	}
	if a.Context().Err() == nil {
		t.Error("context not cancelled by Close")
	}
	if b.Context().Err() != nil {
		t.Error("a neighbour's context was cancelled")
	}
	s4, _ := pipeFrom(t, "192.0.2.1")
	mustAdmit(t, tr, s4)
	s5, _ := pipeFrom(t, "192.0.2.1")
	if c, r := tr.Admit(s5); c != nil || r != TooManyFromIP {
		t.Fatalf("a double Close freed two places: %v %v", c, r)
	}
}

// readResult reads from c on a goroutine; the error arrives on the
// channel.
func readResult(c net.Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		ch <- err
	}()
	return ch
}

func wantTimeout(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s: read returned %v, want a timeout", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: read still blocked", what)
	}
}

func TestDrainCutsBlockedRead(t *testing.T) {
	tr := New(Options{})
	s, client := tcpPair(t)
	c := mustAdmit(t, tr, s)
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	pending := readResult(c)
	tr.Drain()
	wantTimeout(t, pending, "pending read")
	if !c.Draining() || !tr.Draining() {
		t.Error("Draining false after Drain")
	}
	// Arming the next read cannot undo the drain.
	_ = c.SetDeadline(time.Now().Add(time.Hour))
	wantTimeout(t, readResult(c), "next read")
	// Writes still work, for the goodbye.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("write while draining: %v", err)
	}
	if _, err := io.ReadFull(client, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// No one new gets in.
	s2, _ := tcpPair(t)
	if c2, r := tr.Admit(s2); c2 != nil || r != ShuttingDown {
		t.Fatalf("Admit while draining: %v %v", c2, r)
	}
}

// A busy connection keeps reading through a drain, and is cut at its
// first read after it is no longer busy.
func TestDrainLeavesBusy(t *testing.T) {
	tr := New(Options{})
	s, client := tcpPair(t)
	c := mustAdmit(t, tr, s)
	c.SetBusy(true)
	if !c.Busy() {
		t.Fatal("Busy false after SetBusy(true)")
	}
	tr.Drain()
	_ = c.SetReadDeadline(time.Now().Add(time.Hour))
	if _, err := client.Write([]byte("body")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "body" {
		t.Fatalf("busy read during drain: %q %v", buf, err)
	}
	c.SetBusy(false)
	_ = c.SetReadDeadline(time.Now().Add(time.Hour))
	wantTimeout(t, readResult(c), "read after busy")
}

// CloseAll closes the sockets and cancels the contexts; the connections
// stay counted until their servers close them, and Wait sees that.
func TestCloseAllAndWait(t *testing.T) {
	tr := New(Options{})
	s1, _ := tcpPair(t)
	s2, _ := tcpPair(t)
	a, b := mustAdmit(t, tr, s1), mustAdmit(t, tr, s2)
	a.SetBusy(true) // not cut by Drain, only by CloseAll
	tr.Drain()
	blocked := readResult(a)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with open connections = %v", err)
	}
	tr.CloseAll()
	select {
	case err := <-blocked:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked read after CloseAll: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked read survived CloseAll")
	}
	if a.Context().Err() == nil || b.Context().Err() == nil {
		t.Error("CloseAll left a context running")
	}
	if n := tr.Count(); n != 2 {
		t.Errorf("Count after CloseAll = %d, want 2 until Close", n)
	}
	waited := make(chan error, 1)
	go func() { waited <- tr.Wait(context.Background()) }()
	a.Close()
	b.Close()
	if err := <-waited; err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if n := tr.Count(); n != 0 {
		t.Errorf("Count = %d", n)
	}
	if err := tr.Wait(context.Background()); err != nil {
		t.Errorf("Wait with nothing open = %v", err)
	}
	tr.Stop()
}

func TestRefuseAnswers(t *testing.T) {
	tr := New(Options{})
	s, client := tcpPair(t)
	tr.Refuse(s, "421 go away\r\n")
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "421 go away\r\n" {
		t.Fatalf("refused client read %q, %v", got, err)
	}
	tr.Stop()
}

// Refusals beyond MaxReplying, refusals without a reply and those after
// Drain are closed at once without a word.
func TestRefuseBounded(t *testing.T) {
	tr := New(Options{MaxReplying: 2})
	// Pipe writes block until the client reads, so the first two
	// refusals hold their slots.
	var held []net.Conn
	for range 2 {
		s, c := pipeFrom(t, "192.0.2.1")
		tr.Refuse(s, "busy\r\n")
		held = append(held, c)
	}
	for i := range 3 {
		s, c := pipeFrom(t, "192.0.2.1")
		tr.Refuse(s, "busy\r\n")
		if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
			t.Fatalf("refusal %d beyond the bound: read %d, %v; want EOF at once", i+3, n, err)
		}
	}
	s, c := pipeFrom(t, "192.0.2.1")
	tr.Refuse(s, "")
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("refusal without reply: read %d, %v", n, err)
	}
	for i, c := range held {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "busy\r\n" {
			t.Fatalf("held refusal %d: %q %v", i, line, err)
		}
	}
	tr.Stop() // both answers done: returns

	tr.Drain()
	s, c = pipeFrom(t, "192.0.2.1")
	tr.Refuse(s, "busy\r\n")
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("refusal while draining: read %d, %v", n, err)
	}
}

// On an implicit-TLS port the refusal comes after a handshake.
func TestRefuseTLS(t *testing.T) {
	cert := selfSigned(t)
	tr := New(Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	s, client := tcpPair(t)
	tr.Refuse(s, "-ERR [SYS/TEMP] full\r\n")
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	got, err := io.ReadAll(tc)
	if string(got) != "-ERR [SYS/TEMP] full\r\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	tr.Stop()
}

func TestClaimUser(t *testing.T) {
	tr := New(Options{MaxPerUserIP: 1})
	s1, _ := pipeFrom(t, "192.0.2.1")
	s2, _ := pipeFrom(t, "::ffff:192.0.2.1")
	s3, _ := pipeFrom(t, "192.0.2.2")
	a, b, other := mustAdmit(t, tr, s1), mustAdmit(t, tr, s2), mustAdmit(t, tr, s3)
	if !a.ClaimUser("alice@example.test") {
		t.Fatal("first claim refused")
	}
	if b.ClaimUser("alice@example.test") {
		t.Fatal("second claim of alice from one address admitted")
	}
	if !other.ClaimUser("alice@example.test") {
		t.Fatal("alice from another address refused")
	}
	if !b.ClaimUser("bob@example.test") {
		t.Fatal("bob refused")
	}
	a.ReleaseUser()
	a.ReleaseUser() // no-op
	if !b.ClaimUser("alice@example.test") {
		t.Fatal("alice's slot not freed by ReleaseUser")
	}
	// b's bob claim was replaced: bob is free again.
	if !a.ClaimUser("bob@example.test") {
		t.Fatal("a replaced claim still counts")
	}
	b.Close()
	s4, _ := pipeFrom(t, "192.0.2.1")
	if !mustAdmit(t, tr, s4).ClaimUser("alice@example.test") {
		t.Fatal("Close did not free the claim")
	}
}

func TestAs(t *testing.T) {
	type wrapper struct{ *Conn }
	tr := New(Options{})
	s, _ := tcpPair(t)
	c := mustAdmit(t, tr, s)
	w := &wrapper{c}
	over := tls.Server(w, &tls.Config{})
	if got, ok := As[*wrapper](over); !ok || got != w {
		t.Errorf("As[*wrapper] through TLS = %v, %v", got, ok)
	}
	if got, ok := As[*Conn](tls.Server(c, &tls.Config{})); !ok || got != c {
		t.Errorf("As[*Conn] through TLS = %v, %v", got, ok)
	}
	if got, ok := As[*net.TCPConn](over); !ok || got != s {
		t.Errorf("As[*net.TCPConn] = %v, %v", got, ok)
	}
	if _, ok := As[*Conn](s); ok {
		t.Error("As found a Conn under a bare socket")
	}
	if _, ok := As[*Conn](nil); ok {
		t.Error("As found a Conn in nil")
	}
}

type strAddr string

func (a strAddr) Network() string { return "test" }
func (a strAddr) String() string  { return string(a) }

func TestAddrPort(t *testing.T) {
	cases := []struct {
		in   net.Addr
		want string // "" for the zero AddrPort
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1").To4(), Port: 25}, "192.0.2.1:25"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 25}, "192.0.2.1:25"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 993}, "[2001:db8::1]:993"},
		{strAddr("[::ffff:192.0.2.7]:110"), "192.0.2.7:110"},
		{strAddr("192.0.2.8:995"), "192.0.2.8:995"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, ""},
		{(*net.TCPAddr)(nil), ""},
		{nil, ""},
	}
	for _, tc := range cases {
		got := AddrPort(tc.in)
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got.String() != tc.want) {
			t.Errorf("AddrPort(%v) = %v, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzAddrPort(f *testing.F) {
	for _, s := range []string{"192.0.2.1:25", "[::ffff:1.2.3.4]:1", "[2001:db8::1%eth0]:5", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap := AddrPort(strAddr(s))
		if ap.IsValid() && ap.Addr().Is4In6() {
			t.Fatalf("AddrPort(%q) = %v: still mapped", s, ap)
		}
	})
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range []Reason{0, TooManyConns, TooManyFromIP, ShuttingDown} {
		s := r.String()
		if s == "" || seen[s] {
			t.Errorf("Reason(%d).String() = %q, empty or repeated", int(r), s)
		}
		seen[s] = true
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mail.example.test"},
		DNSNames:     []string{"mail.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
