package tlspolicy_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/tlspolicy"
	"github.com/petrelmail/petrel/internal/tlspolicy/tlspolicytest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// The MTA-STS cache (RFC 8461 5.1): reused while valid and the TXT id is
// unchanged, refetched when the id changes or it expires, kept when a
// refresh fails or the TXT record goes away.
func TestMTASTSCache(t *testing.T) {
	dns := dnstest.New(t)
	ca := tlspolicytest.NewCA(t, "CA")
	ps := tlspolicytest.NewPolicyServer(t, ca.Issue(t, "mta-sts.cache.test"),
		"version: STSv1\nmode: enforce\nmx: mx1.cache.test\nmax_age: 3600\n")
	st := tlspolicytest.NewMemStore()
	clk := &clock{t: time.Now()}
	newChecker := func() *tlspolicy.Checker {
		// A fresh resolver each time, so that no DNS answer is cached.
		return tlspolicy.New(tlspolicy.Options{Resolver: dns.Resolver(), Store: st, RootCAs: ca.Pool(), Dial: ps.Dial, Now: clk.now})
	}
	dns.Add(t, `_mta-sts.cache.test. TXT "v=STSv1; id=one"`)
	mx := func(c *tlspolicy.Checker) string {
		d := c.ForDomain(t.Context(), "cache.test")
		if d.STS == nil {
			return "none"
		}
		return strings.Join(d.STS.MX, ",")
	}
	if got := mx(newChecker()); got != "mx1.cache.test" || ps.Hits() != 1 {
		t.Fatalf("first look-up: %s after %d fetches", got, ps.Hits())
	}
	ps.Set("version: STSv1\nmode: enforce\nmx: mx2.cache.test\nmax_age: 3600\n", "text/plain")
	if got := mx(newChecker()); got != "mx1.cache.test" || ps.Hits() != 1 {
		t.Fatalf("same id: %s after %d fetches; want the cached policy", got, ps.Hits())
	}
	// Another node (a new checker on the same store) shares the cache.
	dns2 := dnstest.New(t)
	dns2.Add(t, `_mta-sts.cache.test. TXT "v=STSv1; id=two"`)
	c2 := tlspolicy.New(tlspolicy.Options{Resolver: dns2.Resolver(), Store: st, RootCAs: ca.Pool(), Dial: ps.Dial, Now: clk.now})
	if got := mx(c2); got != "mx2.cache.test" || ps.Hits() != 2 {
		t.Fatalf("new id: %s after %d fetches; want a refetch", got, ps.Hits())
	}
	// The policy server breaks: the cached policy holds while valid.
	ps.Set("<html>oops</html>", "text/html")
	dns2b := dnstest.New(t)
	dns2b.Add(t, `_mta-sts.cache.test. TXT "v=STSv1; id=three"`)
	c3 := tlspolicy.New(tlspolicy.Options{Resolver: dns2b.Resolver(), Store: st, RootCAs: ca.Pool(), Dial: ps.Dial, Now: clk.now})
	if got := mx(c3); got != "mx2.cache.test" {
		t.Fatalf("failed refresh: %s; want the cached policy", got)
	}
	// No TXT record any more: still the cached policy until it expires.
	empty := dnstest.New(t)
	c4 := tlspolicy.New(tlspolicy.Options{Resolver: empty.Resolver(), Store: st, RootCAs: ca.Pool(), Dial: ps.Dial, Now: clk.now})
	if got := mx(c4); got != "mx2.cache.test" {
		t.Fatalf("record gone: %s; want the cached policy", got)
	}
	clk.add(2 * time.Hour)
	if got := mx(c4); got != "none" {
		t.Fatalf("record gone, cache expired: %s; want none", got)
	}
}

// A policy behind a certificate the sender cannot verify is not used,
// and the failure is counted for TLS-RPT as sts-webpki-invalid.
func TestMTASTSUntrustedPolicyHost(t *testing.T) {
	dns := dnstest.New(t)
	ca := tlspolicytest.NewCA(t, "CA")
	other := tlspolicytest.NewCA(t, "Other")
	ps := tlspolicytest.NewPolicyServer(t, other.Issue(t, "mta-sts.bad.test"), "version: STSv1\nmode: enforce\nmx: mx.bad.test\nmax_age: 60\n")
	dns.Add(t, `_mta-sts.bad.test. TXT "v=STSv1; id=1"`)
	st := tlspolicytest.NewMemStore()
	c := tlspolicy.New(tlspolicy.Options{Resolver: dns.Resolver(), Store: st, RootCAs: ca.Pool(), Dial: ps.Dial})
	if d := c.ForDomain(t.Context(), "bad.test"); d.STS != nil {
		t.Fatalf("policy from an untrusted host used: %+v", d.STS)
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !st.Has("bad.test sts sts-webpki-invalid=1") {
		t.Errorf("results %v", st.Results())
	}
}

// A policy server that fails is asked again only after FetchRetry (or
// when the record's id changes), not on every delivery.
func TestMTASTSFailedFetchNotRepeated(t *testing.T) {
	dns := dnstest.New(t)
	ca := tlspolicytest.NewCA(t, "CA")
	ps := tlspolicytest.NewPolicyServer(t, ca.Issue(t, "mta-sts.down.test"), "not a policy")
	dns.Add(t, `_mta-sts.down.test. TXT "v=STSv1; id=1"`)
	clk := &clock{t: time.Now()}
	c := tlspolicy.New(tlspolicy.Options{Resolver: dns.Resolver(), RootCAs: ca.Pool(), Dial: ps.Dial, Now: clk.now})
	for i := 0; i < 3; i++ {
		if d := c.ForDomain(t.Context(), "down.test"); d.STS != nil {
			t.Fatal("malformed policy used")
		}
	}
	if ps.Hits() != 1 {
		t.Fatalf("%d fetches, want 1", ps.Hits())
	}
	ps.Set("version: STSv1\nmode: enforce\nmx: mx.down.test\nmax_age: 600\n", "text/plain")
	clk.add(tlspolicy.FetchRetry + time.Second)
	if d := c.ForDomain(t.Context(), "down.test"); d.STS == nil || ps.Hits() != 2 {
		t.Fatalf("after FetchRetry: policy %v after %d fetches", d.STS, ps.Hits())
	}
}
