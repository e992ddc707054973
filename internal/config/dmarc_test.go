package config

import "testing"

// DMARC_RUA and DMARC_RUF default to POSTMASTER (Mailu's setup writes
// them so) and are local parts at DOMAIN.
func TestDMARCReportAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env      map[string]string
		rua, ruf string
		problem  string // setting with an error, "" = none
	}{
		{base(), "postmaster", "postmaster", ""},
		{with("POSTMASTER", "Admin"), "admin", "admin", ""},
		{with("POSTMASTER", "admin", "DMARC_RUA", "dmarc-reports", "DMARC_RUF", "forensic"), "dmarc-reports", "forensic", ""},
		{with("DMARC_RUA", ""), "postmaster", "postmaster", ""}, // empty = unset, as every setting
		{with("DMARC_RUA", "reports@example.com"), "postmaster", "postmaster", "DMARC_RUA"},
		{with("DMARC_RUF", "a,b"), "postmaster", "postmaster", "DMARC_RUF"},
		{with("DMARC_RUF", "a!10m"), "postmaster", "postmaster", "DMARC_RUF"},
	}
	for _, tt := range tests {
		cfg, probs := Parse(tt.env)
		if cfg.DMARCRUA != tt.rua || cfg.DMARCRUF != tt.ruf {
			t.Errorf("%v: rua %q ruf %q, want %q %q", tt.env, cfg.DMARCRUA, cfg.DMARCRUF, tt.rua, tt.ruf)
		}
		switch {
		case tt.problem == "" && len(probs) != 0:
			t.Errorf("%v: problems %v", tt.env, probs)
		case tt.problem != "" && (len(probs) != 1 || probs[0].Setting != tt.problem || probs[0].Warning):
			t.Errorf("%v: problems %v, want one error for %s", tt.env, probs, tt.problem)
		}
	}
}
