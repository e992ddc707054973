package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFilterSettings(t *testing.T) {
	t.Parallel()
	cfg, probs := Parse(with("ANTISPAM_ADDRESS", "rspamd.internal", "ANTIVIRUS", "ClamAV", "ANTIVIRUS_ADDRESS", "10.0.0.5:3310",
		"SCAN_MACROS", "true", "GREYLISTING", "true", "GREYLISTING_DELAY", "2m", "DNSBL_ZONES", "zen.spamhaus.org, bl.example.net.",
		"SPAM_CLASSIFIER", "false", "ANTISPAM_PASSWORD", "s3cret"))
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	f := cfg.Filter
	if f.AntispamAddress != "rspamd.internal" || f.Antivirus != "clamav" || f.AntivirusAddress != "10.0.0.5:3310" || !f.ScanMacros ||
		!f.Greylisting || f.GreylistingDelay != 2*time.Minute || !slices.Equal(f.DNSBLZones, []string{"zen.spamhaus.org", "bl.example.net"}) ||
		f.SpamClassifier || f.AntispamPassword != "s3cret" {
		t.Errorf("filter = %+v", f)
	}
	def, probs := Parse(with())
	if len(probs) != 0 || def.Filter.AntispamAddress != "" || def.Filter.Antivirus != "none" || def.Filter.Greylisting ||
		!def.Filter.SpamClassifier || def.Filter.AntispamPassword != "mailu" || def.Filter.GreylistingDelay != 5*time.Minute {
		t.Errorf("defaults = %+v, %v", def.Filter, probs)
	}
	for _, bad := range []map[string]string{
		with("ANTIVIRUS", "sophos"), with("ANTISPAM_ADDRESS", "http://x/"), with("DNSBL_ZONES", "127.0.0.2 x"),
		with("ANTIVIRUS_ACTION", "drop"), with("GREYLISTING_DELAY", "soon"),
	} {
		_, probs := Parse(bad)
		if len(probs) == 0 {
			t.Errorf("%v: no problem reported", bad)
		}
	}
	_, probs = Parse(with("ANTISPAM_PASSWORD", "hunter2", "ANTISPAM_ADDRESS", "a b"))
	for _, p := range probs {
		if strings.Contains(p.String(), "hunter2") {
			t.Errorf("secret in %q", p)
		}
	}
}
