package config

import (
	"fmt"
	"strings"
)

// notImplemented is a Mailu setting Petrel reads only to warn about it.
type notImplemented struct {
	Name    string
	Default string   // Mailu's default (inventory 6); this value and Quiet are not warned about
	Quiet   []string // other values that need no warning; "$POSTMASTER" stands for POSTMASTER's value
	Bool    bool     // compare as a Mailu boolean
	Meaning string   // what it does in Mailu
	Note    string   // the warning: what Petrel does instead
	Fix     string   // optional; default "remove NAME or set it to DEFAULT"
}

// notImplementedSettings is the table of Mailu settings Petrel does not
// implement yet. Parse warns (never errs) when one is set to anything other
// than its Mailu default; Known documents them. Defaults are Mailu's code
// default where the setting switches a feature on, so a value that asks for
// a missing feature is always reported.
func notImplementedSettings() []notImplemented {
	const oneProcess = "is not needed: Petrel runs as one process"
	return []notImplemented{
		{Name: "SUBNET", Default: "192.168.203.0/24", Meaning: "docker network, trusted for relaying and XCLIENT",
			Note: "SUBNET is not needed: Petrel runs as one process; use RELAYNETS to trust networks",
			Fix:  "remove SUBNET and list the networks that may relay in RELAYNETS"},
		{Name: "SUBNET6", Meaning: "IPv6 docker network",
			Note: "SUBNET6 is not needed: Petrel runs as one process; use RELAYNETS to trust networks",
			Fix:  "remove SUBNET6 and list the networks that may relay in RELAYNETS"},
		{Name: "WEBMAIL", Default: "none", Meaning: "webmail: roundcube, snappymail or none", Note: "Petrel has no webmail"},
		{Name: "WEB_WEBMAIL", Default: "/webmail", Meaning: "path of the webmail", Note: "Petrel has no webmail"},
		{Name: "WEBDAV", Default: "none", Meaning: "radicale CalDAV/CardDAV", Note: "Petrel has no WebDAV/CalDAV server"},
		{Name: "COMPRESSION", Meaning: "maildir compression: gz, bz2 or zstd", Note: "Petrel stores messages uncompressed"},
		{Name: "COMPRESSION_LEVEL", Meaning: "compression level 1-9", Note: "Petrel stores messages uncompressed"},
		{Name: "RECAPTCHA_PUBLIC_KEY", Meaning: "captcha for self-signup", Note: "Petrel has no self-signup"},
		{Name: "RECAPTCHA_PRIVATE_KEY", Meaning: "captcha secret for self-signup", Note: "Petrel has no self-signup"},
		{Name: "DOMAIN_REGISTRATION", Default: "false", Bool: true, Meaning: "let users register domains", Note: "Petrel has no self-signup"},
		{Name: "PROXY_AUTH_WHITELIST", Meaning: "proxies allowed to log users in by header", Note: "Petrel has no header login"},
		{Name: "PROXY_AUTH_HEADER", Default: "X-Auth-Email", Meaning: "header naming the user", Note: "Petrel has no header login"},
		{Name: "PROXY_AUTH_CREATE", Default: "false", Bool: true, Meaning: "create users on header login", Note: "Petrel has no header login"},
		{Name: "PROXY_AUTH_LOGOUT_URL", Meaning: "logout URL for header login", Note: "Petrel has no header login"},
		{Name: "DISABLE_STATISTICS", Default: "true", Bool: true, Meaning: "opt out of Mailu's anonymous usage statistics (template: true)",
			Note: "Petrel never sends usage statistics"},
		{Name: "TZ", Default: "Etc/UTC", Quiet: []string{"UTC"}, Meaning: "container time zone",
			Note: "Petrel takes TZ from the process environment only (Go reads it at start), not from an env file"},
		{Name: "ROUNDCUBE_PLUGINS", Default: "archive,carddav,enigma,mailu,managesieve,markasjunk,zipdownload",
			Meaning: "Roundcube plugins", Note: "Petrel has no webmail"},
		{Name: "SQLALCHEMY_DATABASE_URI_ROUNDCUBE", Meaning: "Roundcube database", Note: "Petrel has no webmail"},
		{Name: "DMARC_SEND_REPORTS", Default: "false", Bool: true, Meaning: "[Mailu master] send DMARC aggregate reports",
			Note: "Petrel sends no DMARC reports yet"},
		{Name: "ANONMAIL_MAX_RETRIES", Default: "10", Meaning: "[Mailu master] anonymous alias generation retries",
			Note: "Petrel has no anonymous aliases yet"},
		{Name: "DB_APPENDIX", Meaning: "[Mailu master] extra database URL parameters", Note: "not supported; use SQLALCHEMY_DATABASE_URI"},
		{Name: "ADMIN_ADDRESS", Meaning: "admin container address", Note: "ADMIN_ADDRESS " + oneProcess},
		{Name: "FRONT_ADDRESS", Meaning: "front container address", Note: "FRONT_ADDRESS " + oneProcess},
		{Name: "IMAP_ADDRESS", Meaning: "imap container address", Note: "IMAP_ADDRESS " + oneProcess},
		{Name: "REDIS_ADDRESS", Meaning: "redis container address", Note: "REDIS_ADDRESS " + oneProcess},
		{Name: "SMTP_ADDRESS", Meaning: "smtp container address", Note: "SMTP_ADDRESS " + oneProcess},
		{Name: "WEBDAV_ADDRESS", Meaning: "webdav container address", Note: "WEBDAV_ADDRESS " + oneProcess},
		{Name: "WEBMAIL_ADDRESS", Meaning: "webmail container address", Note: "WEBMAIL_ADDRESS " + oneProcess},
		{Name: "OLETOOLS_ADDRESS", Meaning: "oletools container address", Note: "OLETOOLS_ADDRESS " + oneProcess},
		{Name: "FTS_ATTACHMENTS_ADDRESS", Meaning: "tika container address", Note: "FTS_ATTACHMENTS_ADDRESS " + oneProcess},
	}
}

// unimplemented warns about Mailu settings Petrel does not implement yet.
func (r *reader) unimplemented(cfg *Config) {
	for _, s := range notImplementedSettings() {
		v, ok := r.getRaw(s.Name)
		if !ok || s.isDefault(strings.TrimSpace(v), cfg) {
			continue
		}
		fix := "remove " + s.Name
		switch {
		case s.Fix != "":
			fix = s.Fix
		case s.Default != "":
			fix = fmt.Sprintf("remove %s or set it to %s", s.Name, s.Default)
		}
		r.warnf(s.Name, strings.TrimSpace(v), fix, "%s", s.Note)
	}
}

func (s notImplemented) isDefault(v string, cfg *Config) bool {
	if s.Bool {
		got, ok := parseBool(v)
		def, _ := parseBool(s.Default)
		return ok && got == def
	}
	for _, q := range append([]string{s.Default}, s.Quiet...) {
		if q == "$POSTMASTER" {
			q = cfg.Postmaster
		}
		if strings.EqualFold(v, q) {
			return true
		}
	}
	return false
}
