package config

import "testing"

// MTA_STS_MODE, MTA_STS_MAX_AGE and TLSRPT_RUA: defaults, values and the
// errors for bad ones.
func TestMTASTSSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env     map[string]string
		mode    string
		maxAge  int64
		rua     string
		problem string // setting with an error, "" = none
	}{
		{base(), "testing", 604800, "postmaster", ""},
		{with("MTA_STS_MODE", "Enforce", "MTA_STS_MAX_AGE", "86400", "TLSRPT_RUA", "tls-reports"), "enforce", 86400, "tls-reports", ""},
		{with("MTA_STS_MODE", "none", "TLSRPT_RUA", "none"), "none", 604800, "", ""},
		{with("POSTMASTER", "Admin"), "testing", 604800, "admin", ""},
		{with("MTA_STS_MODE", "strict"), "testing", 604800, "postmaster", "MTA_STS_MODE"},
		{with("MTA_STS_MAX_AGE", "31557601"), "testing", 604800, "postmaster", "MTA_STS_MAX_AGE"},
		{with("MTA_STS_MAX_AGE", "week"), "testing", 604800, "postmaster", "MTA_STS_MAX_AGE"},
		{with("TLSRPT_RUA", "reports@example.com"), "testing", 604800, "postmaster", "TLSRPT_RUA"},
	}
	for _, tt := range tests {
		cfg, probs := Parse(tt.env)
		if cfg.MTASTSMode != tt.mode || cfg.MTASTSMaxAge != tt.maxAge || cfg.TLSRPTRUA != tt.rua {
			t.Errorf("%v: mode %q max_age %d rua %q, want %q %d %q", tt.env, cfg.MTASTSMode, cfg.MTASTSMaxAge, cfg.TLSRPTRUA, tt.mode, tt.maxAge, tt.rua)
		}
		switch {
		case tt.problem == "" && len(probs) != 0:
			t.Errorf("%v: problems %v", tt.env, probs)
		case tt.problem != "" && (len(probs) != 1 || probs[0].Setting != tt.problem || probs[0].Warning):
			t.Errorf("%v: problems %v, want one error for %s", tt.env, probs, tt.problem)
		}
	}
}
