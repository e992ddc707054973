package tlspolicy

import (
	"strings"
	"testing"
)

// RFC 8689 4.2.1: which policies validate an MX host for REQUIRETLS.
func TestHostValidated(t *testing.T) {
	enforce := &Policy{Mode: ModeEnforce, MX: []string{"mx.example"}}
	testing_ := &Policy{Mode: ModeTesting, MX: []string{"mx.example"}}
	other := &Policy{Mode: ModeEnforce, MX: []string{"other.example"}}
	for _, tc := range []struct {
		name string
		h    *Host
		ok   bool
		why  string
	}{
		{"nil", nil, false, "no DANE or MTA-STS"},
		{"opportunistic", &Host{Kind: Opportunistic}, false, "no DANE or MTA-STS"},
		{"dane signed MX", &Host{Kind: DANE, Host: "mx.example", domain: &Domain{MXSecure: true}}, true, "DNSSEC-signed MX"},
		{"dane listed by enforce", &Host{Kind: DANE, Host: "mx.example", domain: &Domain{STS: enforce}}, true, "enforce"},
		{"dane unsigned MX", &Host{Kind: DANE, Host: "mx.example", domain: &Domain{STS: other}}, false, "not DNSSEC-signed"},
		{"dane unsigned, testing", &Host{Kind: DANE, Host: "mx.example", domain: &Domain{STS: testing_}}, false, "not DNSSEC-signed"},
		{"sts enforce", &Host{Kind: STSEnforce, Host: "mx.example", domain: &Domain{STS: enforce}}, true, "enforce mode"},
		{"sts testing", &Host{Kind: STSTesting, Strict: true, Host: "mx.example", domain: &Domain{STS: testing_}}, false, "testing mode"},
		{"encrypt", &Host{Kind: Encrypt, Reason: "OUTBOUND_TLS_LEVEL=encrypt"}, false, "not verified (OUTBOUND_TLS_LEVEL=encrypt)"},
	} {
		ok, why := tc.h.Validated()
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: Validated() = %v, %q; want %v, %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
	for _, tc := range []struct {
		h    *Host
		want bool
	}{
		{&Host{Kind: DANE}, true}, {&Host{Kind: STSEnforce}, true}, {&Host{Kind: STSTesting}, true},
		{&Host{Kind: Encrypt, unusableTLSA: true}, true}, {&Host{Kind: Encrypt}, false}, {&Host{Kind: Opportunistic}, false}, {nil, false},
	} {
		if got := tc.h.RecipientPolicy(); got != tc.want {
			t.Errorf("RecipientPolicy(%+v) = %v, want %v", tc.h, got, tc.want)
		}
	}
	r := Relaxed("mx.example", "DANE: 1 usable TLSA record")
	if r.Kind != Opportunistic || r.RequireTLS() || r.Key() != "may" || !strings.HasPrefix(r.Reason, "TLS-Required: No (RFC 8689 5): DANE") {
		t.Errorf("Relaxed: %+v", r)
	}
}
