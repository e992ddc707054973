package dnsres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestLookups(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(t,
		"example.test. MX 10 mx1.example.test.",
		"example.test. MX 20 mx2.example.test.",
		"example.test. TXT \"v=spf1 -all\"",
		"mx1.example.test. A 127.0.0.1",
		"mx1.example.test. AAAA ::1",
		"alias.example.test. CNAME mx1.example.test.",
		"null.test. MX 0 .",
		"7.2.0.192.in-addr.arpa. PTR mx1.example.test.",
	)
	r := srv.Resolver()
	c := ctx(t)

	mxs, err := r.LookupMX(c, "example.test")
	if err != nil {
		t.Fatalf("LookupMX: %v", err)
	}
	var got []string
	for _, mx := range mxs {
		got = append(got, mx.Host)
	}
	sort.Strings(got)
	if want := []string{"mx1.example.test", "mx2.example.test"}; !slices.Equal(got, want) {
		t.Errorf("MX hosts = %v, want %v (no final dot)", got, want)
	}

	null, err := r.LookupMX(c, "null.test")
	if err != nil || len(null) != 1 || null[0].Host != "." {
		t.Errorf("null MX = %v, %v; want one record with host \".\"", null, err)
	}

	ips, err := r.LookupIPAddr(c, "mx1.example.test")
	if err != nil || len(ips) != 2 {
		t.Errorf("LookupIPAddr = %v, %v; want 127.0.0.1 and ::1", ips, err)
	}
	ips, err = r.LookupIPAddr(c, "alias.example.test")
	if err != nil || len(ips) == 0 {
		t.Errorf("LookupIPAddr through CNAME = %v, %v", ips, err)
	}
	ips, err = r.LookupIPAddr(c, "192.0.2.7")
	if err != nil || len(ips) != 1 || !ips[0].IP.Equal(net.ParseIP("192.0.2.7")) {
		t.Errorf("IP literal = %v, %v", ips, err)
	}

	hosts, err := r.LookupHost(c, "mx1.example.test")
	sort.Strings(hosts)
	if err != nil || !slices.Equal(hosts, []string{"127.0.0.1", "::1"}) {
		t.Errorf("LookupHost = %v, %v", hosts, err)
	}

	txt, err := r.LookupTXT(c, "example.test")
	if err != nil || !slices.Equal(txt, []string{"v=spf1 -all"}) {
		t.Errorf("LookupTXT = %q, %v", txt, err)
	}

	names, err := r.LookupAddr(c, "192.0.2.7")
	if err != nil || !slices.Equal(names, []string{"mx1.example.test"}) {
		t.Errorf("LookupAddr = %q, %v", names, err)
	}
}

func TestErrorKinds(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(t, "nodata.test. A 127.0.0.1")
	srv.Fail("servfail.test", 0, dns.RcodeServerFailure)
	srv.Fail("refused.test", dns.TypeMX, dns.RcodeRefused)
	r := srv.Resolver()
	c := ctx(t)

	tests := []struct {
		name     string
		lookup   func() error
		notFound bool
	}{
		{"NXDOMAIN", func() error { _, err := r.LookupMX(c, "nxdomain.test"); return err }, true},
		{"NODATA", func() error { _, err := r.LookupMX(c, "nodata.test"); return err }, true},
		{"NXDOMAIN address", func() error { _, err := r.LookupIPAddr(c, "nxdomain.test"); return err }, true},
		{"SERVFAIL", func() error { _, err := r.LookupMX(c, "servfail.test"); return err }, false},
		{"SERVFAIL address", func() error { _, err := r.LookupIPAddr(c, "servfail.test"); return err }, false},
		{"REFUSED", func() error { _, err := r.LookupMX(c, "refused.test"); return err }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lookup()
			if err == nil {
				t.Fatal("lookup succeeded, want an error")
			}
			if got := dnsres.IsNotFound(err); got != tt.notFound {
				t.Errorf("IsNotFound(%v) = %v, want %v", err, got, tt.notFound)
			}
			if got := dnsres.IsTemporary(err); got == tt.notFound {
				t.Errorf("IsTemporary(%v) = %v, want %v", err, got, !tt.notFound)
			}
		})
	}
}

// A server that is not there is a temporary failure, never "not found".
func TestUnreachableServerIsTemporary(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = dnsres.New(addr).LookupMX(c, "example.test")
	if err == nil || !dnsres.IsTemporary(err) || dnsres.IsNotFound(err) {
		t.Errorf("closed port: err = %v, want a temporary error", err)
	}
}

func TestLargeTXTOverEDNSOrTCP(t *testing.T) {
	srv := dnstest.New(t)
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	// Three 250-byte strings: more than 512 bytes, so EDNS0 or TCP is needed.
	srv.Add(t, `big.test. TXT "`+string(long)+`" "`+string(long)+`" "`+string(long)+`"`)
	txt, err := srv.Resolver().LookupTXT(ctx(t), "big.test")
	if err != nil || len(txt) != 1 || len(txt[0]) != 750 {
		t.Errorf("LookupTXT = %d records, %v; want one of 750 bytes", len(txt), err)
	}
}

func TestNilErrorsAreNeither(t *testing.T) {
	if dnsres.IsNotFound(nil) || dnsres.IsTemporary(nil) || dnsres.IsTimeout(nil) {
		t.Error("nil error classified as a failure")
	}
	if !dnsres.IsTimeout(&net.DNSError{IsTimeout: true}) {
		t.Error("IsTimeout missed a timeout")
	}
}

