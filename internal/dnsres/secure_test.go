package dnsres_test

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
)

func TestLookupTLSAAuthenticated(t *testing.T) {
	s := dnstest.New(t)
	hash := strings.Repeat("ab", 32)
	s.Add(t, "_25._tcp.mx.signed.test. TLSA 3 1 1 "+hash, "_25._tcp.mx.plain.test. TLSA 2 0 1 "+hash,
		"signed.test. MX 10 mx.signed.test.", "plain.test. MX 10 mx.plain.test.")
	s.Secure("signed.test")
	r := s.Resolver()
	ctx := t.Context()

	recs, secure, err := r.LookupTLSA(ctx, "_25._tcp.mx.signed.test")
	if err != nil || !secure || len(recs) != 1 || recs[0].Usage != 3 || recs[0].Selector != 1 || recs[0].MatchingType != 1 || len(recs[0].Data) != 32 {
		t.Fatalf("signed TLSA = %v, %v, %v", recs, secure, err)
	}
	if recs, secure, err := r.LookupTLSA(ctx, "_25._tcp.mx.plain.test"); err != nil || secure || len(recs) != 1 || recs[0].Usage != 2 {
		t.Fatalf("unsigned TLSA = %v, %v, %v; want the record, not authenticated", recs, secure, err)
	}
	if _, secure, err := r.LookupTLSA(ctx, "_25._tcp.none.signed.test"); !dnsres.IsNotFound(err) || !secure {
		t.Fatalf("missing TLSA in a signed zone = %v, %v; want an authenticated not-found", secure, err)
	}
	if sec, err := r.MXSecure(ctx, "signed.test"); err != nil || !sec {
		t.Errorf("MXSecure(signed) = %v, %v", sec, err)
	}
	if sec, err := r.MXSecure(ctx, "plain.test"); err != nil || sec {
		t.Errorf("MXSecure(plain) = %v, %v", sec, err)
	}
	// Cached: asking again sends no query.
	n := s.Queries()
	if recs, secure, err := r.LookupTLSA(ctx, "_25._tcp.mx.signed.test"); err != nil || !secure || len(recs) != 1 || len(recs[0].Data) != 32 {
		t.Fatalf("cached TLSA = %v, %v, %v", recs, secure, err)
	}
	if _, err := r.MXSecure(ctx, "signed.test"); err != nil || s.Queries() != n {
		t.Errorf("%d queries for cached answers", s.Queries()-n)
	}
	// SERVFAIL (a bogus signature, to a validating resolver) is an error.
	s.Fail("_25._tcp.mx.bogus.test", dns.TypeTLSA, dns.RcodeServerFailure)
	if _, _, err := r.LookupTLSA(ctx, "_25._tcp.mx.bogus.test"); err == nil || dnsres.IsNotFound(err) {
		t.Errorf("SERVFAIL gave %v; want a temporary error", err)
	}
}
