package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// base is the smallest valid environment.
func base() map[string]string {
	return map[string]string{
		"DOMAIN":     "example.com",
		"HOSTNAMES":  "mail.example.com",
		"SECRET_KEY": "0123456789abcdefXYZ",
	}
}

func with(kv ...string) map[string]string {
	env := base()
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, probs := Parse(base())
	if len(probs) != 0 {
		t.Fatalf("problems for a minimal environment: %v", probs)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Domain", cfg.Domain, "example.com"},
		{"Hostnames", cfg.Hostnames, []string{"mail.example.com"}},
		{"Postmaster", cfg.Postmaster, "postmaster"},
		{"SecretKey", cfg.SecretKey, "0123456789abcdefXYZ"},
		{"SiteName", cfg.SiteName, "Mailu"},
		{"Website", cfg.Website, "https://mailu.io"},
		{"DataDir", cfg.DataDir, "/var/lib/petrel"},
		{"BindAddress", cfg.BindAddress, ""},
		{"LogLevel", cfg.LogLevel, "INFO"},
		{"LogFormat", cfg.LogFormat, "text"},
		{"TLSFlavor", cfg.TLSFlavor, "cert"},
		{"TLSCertFilename", cfg.TLSCertFilename, "cert.pem"},
		{"TLSKeyFilename", cfg.TLSKeyFilename, "key.pem"},
		{"TLSPermissive", cfg.TLSPermissive, true},
		{"InboundTLSForce", cfg.InboundTLSForce, false},
		{"Ports", cfg.Ports, []int{25, 80, 443, 465, 993, 995, 4190}},
		{"TLSPorts", cfg.TLSPorts, []int{25, 80, 443, 465, 993, 995, 4190}},
		{"MessageSizeLimit", cfg.MessageSizeLimit, int64(50000000)},
		{"DiskReserve", cfg.DiskReserve, int64(75000000)}, // Postfix: 1.5 x message_size_limit
		{"MessageRateLimit", cfg.MessageRateLimit, Rate{200, 24 * time.Hour}},
		{"MessageRateLimitExemption", cfg.MessageRateLimitExemption, []string(nil)},
		{"AuthRateLimitIP", cfg.AuthRateLimitIP, Rate{5, time.Hour}},
		{"AuthRateLimitUser", cfg.AuthRateLimitUser, Rate{50, 24 * time.Hour}},
		{"AuthRateLimitIPv4Mask", cfg.AuthRateLimitIPv4Mask, 24},
		{"AuthRateLimitIPv6Mask", cfg.AuthRateLimitIPv6Mask, 48},
		{"AuthRateLimitExemption", cfg.AuthRateLimitExemption, []netip.Prefix(nil)},
		{"AuthRateLimitExemptionLen", cfg.AuthRateLimitExemptionLen, 86400 * time.Second},
		{"AuthRequireTokens", cfg.AuthRequireTokens, false},
		{"RelayNets", cfg.RelayNets, []netip.Prefix(nil)},
		{"RelayHost", cfg.RelayHost, ""},
		{"Relay", cfg.Relay, RelayTarget{}},
		{"RecipientDelimiter", cfg.RecipientDelimiter, ""},
		{"DefaultQuota", cfg.DefaultQuota, int64(1000000000)},
		{"DefaultSpamThreshold", cfg.DefaultSpamThreshold, 80},
		{"CredentialRounds", cfg.CredentialRounds, 12},
		{"WildcardSenders", cfg.WildcardSenders, []string(nil)},
		{"RejectUnlistedRecipient", cfg.RejectUnlistedRecipient, false},
		{"DKIMSelector", cfg.DKIMSelector, "dkim"},
		{"DKIMPath", cfg.DKIMPath, "/var/lib/petrel/dkim/{domain}.{selector}.key"},
		{"ResolverAddress", cfg.ResolverAddress, ""},
		{"DBFlavor", cfg.DBFlavor, "sqlite"},
		{"DBPort", cfg.DBPort, 5432},
		{"DBName", cfg.DBName, "mailu"},
		{"DBURL", cfg.DBURL, ""},
		{"InitialAdminMode", cfg.InitialAdminMode, "ifmissing"},
		{"InitialAdminAccount", cfg.InitialAdminAccount, ""},
		{"API", cfg.API, false},
		{"APIToken", cfg.APIToken, ""},
		{"WebAPI", cfg.WebAPI, "/api"},
		{"WebAdmin", cfg.WebAdmin, "/admin"},
		{"WebrootRedirect", cfg.WebrootRedirect, ""},
		{"RealIPHeader", cfg.RealIPHeader, ""},
		{"RealIPFrom", len(cfg.RealIPFrom), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v; want %#v", c.name, c.got, c.want)
		}
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	env := with(
		"DOMAIN", "Bücher.Example.",
		"HOSTNAMES", " Mail.Example.com , imap.example.com,,mail.example.com",
		"POSTMASTER", "Admin",
		"DATA_DIR", "/srv/petrel",
		"LOG_LEVEL", "warn",
		"LOG_FORMAT", "JSON",
		"TLS_FLAVOR", "Mail",
		"MESSAGE_SIZE_LIMIT", "1000",
		"DISK_RESERVE", "0",
		"MESSAGE_RATELIMIT", "10 per minute",
		"MESSAGE_RATELIMIT_EXEMPTION", "Boss@Example.com, ops@Bücher.example",
		"WILDCARD_SENDERS", "Noreply@Example.COM",
		"RELAYNETS", "192.0.2.0/24, 2001:db8::/32 198.51.100.7,[2001:db8:1::]/48,203.0.113.9/24",
		"AUTH_RATELIMIT_EXEMPTION", "0.0.0.0/0,::/0",
		"AUTH_RATELIMIT_EXEMPTION_LENGTH", "60",
		"RELAYHOST", "[smtp.example.net]:587",
		"RELAYUSER", "me",
		"RELAYPASSWORD", " pw with spaces ",
		"RECIPIENT_DELIMITER", "+-",
		"RESOLVER_ADDRESS", "192.0.2.53",
		"DKIM_PATH", "/keys/{domain}.{selector}.pem",
		"CREDENTIAL_ROUNDS", "4",
		"DEFAULT_SPAM_THRESHOLD", "0",
		"DEFAULT_QUOTA", "0",
		"TLS_PERMISSIVE", "No",
		"INBOUND_TLS_ENFORCE", "ON",
		"AUTH_REQUIRE_TOKENS", "1",
		"REJECT_UNLISTED_RECIPIENT", "yes",
		"API", "true",
		"API_TOKEN", "tok4",
		"WEB_API", "/rest/",
		"WEB_ADMIN", "/ui",
		"WEBROOT_REDIRECT", "none",
		"REAL_IP_HEADER", "X-Forwarded-For",
		"REAL_IP_FROM", "10.0.0.0/8, 192.0.2.1",
		"INITIAL_ADMIN_ACCOUNT", "Admin",
		"INITIAL_ADMIN_DOMAIN", "Example.com",
		"INITIAL_ADMIN_PW", "pw",
		"INITIAL_ADMIN_MODE", "UPDATE",
		"SITENAME", "Petrel Mail",
	)
	cfg, probs := Parse(env)
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Domain", cfg.Domain, "xn--bcher-kva.example"},
		{"Hostnames", cfg.Hostnames, []string{"mail.example.com", "imap.example.com"}},
		{"Postmaster", cfg.Postmaster, "admin"},
		{"DataDir", cfg.DataDir, "/srv/petrel"},
		{"DKIMPath", cfg.DKIMPath, "/keys/{domain}.{selector}.pem"},
		{"LogLevel", cfg.LogLevel, "WARN"},
		{"LogFormat", cfg.LogFormat, "json"},
		{"TLSFlavor", cfg.TLSFlavor, "mail"},
		{"MessageSizeLimit", cfg.MessageSizeLimit, int64(1000)},
		{"DiskReserve", cfg.DiskReserve, int64(0)},
		{"MessageRateLimit", cfg.MessageRateLimit, Rate{10, time.Minute}},
		{"MessageRateLimitExemption", cfg.MessageRateLimitExemption, []string{"boss@example.com", "ops@xn--bcher-kva.example"}},
		{"WildcardSenders", cfg.WildcardSenders, []string{"noreply@example.com"}},
		{"RelayNets", cfg.RelayNets, []netip.Prefix{
			netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"),
			netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("2001:db8:1::/48"),
			netip.MustParsePrefix("203.0.113.0/24"),
		}},
		{"AuthRateLimitExemption", cfg.AuthRateLimitExemption, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
		{"AuthRateLimitExemptionLen", cfg.AuthRateLimitExemptionLen, time.Minute},
		{"RelayHost", cfg.RelayHost, "[smtp.example.net]:587"},
		{"Relay", cfg.Relay, RelayTarget{Host: "smtp.example.net", Port: 587}},
		{"RelayUser", cfg.RelayUser, "me"},
		{"RelayPassword", cfg.RelayPassword, " pw with spaces "},
		{"RecipientDelimiter", cfg.RecipientDelimiter, "+-"},
		{"ResolverAddress", cfg.ResolverAddress, "192.0.2.53:53"},
		{"CredentialRounds", cfg.CredentialRounds, 4},
		{"DefaultSpamThreshold", cfg.DefaultSpamThreshold, 0},
		{"DefaultQuota", cfg.DefaultQuota, int64(0)},
		{"TLSPermissive", cfg.TLSPermissive, false},
		{"InboundTLSForce", cfg.InboundTLSForce, true},
		{"AuthRequireTokens", cfg.AuthRequireTokens, true},
		{"RejectUnlistedRecipient", cfg.RejectUnlistedRecipient, true},
		{"API", cfg.API, true},
		{"APIToken", cfg.APIToken, "tok4"},
		{"WebAPI", cfg.WebAPI, "/rest"},
		{"WebAdmin", cfg.WebAdmin, "/ui"},
		{"WebrootRedirect", cfg.WebrootRedirect, "none"},
		{"RealIPHeader", cfg.RealIPHeader, "X-Forwarded-For"},
		{"RealIPFrom", cfg.RealIPFrom, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}},
		{"InitialAdminAccount", cfg.InitialAdminAccount, "admin"},
		{"InitialAdminDomain", cfg.InitialAdminDomain, "example.com"},
		{"InitialAdminPw", cfg.InitialAdminPw, "pw"},
		{"InitialAdminMode", cfg.InitialAdminMode, "update"},
		{"SiteName", cfg.SiteName, "Petrel Mail"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v; want %#v", c.name, c.got, c.want)
		}
	}
}