// A server that never answers is a timeout: temporary.
func TestSilentServerTimesOut(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // reads nothing, answers nothing
	c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = dnsres.New(pc.LocalAddr().String()).LookupMX(c, "example.test")
	if !dnsres.IsTimeout(err) || !dnsres.IsTemporary(err) || dnsres.IsNotFound(err) {
		t.Errorf("silent server: err = %v; want a temporary timeout", err)
	}
}

// The reverse look-ups a client's connection makes are cached: a client
// reconnecting for every message is looked up once. Not-found answers are
// cached too; SERVFAIL is asked again.
func TestReverseLookupsCached(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(t,
		"7.2.0.192.in-addr.arpa. PTR mx1.example.test.",
		"mx1.example.test. A 192.0.2.7",
	)
	srv.Fail("8.2.0.192.in-addr.arpa", dns.TypePTR, dns.RcodeServerFailure)
	r := srv.Resolver()
	c := ctx(t)

	lookup := func() {
		names, err := r.LookupAddr(c, "192.0.2.7")
		if err != nil || !slices.Equal(names, []string{"mx1.example.test"}) {
			t.Fatalf("LookupAddr = %q, %v", names, err)
		}
		addrs, err := r.LookupHost(c, names[0])
		if err != nil || !slices.Equal(addrs, []string{"192.0.2.7"}) {
			t.Fatalf("LookupHost = %q, %v", addrs, err)
		}
	}
	lookup()
	first := srv.Queries()
	if first == 0 {
		t.Fatal("the server saw no query")
	}
	for range 5 {
		lookup()
	}
	if n := srv.Queries(); n != first {
		t.Errorf("%d queries after 6 connections' look-ups, want %d (cached)", n, first)
	}
	// The same address written as IPv4-mapped IPv6 is the same entry.
	if names, err := r.LookupAddr(c, "::ffff:192.0.2.7"); err != nil || len(names) != 1 {
		t.Errorf("LookupAddr(mapped) = %q, %v", names, err)
	}
	if n := srv.Queries(); n != first {
		t.Errorf("mapped address queried again (%d queries, want %d)", n, first)
	}

	// No PTR: cached as not found.
	for range 3 {
		if _, err := r.LookupAddr(c, "192.0.2.9"); !dnsres.IsNotFound(err) {
			t.Fatalf("LookupAddr(no PTR) = %v, want not found", err)
		}
	}
	afterMiss := srv.Queries()
	if afterMiss == first {
		t.Fatal("the missing PTR was never asked")
	}
	if _, err := r.LookupAddr(c, "192.0.2.9"); !dnsres.IsNotFound(err) || srv.Queries() != afterMiss {
		t.Errorf("not-found PTR asked again: err %v, %d queries, want %d", err, srv.Queries(), afterMiss)
	}

	// SERVFAIL: a temporary failure, not cached.
	if _, err := r.LookupAddr(c, "192.0.2.8"); !dnsres.IsTemporary(err) {
		t.Fatalf("LookupAddr(SERVFAIL) = %v, want temporary", err)
	}
	before := srv.Queries()
	if _, err := r.LookupAddr(c, "192.0.2.8"); !dnsres.IsTemporary(err) {
		t.Fatalf("LookupAddr(SERVFAIL) again = %v", err)
	}
	if srv.Queries() == before {
		t.Error("a SERVFAIL answer was cached")
	}
}

func TestTXTCached(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(t, `_dmarc.sender.test. TXT "v=DMARC1; p=reject"`)
	srv.Fail("_dmarc.flaky.test.", dns.TypeTXT, dns.RcodeServerFailure)
	r := srv.Resolver()
	c := ctx(t)
	for range 3 {
		txts, err := r.LookupTXT(c, "_dmarc.Sender.test.")
		if err != nil || !slices.Equal(txts, []string{"v=DMARC1; p=reject"}) {
			t.Fatalf("LookupTXT = %q, %v", txts, err)
		}
		if _, err := r.LookupTXT(c, "_dmarc.none.test"); !dnsres.IsNotFound(err) {
			t.Fatalf("LookupTXT(missing) = %v", err)
		}
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d queries for 3 rounds of 2 names, want 2 (cached)", n)
	}
	before := srv.Queries()
	for range 2 {
		if _, err := r.LookupTXT(c, "_dmarc.flaky.test"); !dnsres.IsTemporary(err) {
			t.Fatalf("LookupTXT(SERVFAIL) = %v", err)
		}
		if n := srv.Queries(); n == before {
			t.Fatal("a SERVFAIL answer was cached")
		} else {
			before = n
		}
	}
}

// TestAsDNSError: a *net.DNSError is found as itself and wrapped; other
// errors and nil are not one.
func TestAsDNSError(t *testing.T) {
	de := &net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{de, true},
		{fmt.Errorf("look-up: %w", de), true},
		{errors.New("other"), false},
		{nil, false},
	} {
		got, ok := dnsres.AsDNSError(c.err)
		if ok != c.want || (ok && got != de) {
			t.Errorf("AsDNSError(%v) = %v, %v", c.err, got, ok)
		}
		if dnsres.IsNotFound(c.err) != c.want {
			t.Errorf("IsNotFound(%v) = %v", c.err, !c.want)
		}
	}
}
