package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func testZone(t *testing.T) *zone {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts")
	hosts := "# comment\n127.0.0.1 localhost Runsc\n::1 localhost ip6-localhost\n10.0.0.5 mx.example.test. # trailing\nbad line\n"
	if err := os.WriteFile(p, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	z, err := readHosts(p)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestReadHosts(t *testing.T) {
	z := testZone(t)
	if got := z.byName["runsc."]; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("127.0.0.1")}) {
		t.Errorf("runsc. = %v", got)
	}
	if got := len(z.byName["localhost."]); got != 2 {
		t.Errorf("localhost. has %d addresses, want 2", got)
	}
	if got := z.byAddr[netip.MustParseAddr("10.0.0.5")]; !slices.Equal(got, []string{"mx.example.test."}) {
		t.Errorf("PTR 10.0.0.5 = %v", got)
	}
}

// The standard resolver, pointed at the server, gets answers from the
// hosts file and NXDOMAIN for anything else.
func TestDNSServer(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(p, []byte("127.0.0.1 localhost bench-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDNS(ctx, []string{"-listen", addr, "-hosts", p}, &nopWriter{}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	var got []string
	for range 50 { // the server may not be listening yet
		if got, err = r.LookupHost(lctx, "bench-host."); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Fatalf("LookupHost(bench-host.) = %v, %v", got, err)
	}
	names, err := r.LookupAddr(lctx, "127.0.0.1")
	if err != nil || len(names) == 0 {
		t.Fatalf("LookupAddr = %v, %v", names, err)
	}
	_, err = r.LookupHost(lctx, "nosuch.example.")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("nosuch.example.: %v, want not found", err)
	}
}

type nopWriter struct{}

func (*nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestPTRAddr(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"1.0.0.127.in-addr.arpa.", "127.0.0.1", true},
		{"5.0.0.10.in-addr.arpa.", "10.0.0.5", true},
		{"0.0.127.in-addr.arpa.", "", false},
		{"1.0.0.127.ip6.arpa.", "", false},
		{"x.0.0.127.in-addr.arpa.", "", false},
	} {
		ip, ok := ptrAddr(c.in)
		if ok != c.ok || (ok && ip.String() != c.want) {
			t.Errorf("ptrAddr(%q) = %v, %v; want %s, %v", c.in, ip, ok, c.want, c.ok)
		}
	}
}

// FuzzAnswer: any packet either gets no reply or a reply that parses and
// carries the query's ID.
func FuzzAnswer(f *testing.F) {
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("localhost."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	pkt, err := q.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pkt)
	f.Add([]byte{0, 1, 2})
	z := &zone{
		byName: map[string][]netip.Addr{"localhost.": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}},
		byAddr: map[netip.Addr][]string{netip.MustParseAddr("127.0.0.1"): {"localhost."}},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := z.answer(in)
		if !ok {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(in)
		if err != nil {
			t.Fatalf("answered a packet that does not parse: %v", err)
		}
		if m.Header.ID != h.ID || !m.Header.Response {
			t.Fatalf("reply header %+v for query id %d", m.Header, h.ID)
		}
	})
}
