package tlspolicy_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/tlspolicy"
	"github.com/petrelmail/petrel/internal/tlspolicy/tlspolicytest"
)

func state(cfg *tls.Config) tls.ConnectionState {
	var certs []*x509.Certificate
	for _, der := range cfg.Certificates[0].Certificate {
		c, _ := x509.ParseCertificate(der)
		certs = append(certs, c)
	}
	return tls.ConnectionState{PeerCertificates: certs}
}

func rec(usage, sel, mt uint8, c *x509.Certificate) dnsres.TLSA {
	data := c.Raw
	if sel == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	switch mt {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return dnsres.TLSA{Usage: usage, Selector: sel, MatchingType: mt, Data: data}
}

func TestVerifyDANE(t *testing.T) {
	ca := tlspolicytest.NewCA(t, "CA")
	other := tlspolicytest.NewCA(t, "Other CA")
	srv := ca.Issue(t, "mx.example.test")
	cs := state(srv)
	leaf := cs.PeerCertificates[0]
	expired := state(ca.IssueValid(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "mx.example.test"))
	now := time.Now()
	names := []string{"mx.example.test", "example.test"}
	for _, tc := range []struct {
		name  string
		recs  []dnsres.TLSA
		cs    tls.ConnectionState
		names []string
		ok    bool
	}{
		{"EE spki sha256", []dnsres.TLSA{rec(3, 1, 1, leaf)}, cs, names, true},
		{"EE cert sha512", []dnsres.TLSA{rec(3, 0, 2, leaf)}, cs, names, true},
		{"EE full", []dnsres.TLSA{rec(3, 0, 0, leaf)}, cs, names, true},
		{"EE ignores names", []dnsres.TLSA{rec(3, 1, 1, leaf)}, cs, []string{"other.test"}, true},
		{"EE expired ok", []dnsres.TLSA{rec(3, 1, 1, expired.PeerCertificates[0])}, expired, names, true},
		{"EE mismatch", []dnsres.TLSA{rec(3, 1, 1, ca.Cert)}, cs, names, false},
		{"TA", []dnsres.TLSA{rec(2, 0, 1, ca.Cert)}, cs, names, true},
		{"TA spki", []dnsres.TLSA{rec(2, 1, 1, ca.Cert)}, cs, names, true},
		{"TA second name", []dnsres.TLSA{rec(2, 1, 1, ca.Cert)}, cs, []string{"x.test", "mx.example.test"}, true},
		{"TA wrong name", []dnsres.TLSA{rec(2, 1, 1, ca.Cert)}, cs, []string{"other.test"}, false},
		{"TA expired leaf", []dnsres.TLSA{rec(2, 1, 1, ca.Cert)}, expired, names, false},
		{"TA other CA", []dnsres.TLSA{rec(2, 1, 1, other.Cert)}, cs, names, false},
		{"TA names the leaf", []dnsres.TLSA{rec(2, 1, 1, leaf)}, cs, names, false},
		{"PKIX-EE unusable", []dnsres.TLSA{rec(1, 1, 1, leaf)}, cs, names, false},
		{"one of several", []dnsres.TLSA{rec(3, 1, 1, ca.Cert), rec(1, 1, 1, leaf), rec(3, 1, 2, leaf)}, cs, names, true},
		{"bad length", []dnsres.TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2}}}, cs, names, false},
		{"no certificate", []dnsres.TLSA{rec(3, 1, 1, leaf)}, tls.ConnectionState{}, names, false},
	} {
		err := tlspolicy.VerifyDANE(tc.recs, tc.cs, tc.names, now)
		if (err == nil) != tc.ok {
			t.Errorf("%s: VerifyDANE = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
	if err := tlspolicy.VerifyDANE([]dnsres.TLSA{rec(3, 1, 1, ca.Cert)}, cs, names, now); !errors.Is(err, tlspolicy.ErrDANEMismatch) {
		t.Errorf("mismatch error %v is not ErrDANEMismatch", err)
	}
}

// FuzzVerifyDANE feeds arbitrary TLSA records: never a panic, and a
// record matches only what it should.
func FuzzVerifyDANE(f *testing.F) {
	ca := tlspolicytest.NewCA(f, "CA")
	cs := state(ca.Issue(f, "mx.example.test"))
	good := rec(3, 1, 1, cs.PeerCertificates[0])
	f.Add(good.Usage, good.Selector, good.MatchingType, good.Data)
	f.Add(uint8(2), uint8(0), uint8(0), ca.Cert.Raw)
	f.Fuzz(func(t *testing.T, u, s, m uint8, data []byte) {
		r := dnsres.TLSA{Usage: u, Selector: s, MatchingType: m, Data: data}
		err := tlspolicy.VerifyDANE([]dnsres.TLSA{r}, cs, []string{"mx.example.test"}, time.Now())
		if err == nil && !tlspolicy.Usable(r) {
			t.Fatalf("unusable record %v matched", r)
		}
	})
}