func TestBooleans(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"true", "True", "TRUE", "yes", "Yes", "1", "on", "ON"} {
		cfg, probs := Parse(with("INBOUND_TLS_ENFORCE", v))
		if len(probs) != 0 || !cfg.InboundTLSForce {
			t.Errorf("INBOUND_TLS_ENFORCE=%q: %v, %v", v, cfg.InboundTLSForce, probs)
		}
	}
	for _, v := range []string{"false", "False", "no", "NO", "0", "off", "Off"} {
		cfg, probs := Parse(with("TLS_PERMISSIVE", v))
		if len(probs) != 0 || cfg.TLSPermissive {
			t.Errorf("TLS_PERMISSIVE=%q: %v, %v", v, cfg.TLSPermissive, probs)
		}
	}
	for _, v := range []string{"maybe", "2", "y", "t", "enabled"} {
		cfg, probs := Parse(with("TLS_PERMISSIVE", v))
		if !cfg.TLSPermissive {
			t.Errorf("TLS_PERMISSIVE=%q did not keep the default", v)
		}
		if len(probs) != 1 || probs[0].Warning || probs[0].Setting != "TLS_PERMISSIVE" ||
			probs[0].Message != `"`+v+`" is not a boolean` {
			t.Errorf("TLS_PERMISSIVE=%q: problems %v", v, probs)
		}
	}
	// Empty is unset: the default stays and nothing is reported.
	if cfg, probs := Parse(with("TLS_PERMISSIVE", "  ")); len(probs) != 0 || !cfg.TLSPermissive {
		t.Errorf("empty TLS_PERMISSIVE: %v, %v", cfg.TLSPermissive, probs)
	}
}

