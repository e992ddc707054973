package config

import (
	"net"
	"strings"
	"time"
)

// Filter is the inbound checks' configuration (internal/filter).
type Filter struct {
	AntispamAddress    string        // ANTISPAM_ADDRESS: rspamd host[:port] (11333); "" = built-in checks
	AntispamController string        // ANTISPAM_CONTROLLER_ADDRESS: host[:port] (11334); "" = ANTISPAM_ADDRESS's host
	AntispamPassword   string        // ANTISPAM_PASSWORD: controller password (Mailu's is "mailu")
	Antivirus          string        // ANTIVIRUS: "none" or "clamav"
	AntivirusAddress   string        // ANTIVIRUS_ADDRESS: clamd host[:port] (3310) or a Unix socket path
	AntivirusAction    string        // ANTIVIRUS_ACTION: "discard" or "reject" (both reject, see the doc)
	ScanMacros         bool          // SCAN_MACROS
	Greylisting        bool          // GREYLISTING (Petrel only; built-in path)
	GreylistingDelay   time.Duration // GREYLISTING_DELAY (Petrel only), default 5m
	DNSBLZones         []string      // DNSBL_ZONES (Petrel only)
	SpamClassifier     bool          // SPAM_CLASSIFIER (Petrel only), default true
}

func filterSettingDocs() []SettingDoc {
	s := func(name, def, meaning, differs string) SettingDoc {
		return SettingDoc{Name: name, Default: def, Meaning: meaning, Differs: differs, Implemented: true}
	}
	return []SettingDoc{
		s("ANTISPAM_ADDRESS", "", "rspamd host[:port] answering HTTP /checkv2 (normal worker, port 11333); empty = Petrel's built-in checks",
			"Mailu's default 'antispam' (milter proxy on 11332) is not assumed: Petrel speaks rspamd's HTTP protocol"),
		s("ANTISPAM_CONTROLLER_ADDRESS", "ANTISPAM_ADDRESS host:11334", "rspamd controller for learning from Junk moves", "Petrel only (Mailu: antispam:11334)"),
		{Name: "ANTISPAM_PASSWORD", Default: "mailu", Meaning: "rspamd controller password", Differs: "Petrel only (Mailu hard-codes mailu)", Implemented: true, Secret: true},
		s("ANTIVIRUS", "none", "virus scanning: none or clamav", ""),
		s("ANTIVIRUS_ADDRESS", "127.0.0.1:3310", "clamd host[:port] (or a Unix socket path) for INSTREAM scans", "default 127.0.0.1 instead of the antivirus container"),
		s("ANTIVIRUS_ACTION", "discard", "discard or reject infected mail", "infected mail is always refused with 554 5.7.1, as Mailu's force_actions does for both values"),
		s("SCAN_MACROS", "false", "refuse Office documents with VBA macros (OOXML vbaProject.bin, OLE2 VBA/Macros storages)", "built in; no oletools container"),
		s("GREYLISTING", "false", "greylist unknown (client /19 or /64, sender, recipient) triplets without rspamd; SPF or DMARC passing senders with a low score skip it", "Petrel only (Mailu: rspamd's greylist module)"),
		s("GREYLISTING_DELAY", "5m", "how long a new triplet must wait before a retry passes; passed triplets stay allowed 35 days", "Petrel only"),
		s("DNSBL_ZONES", "", "comma list of DNSBL zones for the built-in score (e.g. zen.spamhaus.org); 4 points per listing", "Petrel only"),
		s("SPAM_CLASSIFIER", "true", "per-user Bayesian classifier trained by the user's Junk moves (built-in score)", "Petrel only (Mailu: rspamd's global Bayes)"),
	}
}

func (r *reader) filter(cfg *Config) {
	f := &cfg.Filter
	if v, ok := r.get("ANTISPAM_ADDRESS"); ok {
		if hostPortOK(v) {
			f.AntispamAddress = v
		} else {
			r.errorf("ANTISPAM_ADDRESS", v, "give rspamd's host or host:port, e.g. 127.0.0.1:11333", "not a host[:port]")
		}
	}
	if v, ok := r.get("ANTISPAM_CONTROLLER_ADDRESS"); ok {
		if hostPortOK(v) {
			f.AntispamController = v
		} else {
			r.errorf("ANTISPAM_CONTROLLER_ADDRESS", v, "give the controller's host or host:port, e.g. 127.0.0.1:11334", "not a host[:port]")
		}
	}
	f.AntispamPassword = "mailu"
	if v, ok := r.getRaw("ANTISPAM_PASSWORD"); ok {
		f.AntispamPassword = v
	}
	f.Antivirus = strings.ToLower(r.str("ANTIVIRUS", "none"))
	switch f.Antivirus {
	case "none", "clamav":
	default:
		r.errorf("ANTIVIRUS", f.Antivirus, "use none or clamav", "unknown antivirus")
		f.Antivirus = "none"
	}
	f.AntivirusAddress = r.str("ANTIVIRUS_ADDRESS", "127.0.0.1:3310")
	if !strings.HasPrefix(f.AntivirusAddress, "/") && !hostPortOK(f.AntivirusAddress) {
		r.errorf("ANTIVIRUS_ADDRESS", f.AntivirusAddress, "give clamd's host[:port] or a socket path, e.g. 127.0.0.1:3310", "not a host[:port]")
		f.AntivirusAddress = "127.0.0.1:3310"
	}
	f.AntivirusAction = strings.ToLower(r.str("ANTIVIRUS_ACTION", "discard"))
	switch f.AntivirusAction {
	case "discard", "reject":
	default:
		r.errorf("ANTIVIRUS_ACTION", f.AntivirusAction, "use discard or reject", "unknown action")
		f.AntivirusAction = "discard"
	}
	f.ScanMacros = r.boolean("SCAN_MACROS", false)
	f.Greylisting = r.boolean("GREYLISTING", false)
	f.GreylistingDelay = r.duration("GREYLISTING_DELAY", 5*time.Minute, time.Second, "give a duration such as 5m")
	for _, z := range splitList(r.str("DNSBL_ZONES", "")) {
		z = strings.TrimSuffix(strings.ToLower(z), ".")
		if z == "" || strings.ContainsAny(z, " /:@") || !strings.Contains(z, ".") {
			r.errorf("DNSBL_ZONES", z, "give DNS zones such as zen.spamhaus.org", "not a DNS zone")
			continue
		}
		f.DNSBLZones = append(f.DNSBLZones, z)
	}
	f.SpamClassifier = r.boolean("SPAM_CLASSIFIER", true)
}

// hostPortOK accepts host, host:port and [v6]:port.
func hostPortOK(v string) bool {
	if v == "" || strings.ContainsAny(v, " /") {
		return false
	}
	if h, p, err := net.SplitHostPort(v); err == nil {
		return h != "" && p != "" && strings.Trim(p, "0123456789") == ""
	}
	return !strings.Contains(strings.Trim(v, "[]"), "]")
}