// TestValidation covers every message Parse produces. Each case changes the
// base environment and expects exactly one problem.
func TestValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		setting string
		warning bool
		message string // substring
	}{
		{"DOMAIN missing", map[string]string{"HOSTNAMES": "mail.example.com", "SECRET_KEY": "0123456789abcdefXYZ"}, "DOMAIN", false, "is required"},
		{"DOMAIN empty", with("DOMAIN", " "), "DOMAIN", false, "is required"},
		{"DOMAIN invalid", with("DOMAIN", "exa mple.com"), "DOMAIN", false, "not a valid domain name"},
		{"DOMAIN literal", with("DOMAIN", "[192.0.2.1]"), "DOMAIN", false, "not a valid domain name"},
		{"HOSTNAMES missing", map[string]string{"DOMAIN": "example.com", "SECRET_KEY": "0123456789abcdefXYZ"}, "HOSTNAMES", false, "is required"},
		{"HOSTNAMES invalid", with("HOSTNAMES", "mail.example.com,bad_host"), "HOSTNAMES", false, `"bad_host" is not a valid host name`},
		{"HOSTNAMES only commas", with("HOSTNAMES", ",,"), "HOSTNAMES", false, "lists no host name"},
		{"POSTMASTER with @", with("POSTMASTER", "pm@example.com"), "POSTMASTER", false, "must be a local part"},
		{"SECRET_KEY missing", with("SECRET_KEY", ""), "SECRET_KEY", true, "is not set"},
		{"SECRET_KEY changeMe", with("SECRET_KEY", "changeMe"), "SECRET_KEY", true, "Mailu's example value"},
		{"SECRET_KEY short", with("SECRET_KEY", "short"), "SECRET_KEY", true, "shorter than 16"},
		{"SECRET_KEY_FILE missing", with("SECRET_KEY", "", "SECRET_KEY_FILE", filepath.Join(dir, "nope")), "SECRET_KEY_FILE", false, "cannot read the file"},
		{"SECRET_KEY_FILE empty", with("SECRET_KEY", "", "SECRET_KEY_FILE", emptyFile), "SECRET_KEY_FILE", false, "the file is empty"},
		{"SECRET_KEY_FILE ignored", with("SECRET_KEY_FILE", emptyFile), "SECRET_KEY_FILE", true, "ignored because SECRET_KEY is set"},
		{"LOG_LEVEL", with("LOG_LEVEL", "verbose"), "LOG_LEVEL", false, "unknown log level"},
		{"METRICS_ADDRESS no port", with("METRICS", "true", "METRICS_ADDRESS", "127.0.0.1"), "METRICS_ADDRESS", false, "is not a host:port"},
		{"METRICS_ADDRESS bad port", with("METRICS", "true", "METRICS_ADDRESS", "127.0.0.1:99999"), "METRICS_ADDRESS", false, "is not a host:port"},
		{"METRICS_ADDRESS without METRICS", with("METRICS_ADDRESS", "127.0.0.1:9154"), "METRICS_ADDRESS", true, "METRICS is off"},
		{"METRICS_ADDRESS everywhere", with("METRICS", "true", "METRICS_ADDRESS", ":9154"), "METRICS_ADDRESS", true, "every interface"},
		{"LOG_FORMAT", with("LOG_FORMAT", "xml"), "LOG_FORMAT", false, "unknown log format"},
		{"TLS_FLAVOR unknown", with("TLS_FLAVOR", "selfsigned"), "TLS_FLAVOR", false, "unknown TLS flavor"},
		{"ACME_DIRECTORY http", with("TLS_FLAVOR", "letsencrypt", "ACME_DIRECTORY", "http://ca.example/dir"), "ACME_DIRECTORY", false, "is not an https URL"},
		{"ACME_CA_ROOTS missing", with("ACME_CA_ROOTS", filepath.Join(dir, "nope.pem")), "ACME_CA_ROOTS", false, "cannot read the file"},
		{"PROXY_PROTOCOL without REAL_IP_FROM", with("PROXY_PROTOCOL", "mail"), "PROXY_PROTOCOL", false, "needs REAL_IP_FROM"},
		{"PROXY_PROTOCOL bad item", with("PROXY_PROTOCOL", "25,smtp", "REAL_IP_FROM", "10.0.0.0/8"), "PROXY_PROTOCOL", false, `"smtp" is neither a role port`},
		{"MESSAGE_SIZE_LIMIT word", with("MESSAGE_SIZE_LIMIT", "50MB"), "MESSAGE_SIZE_LIMIT", false, `"50MB" is not a whole number`},
		{"MESSAGE_SIZE_LIMIT zero", with("MESSAGE_SIZE_LIMIT", "0"), "MESSAGE_SIZE_LIMIT", false, "0 is outside 1.."},
		{"MESSAGE_SIZE_LIMIT negative", with("MESSAGE_SIZE_LIMIT", "-5"), "MESSAGE_SIZE_LIMIT", false, "-5 is outside"},
		{"DISK_RESERVE word", with("DISK_RESERVE", "1G"), "DISK_RESERVE", false, `"1G" is not a whole number`},
		{"DISK_RESERVE negative", with("DISK_RESERVE", "-1"), "DISK_RESERVE", false, "-1 is outside 0.."},
		{"MESSAGE_RATELIMIT bad", with("MESSAGE_RATELIMIT", "lots"), "MESSAGE_RATELIMIT", false, "does not start with a number"},
		{"MESSAGE_RATELIMIT separators only", with("MESSAGE_RATELIMIT", ";,"), "MESSAGE_RATELIMIT", false, "no rate given"},
		{"MESSAGE_RATELIMIT several", with("MESSAGE_RATELIMIT", "100/hour;200/day"), "MESSAGE_RATELIMIT", true, "only the first rate, 100/hour; 1 more ignored"},
		{"AUTH_RATELIMIT_IP several", with("AUTH_RATELIMIT_IP", "5/hour, 20/day | 100/month"), "AUTH_RATELIMIT_IP", true, "2 more ignored"},
		{"AUTH_RATELIMIT_USER bad unit", with("AUTH_RATELIMIT_USER", "50/week"), "AUTH_RATELIMIT_USER", false, `unknown time unit "week"`},
		{"V4 mask", with("AUTH_RATELIMIT_IP_V4_MASK", "33"), "AUTH_RATELIMIT_IP_V4_MASK", false, "33 is outside 0..32"},
		{"V6 mask", with("AUTH_RATELIMIT_IP_V6_MASK", "129"), "AUTH_RATELIMIT_IP_V6_MASK", false, "129 is outside 0..128"},
		{"V6 mask word", with("AUTH_RATELIMIT_IP_V6_MASK", "/48"), "AUTH_RATELIMIT_IP_V6_MASK", false, "not a whole number"},
		{"exemption length", with("AUTH_RATELIMIT_EXEMPTION_LENGTH", "1d"), "AUTH_RATELIMIT_EXEMPTION_LENGTH", false, "not a whole number"},
		{"RELAYNETS address", with("RELAYNETS", "192.0.2.0/24,192.0.2.300"), "RELAYNETS", false, `"192.0.2.300" is not an IP address`},
		{"RELAYNETS mask", with("RELAYNETS", "192.0.2.0/33"), "RELAYNETS", false, `mask "33" is not a number from 0 to 32`},
		{"RELAYNETS v6 mask", with("RELAYNETS", "2001:db8::/129"), "RELAYNETS", false, `mask "129" is not a number from 0 to 128`},
		{"RELAYNETS zone", with("RELAYNETS", "fe80::1%eth0/64"), "RELAYNETS", false, "zone"},
		{"AUTH_RATELIMIT_EXEMPTION", with("AUTH_RATELIMIT_EXEMPTION", "localhost"), "AUTH_RATELIMIT_EXEMPTION", false, `"localhost" is not an IP address`},
		{"RELAYHOST bracket", with("RELAYHOST", "[smtp.example.com:587"), "RELAYHOST", false, "missing ]"},
		{"RELAYHOST after bracket", with("RELAYHOST", "[smtp.example.com]587"), "RELAYHOST", false, "after ]"},
		{"RELAYHOST port", with("RELAYHOST", "smtp.example.com:smtp"), "RELAYHOST", false, `"smtp" is not a port number`},
		{"RELAYHOST port range", with("RELAYHOST", "[smtp.example.com]:70000"), "RELAYHOST", false, `"70000" is not a port number`},
		{"RELAYHOST empty port", with("RELAYHOST", "smtp.example.com:"), "RELAYHOST", false, "empty port"},
		{"RELAYHOST empty bracket port", with("RELAYHOST", "[smtp.example.com]:"), "RELAYHOST", false, "empty port"},
		{"RELAYHOST bare v6", with("RELAYHOST", "2001:db8::1"), "RELAYHOST", false, "must be in brackets"},
		{"RELAYHOST host", with("RELAYHOST", "smtp_example.com"), "RELAYHOST", false, "not a host name or IP address"},
		{"RELAYUSER without password", with("RELAYHOST", "smtp.example.com", "RELAYUSER", "u"), "RELAYPASSWORD", false, "is required when RELAYUSER is set"},
		{"RELAYPASSWORD without user", with("RELAYHOST", "smtp.example.com", "RELAYPASSWORD", "p"), "RELAYUSER", false, "is required when RELAYPASSWORD is set"},
		{"RELAYUSER without RELAYHOST", with("RELAYUSER", "u", "RELAYPASSWORD", "p"), "RELAYUSER", true, "ignored without RELAYHOST"},
		{"RESOLVER_ADDRESS host", with("RESOLVER_ADDRESS", "dns.example.com:53"), "RESOLVER_ADDRESS", false, `"dns.example.com" is not an IP address`},
		{"RESOLVER_ADDRESS port", with("RESOLVER_ADDRESS", "192.0.2.53:dns"), "RESOLVER_ADDRESS", false, `"dns" is not a port number`},
		{"RECIPIENT_DELIMITER space", with("RECIPIENT_DELIMITER", "+ -"), "RECIPIENT_DELIMITER", false, "' ' cannot be a delimiter"},
		{"RECIPIENT_DELIMITER at", with("RECIPIENT_DELIMITER", "@"), "RECIPIENT_DELIMITER", false, "'@' cannot be a delimiter"},
		{"DEFAULT_QUOTA", with("DEFAULT_QUOTA", "1G"), "DEFAULT_QUOTA", false, "not a whole number"},
		{"DEFAULT_SPAM_THRESHOLD word", with("DEFAULT_SPAM_THRESHOLD", "high"), "DEFAULT_SPAM_THRESHOLD", false, "not a whole number"},
		{"DEFAULT_SPAM_THRESHOLD range", with("DEFAULT_SPAM_THRESHOLD", "101"), "DEFAULT_SPAM_THRESHOLD", false, "101 is outside 0..100"},
		{"CREDENTIAL_ROUNDS low", with("CREDENTIAL_ROUNDS", "3"), "CREDENTIAL_ROUNDS", false, "3 is outside 4..31"},
		{"CREDENTIAL_ROUNDS high", with("CREDENTIAL_ROUNDS", "32"), "CREDENTIAL_ROUNDS", false, "32 is outside 4..31"},
		{"WILDCARD_SENDERS", with("WILDCARD_SENDERS", "ok@example.com,notanaddress"), "WILDCARD_SENDERS", false, `"notanaddress" is not an e-mail address`},
		{"MESSAGE_RATELIMIT_EXEMPTION", with("MESSAGE_RATELIMIT_EXEMPTION", "a@b@example.com"), "MESSAGE_RATELIMIT_EXEMPTION", false, "is not an e-mail address"},
		{"DKIM_SELECTOR", with("DKIM_SELECTOR", "dk im"), "DKIM_SELECTOR", false, "not a DNS label"},
		{"DKIM_PATH", with("DKIM_PATH", "/dkim/key.pem"), "DKIM_PATH", true, "has no {domain}"},
		{"DB_FLAVOR mysql", with("DB_FLAVOR", "mysql"), "DB_FLAVOR", false, "not supported"},
		{"DB_FLAVOR unknown", with("DB_FLAVOR", "oracle"), "DB_FLAVOR", false, "unknown database flavor"},
		{"postgresql no host", with("DB_FLAVOR", "postgresql", "DB_USER", "mailu"), "DB_HOST", false, "is required when DB_FLAVOR=postgresql"},
		{"postgresql no user", with("DB_FLAVOR", "postgresql", "DB_HOST", "db"), "DB_USER", false, "is required when DB_FLAVOR=postgresql"},
		{"DB_PORT", with("DB_PORT", "pg"), "DB_PORT", false, "not a whole number"},
		{"DB_PORT range", with("DB_PORT", "0"), "DB_PORT", false, "0 is outside 1..65535"},
		{"DB_HOST port", with("DB_HOST", "db:x"), "DB_HOST", false, `"x" is not a port number`},
		{"DB_HOST port conflict", with("DB_HOST", "db:5433", "DB_PORT", "5432"), "DB_HOST", false, "contradicts DB_PORT=5432"},
		{"URI mysql", with("SQLALCHEMY_DATABASE_URI", "mysql://u:p@db/mailu"), "SQLALCHEMY_DATABASE_URI", false, "not supported"},
		{"URI unknown", with("SQLALCHEMY_DATABASE_URI", "db.example.com"), "SQLALCHEMY_DATABASE_URI", false, "not an sqlite:// or postgresql:// URI"},
		{"URI sqlite elsewhere", with("SQLALCHEMY_DATABASE_URI", "sqlite:////data/main.db"), "SQLALCHEMY_DATABASE_URI", true, "DATA_DIR/main.db"},
		{"URI and flavor", with("DB_FLAVOR", "sqlite", "SQLALCHEMY_DATABASE_URI", "sqlite:////data/main.db"), "SQLALCHEMY_DATABASE_URI", true, "ignored because DB_FLAVOR is set"},
		{"INITIAL_ADMIN_MODE", with("INITIAL_ADMIN_MODE", "always"), "INITIAL_ADMIN_MODE", false, "unknown mode"},
		{"INITIAL_ADMIN partial pw", with("INITIAL_ADMIN_ACCOUNT", "admin", "INITIAL_ADMIN_DOMAIN", "example.com"), "INITIAL_ADMIN_PW", false, "is required when any INITIAL_ADMIN_* setting is given"},
		{"INITIAL_ADMIN partial domain", with("INITIAL_ADMIN_ACCOUNT", "admin", "INITIAL_ADMIN_PW", "x"), "INITIAL_ADMIN_DOMAIN", false, "is required when any"},
		{"INITIAL_ADMIN partial account", with("INITIAL_ADMIN_DOMAIN", "example.com", "INITIAL_ADMIN_PW", "x"), "INITIAL_ADMIN_ACCOUNT", false, "is required when any"},
		{"INITIAL_ADMIN_ACCOUNT @", with("INITIAL_ADMIN_ACCOUNT", "admin@example.com", "INITIAL_ADMIN_DOMAIN", "example.com", "INITIAL_ADMIN_PW", "x"), "INITIAL_ADMIN_ACCOUNT", false, "must be a local part"},
		{"INITIAL_ADMIN_DOMAIN bad", with("INITIAL_ADMIN_ACCOUNT", "admin", "INITIAL_ADMIN_DOMAIN", "example..com", "INITIAL_ADMIN_PW", "x"), "INITIAL_ADMIN_DOMAIN", false, "not a valid domain name"},
		{"API without token", with("API", "true"), "API_TOKEN", false, "is required when API=true"},
		{"API bool", with("API", "enabled"), "API", false, "is not a boolean"},
		{"API_TOKEN short", with("API", "true", "API_TOKEN", "abc"), "API_TOKEN", false, "shorter than 4 characters"},
		{"WEB_API not a path", with("WEB_API", "api"), "WEB_API", false, "is not a path below /"},
		{"WEB_ADMIN root", with("WEB_ADMIN", "/"), "WEB_ADMIN", false, "is not a path below /"},
		{"WEB_API = WEB_ADMIN", with("WEB_API", "/x", "WEB_ADMIN", "/x/"), "WEB_API", false, "same path as WEB_ADMIN"},
		{"WEBROOT_REDIRECT word", with("WEBROOT_REDIRECT", "admin"), "WEBROOT_REDIRECT", false, "neither a path nor a URL"},
		{"WEBROOT_REDIRECT webmail", with("WEBROOT_REDIRECT", "/webmail"), "WEBROOT_REDIRECT", true, "Petrel has no webmail"},
		{"REAL_IP_HEADER alone", with("REAL_IP_HEADER", "X-Real-IP"), "REAL_IP_HEADER", true, "ignored without REAL_IP_FROM"},
		{"REAL_IP_HEADER bad", with("REAL_IP_HEADER", "X Real", "REAL_IP_FROM", "10.0.0.0/8"), "REAL_IP_HEADER", false, "not a header name"},
		{"REAL_IP_FROM bad", with("REAL_IP_HEADER", "X-Real-IP", "REAL_IP_FROM", "10.0.0.0/33,192.0.2.1"), "REAL_IP_FROM", false, "mask"},
		{"PORTS word", with("PORTS", "25,abc"), "PORTS", false, `"abc" is not a port number`},
		{"PORTS range", with("PORTS", "25,70000"), "PORTS", false, "70000 is not a port number (1..65535)"},
		{"PORTS unknown", with("PORTS", "25,2525"), "PORTS", true, "port 2525 has no role in Petrel and is ignored"},
		{"TLS word", with("TLS", "465,x"), "TLS", false, `"x" is not a port number`},
		{"BIND_ADDRESS", with("BIND_ADDRESS", "localhost"), "BIND_ADDRESS", false, `"localhost" is not an IP address`},
		{"LISTEN_ no port", with("LISTEN_25", "127.0.0.1"), "LISTEN_25", false, "not host:port"},
		{"LISTEN_ bad port", with("LISTEN_25", "127.0.0.1:smtp"), "LISTEN_25", false, `"smtp" is not a port number`},
		{"LISTEN_ bad host", with("LISTEN_25", "bad_host:25"), "LISTEN_25", false, "not an IP address or host name"},
		{"LISTEN_ unknown port", with("LISTEN_2525", "127.0.0.1:2525"), "LISTEN_2525", true, "names no Petrel port"},
		{"LISTEN_ disabled port", with("LISTEN_587", "127.0.0.1:587"), "LISTEN_587", true, "port 587 is not enabled"},
		{"LISTEN_ duplicate", with("LISTEN_465", "127.0.0.1:2525", "LISTEN_993", "127.0.0.1:2525"), "LISTEN_993", false, "same address as port 465"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, probs := Parse(tt.env)
			if len(probs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(probs), probs)
			}
			p := probs[0]
			if p.Setting != tt.setting || p.Warning != tt.warning || !strings.Contains(p.Message, tt.message) {
				t.Errorf("problem %+v; want setting %s warning %v message containing %q", p, tt.setting, tt.warning, tt.message)
			}
			if p.Fix == "" {
				t.Errorf("problem %v has no fix", p)
			}
			if p.Warning == HasErrors(probs) {
				t.Errorf("HasErrors = %v for %v", HasErrors(probs), p)
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"PORTS":              "25,abc",
		"TLS_FLAVOR":         "bogus",
		"MESSAGE_SIZE_LIMIT": "-1",
		"CREDENTIAL_ROUNDS":  "99",
		"RELAYNETS":          "nonsense",
		"LOG_LEVEL":          "loud",
		"DB_FLAVOR":          "mysql",
		"WEBMAIL":            "roundcube",
	}
	_, probs := Parse(env)
	want := map[string]bool{"DOMAIN": false, "HOSTNAMES": false, "PORTS": false, "TLS_FLAVOR": false,
		"MESSAGE_SIZE_LIMIT": false, "CREDENTIAL_ROUNDS": false, "RELAYNETS": false, "LOG_LEVEL": false,
		"DB_FLAVOR": false, "SECRET_KEY": true, "WEBMAIL": true}
	got := make(map[string]bool)
	for _, p := range probs {
		got[p.Setting] = p.Warning
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems by setting (warning?) = %v; want %v\n%v", got, want, probs)
	}
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	_, probs := Parse(with("PORTS", "25,abc"))
	want := `PORTS="25,abc": "abc" is not a port number; fix: use a comma list such as 25,80,443,465,993,995,4190`
	if len(probs) != 1 || probs[0].String() != want {
		t.Errorf("got %v; want %s", probs, want)
	}
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Setting: "DOMAIN", Message: "is required", Fix: "set it"}, "DOMAIN: is required; fix: set it"},
		{Problem{Setting: "WEBMAIL", Value: "roundcube", Message: "Petrel has no webmail", Warning: true},
			`warning: WEBMAIL="roundcube": Petrel has no webmail`},
		{Problem{Setting: "X", Value: "a\nb", Message: "m"}, `X="a\nb": m`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q; want %q", got, tt.want)
		}
	}
	if HasErrors(nil) || HasErrors([]Problem{{Warning: true}}) || !HasErrors([]Problem{{Warning: true}, {}}) {
		t.Error("HasErrors is wrong")
	}
}

func TestSecretKeyFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("  file-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, probs := Parse(with("SECRET_KEY", "", "SECRET_KEY_FILE", file))
	if len(probs) != 0 || cfg.SecretKey != "file-secret-0123456789" {
		t.Errorf("SECRET_KEY_FILE: key %q, problems %v", cfg.SecretKey, probs)
	}
	env := with("SECRET_KEY_FILE", file)
	delete(env, "SECRET_KEY")
	if cfg, _ := Parse(env); cfg.SecretKey != "file-secret-0123456789" {
		t.Errorf("unset SECRET_KEY: key %q", cfg.SecretKey)
	}
	// SECRET_KEY wins when both are set (Mailu reads the file only when the variable is unset).
	cfg, probs = Parse(with("SECRET_KEY_FILE", file))
	if cfg.SecretKey != "0123456789abcdefXYZ" || len(probs) != 1 || !probs[0].Warning {
		t.Errorf("both set: key %q, problems %v", cfg.SecretKey, probs)
	}
}

func TestDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		env                       map[string]string
		flavor, host, url, dbname string
		port                      int
	}{
		{"postgres", with("DB_FLAVOR", "PostgreSQL", "DB_HOST", "db", "DB_USER", "u", "DB_PW", "p", "DB_NAME", "mail"), "postgresql", "db", "", "mail", 5432},
		{"postgres host:port", with("DB_FLAVOR", "postgresql", "DB_HOST", "db:5433", "DB_USER", "u"), "postgresql", "db", "", "mailu", 5433},
		{"postgres port", with("DB_FLAVOR", "postgresql", "DB_HOST", "db", "DB_PORT", "6432", "DB_USER", "u"), "postgresql", "db", "", "mailu", 6432},
		{"uri postgres", with("SQLALCHEMY_DATABASE_URI", "postgresql+psycopg2://u:p@db/mailu"), "postgresql", "", "postgresql+psycopg2://u:p@db/mailu", "mailu", 5432},
		{"uri sqlite in data dir", with("DATA_DIR", "/data", "SQLALCHEMY_DATABASE_URI", "sqlite:////data/main.db"), "sqlite", "", "sqlite:////data/main.db", "mailu", 5432},
	}
	for _, tt := range tests {
		cfg, probs := Parse(tt.env)
		if len(probs) != 0 {
			t.Errorf("%s: problems %v", tt.name, probs)
			continue
		}
		if cfg.DBFlavor != tt.flavor || cfg.DBHost != tt.host || cfg.DBURL != tt.url || cfg.DBName != tt.dbname || cfg.DBPort != tt.port {
			t.Errorf("%s: flavor %q host %q url %q name %q port %d", tt.name, cfg.DBFlavor, cfg.DBHost, cfg.DBURL, cfg.DBName, cfg.DBPort)
		}
	}
}

func TestRelayHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want RelayTarget
	}{
		{"[smtp.example.com]:587", RelayTarget{Host: "smtp.example.com", Port: 587}},
		{"[smtp.example.com]", RelayTarget{Host: "smtp.example.com", Port: 25}},
		{"smtp.example.com:2525", RelayTarget{Host: "smtp.example.com", Port: 2525, MX: true}},
		{"Example.COM", RelayTarget{Host: "example.com", Port: 25, MX: true}},
		{"[2001:db8::1]:587", RelayTarget{Host: "2001:db8::1", Port: 587}},
		{"[IPv6:2001:db8::1]:587", RelayTarget{Host: "2001:db8::1", Port: 587}},
		{"192.0.2.25:587", RelayTarget{Host: "192.0.2.25", Port: 587}},
		{"[Bücher.example]:465", RelayTarget{Host: "xn--bcher-kva.example", Port: 465}},
	}
	for _, tt := range tests {
		cfg, probs := Parse(with("RELAYHOST", tt.in))
		if len(probs) != 0 || cfg.Relay != tt.want || cfg.RelayHost != tt.in {
			t.Errorf("RELAYHOST=%q: %+v %q, %v; want %+v", tt.in, cfg.Relay, cfg.RelayHost, probs, tt.want)
		}
	}
}

func TestResolverAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.53":          "192.0.2.53:53",
		"192.0.2.53:5353":     "192.0.2.53:5353",
		"2001:db8::53":        "[2001:db8::53]:53",
		"[2001:db8::53]":      "[2001:db8::53]:53",
		"[2001:db8::53]:5353": "[2001:db8::53]:5353",
	} {
		cfg, probs := Parse(with("RESOLVER_ADDRESS", in))
		if len(probs) != 0 || cfg.ResolverAddress != want {
			t.Errorf("RESOLVER_ADDRESS=%q: %q, %v; want %q", in, cfg.ResolverAddress, probs, want)
		}
	}
}

func TestQueueDurations(t *testing.T) {
	base := map[string]string{"DOMAIN": "example.com", "HOSTNAMES": "mail.example.com"}
	cases := []struct {
		lifetime, delay string
		wantLife        time.Duration
		wantDelay       time.Duration
		wantErr         bool
	}{
		{"", "", 5 * 24 * time.Hour, 5 * time.Minute, false},
		{"2d", "0", 48 * time.Hour, 0, false},
		{"1d12h", "4h", 36 * time.Hour, 4 * time.Hour, false},
		{"90m", "30s", 90 * time.Minute, 30 * time.Second, false},
		{"soon", "", 5 * 24 * time.Hour, 5 * time.Minute, true},
		{"10s", "", 5 * 24 * time.Hour, 5 * time.Minute, true}, // below one minute
	}
	for _, c := range cases {
		env := map[string]string{"QUEUE_LIFETIME": c.lifetime, "DELAY_WARNING_TIME": c.delay}
		for k, v := range base {
			env[k] = v
		}
		cfg, probs := Parse(env)
		if HasErrors(probs) != c.wantErr {
			t.Errorf("%q/%q: problems %v, want error=%v", c.lifetime, c.delay, probs, c.wantErr)
		}
		if cfg.QueueLifetime != c.wantLife || cfg.DelayWarningTime != c.wantDelay {
			t.Errorf("%q/%q: got %v/%v, want %v/%v", c.lifetime, c.delay, cfg.QueueLifetime, cfg.DelayWarningTime, c.wantLife, c.wantDelay)
		}
	}
}
