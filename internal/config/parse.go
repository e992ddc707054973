package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// Defaults that more than one place needs.
const (
	DefaultPorts   = "25,80,443,465,993,995,4190" // Mailu: socrate/system.py clean_env
	DefaultDataDir = "/var/lib/petrel"
	// DefaultACMEDirectory is Let's Encrypt production (Mailu's certbot default).
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
)

// reader reads settings from env and collects problems. It records every
// name it reads so tests can check that Known documents all of them.
type reader struct {
	env   map[string]string
	seen  map[string]bool
	probs []Problem
}

// get returns the trimmed value of name; ok is false when it is unset or
// empty (Petrel treats an empty value as unset, so "KEY=" keeps the default).
func (r *reader) get(name string) (string, bool) {
	r.seen[name] = true
	v := strings.TrimSpace(r.env[name])
	return v, v != ""
}

// getRaw is get without trimming, for secrets (a password may end in a space).
func (r *reader) getRaw(name string) (string, bool) {
	r.seen[name] = true
	v := r.env[name]
	return v, strings.TrimSpace(v) != ""
}

func (r *reader) add(warning bool, name, value, fix, format string, args ...any) {
	if isSecret(name) {
		value = ""
	}
	r.probs = append(r.probs, Problem{
		Setting: name,
		Value:   value,
		Message: fmt.Sprintf(format, args...),
		Fix:     fix,
		Warning: warning,
	})
}

func (r *reader) errorf(name, value, fix, format string, args ...any) {
	r.add(false, name, value, fix, format, args...)
}

func (r *reader) warnf(name, value, fix, format string, args ...any) {
	r.add(true, name, value, fix, format, args...)
}

// str returns the value or def.
func (r *reader) str(name, def string) string {
	if v, ok := r.get(name); ok {
		return v
	}
	return def
}

// boolean reads a Mailu boolean. Mailu (configuration.py __coerce_value)
// takes true/yes and false/no in any case; 1/0 and on/off are accepted too.
func (r *reader) boolean(name string, def bool) bool {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	b, ok := parseBool(v)
	if !ok {
		r.errorf(name, v, fmt.Sprintf("use true or false (yes/no, 1/0 and on/off work too); the default is %t", def),
			"%q is not a boolean", v)
		return def
	}
	return b
}

func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "true", "yes", "1", "on":
		return true, true
	case "false", "no", "0", "off":
		return false, true
	}
	return false, false
}

// integer reads an int64 within [lo, hi].
func (r *reader) integer(name string, def, lo, hi int64, fix string) int64 {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		r.errorf(name, v, fix, "%q is not a whole number", v)
		return def
	}
	if n < lo || n > hi {
		r.errorf(name, v, fix, "%d is outside %d..%d", n, lo, hi)
		return def
	}
	return n
}

// rate reads a limits rate string; only the first of several rates is used.
func (r *reader) rate(name, def string) Rate {
	fallback, _ := ParseRate(def)
	v, ok := r.get(name)
	if !ok {
		return fallback
	}
	fix := fmt.Sprintf("use a rate such as %s, 10/minute or 1 per 2 hours", def)
	parts := splitRates(v)
	if len(parts) == 0 {
		r.errorf(name, v, fix, "no rate given")
		return fallback
	}
	rt, err := ParseRate(parts[0])
	if err != nil {
		r.errorf(name, v, fix, "%v", err)
		return fallback
	}
	if len(parts) > 1 {
		r.warnf(name, v, "keep one rate", "Petrel applies only the first rate, %s; %d more ignored", rt, len(parts)-1)
	}
	return rt
}

// Parse turns the merged environment into a Config with Mailu's defaults and
// reports every problem at once. The Config is never nil; settings with
// errors keep their defaults. Secret values never appear in a Problem.
func Parse(env map[string]string) (*Config, []Problem) {
	cfg, r := parse(env)
	return cfg, r.probs
}

func parse(env map[string]string) (*Config, *reader) {
	r := &reader{env: env, seen: make(map[string]bool)}
	cfg := &Config{}
	r.identity(cfg)
	r.petrel(cfg)
	r.tls(cfg)
	r.listeners(cfg)
	r.limits(cfg)
	r.mailFlow(cfg)
	r.database(cfg)
	r.blobS3(cfg)
	r.bootstrap(cfg)
	r.api(cfg)
	r.metrics(cfg)
	// Mailu: optional/fetchmail/fetchmail.py, setup default 600 s.
	cfg.FetchmailEnabled = r.boolean("FETCHMAIL_ENABLED", false)
	cfg.FetchmailDelay = time.Duration(r.integer("FETCHMAIL_DELAY", 600, 10, 7*24*3600, "set FETCHMAIL_DELAY to seconds between polls (default 600)")) * time.Second
	r.fullText(cfg)
	r.filter(cfg)
	r.webUI(cfg)
	r.unimplemented(cfg)
	return cfg, r
}

func (r *reader) identity(cfg *Config) {
	if v, ok := r.get("DOMAIN"); !ok {
		r.errorf("DOMAIN", "", "set DOMAIN to your main mail domain, e.g. DOMAIN=example.com", "is required")
	} else if d, err := mailaddr.NormalizeDomain(v); err != nil {
		r.errorf("DOMAIN", v, "use a domain name such as example.com", "not a valid domain name: %v", err)
	} else {
		cfg.Domain = d
	}

	if v, ok := r.get("HOSTNAMES"); !ok {
		r.errorf("HOSTNAMES", "", "set HOSTNAMES to the server's public names, first the one in MX records, e.g. HOSTNAMES=mail.example.com",
			"is required")
	} else {
		seen := make(map[string]bool)
		items := splitList(v)
		for _, h := range items {
			d, err := mailaddr.NormalizeDomain(h)
			if err != nil {
				r.errorf("HOSTNAMES", v, "use a comma list of host names such as mail.example.com,imap.example.com",
					"%q is not a valid host name: %v", h, err)
				continue
			}
			if !seen[d] {
				seen[d] = true
				cfg.Hostnames = append(cfg.Hostnames, d)
			}
		}
		if len(items) == 0 {
			r.errorf("HOSTNAMES", v, "set HOSTNAMES=mail.example.com", "lists no host name")
		}
	}

	cfg.Postmaster = strings.ToLower(r.str("POSTMASTER", "postmaster"))
	if strings.ContainsAny(cfg.Postmaster, "@ \t\"") {
		r.errorf("POSTMASTER", cfg.Postmaster, "give only the local part, e.g. POSTMASTER=postmaster (the domain is DOMAIN)",
			"must be a local part without @, spaces or quotes")
		cfg.Postmaster = "postmaster"
	}
	// Mailu's setup writes DMARC_RUA and DMARC_RUF = POSTMASTER
	// (setup/flavors/compose/mailu.env); they go into the suggested DMARC
	// record as mailto:<local>@DOMAIN (models.py Domain.dns_dmarc).
	cfg.DMARCRUA = r.reportLocalPart("DMARC_RUA", cfg.Postmaster)
	cfg.DMARCRUF = r.reportLocalPart("DMARC_RUF", cfg.Postmaster)

	r.secretKey(cfg)
	cfg.SiteName = r.str("SITENAME", "Mailu")
	// Mailu: core/admin/mailu/configuration.py WELCOME* defaults.
	cfg.Welcome = r.boolean("WELCOME", false)
	cfg.WelcomeSubject = r.str("WELCOME_SUBJECT", "Welcome to your new email account")
	cfg.WelcomeBody = r.str("WELCOME_BODY", "Welcome to your new email account, if you can read this, then it is configured properly!")
	cfg.Website = r.str("WEBSITE", "https://mailu.io")
}

// reportLocalPart reads a DMARC report local part. Characters that would
// break the record's mailto URI list (RFC 7489 6.4: "," separates URIs,
// "!" starts a size limit, ";" ends the tag) are refused.
func (r *reader) reportLocalPart(name, def string) string {
	v := r.str(name, def)
	if strings.ContainsAny(v, "@ \t\",;!") {
		r.errorf(name, v, "give only the local part, e.g. "+name+"=postmaster (the domain is DOMAIN)",
			"must be a local part without @, spaces, quotes, commas, semicolons or !")
		return def
	}
	return v
}

// secretOrFile reads the secret setting name, or the file that name_FILE
// names when name is unset (Mailu: socrate/system.py set_env). given is
// false when neither is set; ok is false also when the file could not be
// read or is empty (both reported, with readFix and emptyFix).
func (r *reader) secretOrFile(name, readFix, emptyFix string) (value string, given, ok bool) {
	fileName := name + "_FILE"
	key, hasKey := r.getRaw(name)
	file, hasFile := r.get(fileName)
	switch {
	case hasKey:
		if hasFile {
			r.warnf(fileName, file, "remove one of them", "ignored because %s is set", name)
		}
		return key, true, true
	case hasFile:
		data, err := os.ReadFile(file)
		if err != nil {
			r.errorf(fileName, file, readFix, "cannot read the file: %v", err)
			return "", true, false
		}
		value = strings.TrimSpace(string(data))
		if value == "" {
			r.errorf(fileName, file, emptyFix, "the file is empty")
			return "", true, false
		}
		return value, true, true
	}
	return "", false, false
}

// secretKey reads SECRET_KEY, or SECRET_KEY_FILE when SECRET_KEY is unset
// (Mailu: socrate/system.py set_env).
func (r *reader) secretKey(cfg *Config) {
	const fix = "set SECRET_KEY to 16 or more random characters (pwgen 16 1), or SECRET_KEY_FILE to a file holding them"
	key, given, ok := r.secretOrFile("SECRET_KEY", "point SECRET_KEY_FILE at a readable file holding the key", fix)
	if !given {
		r.warnf("SECRET_KEY", "", fix, "is not set: Petrel generates a random key in DATA_DIR/secret.key; set it explicitly when several nodes share one database")
		return
	}
	if !ok {
		return
	}
	cfg.SecretKey = key
	switch {
	case cfg.SecretKey == "changeMe":
		r.warnf("SECRET_KEY", "", fix, "is still Mailu's example value")
	case len(cfg.SecretKey) < 16:
		r.warnf("SECRET_KEY", "", fix, "is shorter than 16 characters")
	}
}

func (r *reader) petrel(cfg *Config) {
	cfg.DataDir = r.str("DATA_DIR", DefaultDataDir)

	cfg.LogLevel = strings.ToUpper(r.str("LOG_LEVEL", "INFO"))
	switch cfg.LogLevel {
	case "TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL":
	default:
		r.errorf("LOG_LEVEL", cfg.LogLevel, "use DEBUG, INFO, WARNING, ERROR or CRITICAL (TRACE adds protocol traces)",
			"unknown log level")
		cfg.LogLevel = "INFO"
	}

	cfg.LogFormat = strings.ToLower(r.str("LOG_FORMAT", "text"))
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		r.errorf("LOG_FORMAT", cfg.LogFormat, "use text or json", "unknown log format")
		cfg.LogFormat = "text"
	}
}

func (r *reader) tls(cfg *Config) {
	cfg.TLSFlavor = strings.ToLower(r.str("TLS_FLAVOR", "cert"))
	switch cfg.TLSFlavor {
	case "cert", "notls", "mail", "letsencrypt", "mail-letsencrypt":
	default:
		r.errorf("TLS_FLAVOR", cfg.TLSFlavor, "use cert, notls, mail, letsencrypt or mail-letsencrypt", "unknown TLS flavor")
		cfg.TLSFlavor = "cert"
	}
	cfg.TLSCertFilename = r.str("TLS_CERT_FILENAME", "cert.pem")
	cfg.TLSKeyFilename = r.str("TLS_KEYPAIR_FILENAME", "key.pem")
	cfg.TLSPermissive = r.boolean("TLS_PERMISSIVE", true)
	cfg.InboundTLSForce = r.boolean("INBOUND_TLS_ENFORCE", false)
	cfg.OutboundTLSLevel = strings.ToLower(r.str("OUTBOUND_TLS_LEVEL", "dane"))
	switch cfg.OutboundTLSLevel {
	case "may", "encrypt", "dane":
	default:
		r.errorf("OUTBOUND_TLS_LEVEL", cfg.OutboundTLSLevel, "use may, encrypt or dane (DANE and MTA-STS apply at every level)", "unsupported TLS level")
		cfg.OutboundTLSLevel = "dane"
	}
	cfg.DeferOnTLSError = r.boolean("DEFER_ON_TLS_ERROR", true)
	cfg.TLSRPTSend = r.boolean("TLSRPT_SEND", true)
	r.mtasts(cfg)
	r.acme(cfg)
}

// mtasts reads the settings of the MTA-STS policy Petrel serves for its
// domains (RFC 8461) and of the TLS-RPT reports it receives (RFC 8460).
func (r *reader) mtasts(cfg *Config) {
	cfg.MTASTSMode = strings.ToLower(strings.TrimSpace(r.str("MTA_STS_MODE", "testing")))
	switch cfg.MTASTSMode {
	case "none", "testing", "enforce":
	default:
		r.errorf("MTA_STS_MODE", cfg.MTASTSMode, "use none, testing or enforce", "unknown MTA-STS mode")
		cfg.MTASTSMode = "testing"
	}
	// RFC 8461 3.2: max_age is at most 31557600 (about a year).
	cfg.MTASTSMaxAge = r.integer("MTA_STS_MAX_AGE", 604800, 60, 31557600,
		"give the policy's lifetime in seconds, e.g. 604800 (one week)")
	cfg.TLSRPTRUA = r.reportLocalPart("TLSRPT_RUA", cfg.Postmaster)
	if strings.EqualFold(cfg.TLSRPTRUA, "none") {
		cfg.TLSRPTRUA = ""
	}
}

// acme reads the settings of TLS_FLAVOR=letsencrypt and mail-letsencrypt.
func (r *reader) acme(cfg *Config) {
	cfg.ACMEDirectory = strings.TrimSpace(r.str("ACME_DIRECTORY", DefaultACMEDirectory))
	if u, err := url.Parse(cfg.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		r.errorf("ACME_DIRECTORY", cfg.ACMEDirectory, "give the CA's ACME directory URL, e.g. "+DefaultACMEDirectory, "is not an https URL")
		cfg.ACMEDirectory = DefaultACMEDirectory
	}
	cfg.ACMECARoots = strings.TrimSpace(r.str("ACME_CA_ROOTS", ""))
	if f := cfg.ACMECARoots; f != "" {
		if _, err := os.Stat(f); err != nil {
			r.errorf("ACME_CA_ROOTS", f, "give a PEM file of the CA certificates that sign the ACME server's HTTPS certificate", "cannot read the file: %v", err)
			cfg.ACMECARoots = ""
		}
	}
	cfg.LetsencryptShortchain = r.boolean("LETSENCRYPT_SHORTCHAIN", false)
}

func (r *reader) limits(cfg *Config) {
	cfg.MessageSizeLimit = r.integer("MESSAGE_SIZE_LIMIT", 50000000, 1, 1<<40,
		"give the limit in bytes as a positive whole number, e.g. 50000000")
	// Postfix: queue_minfree defaults to 1.5 x message_size_limit.
	cfg.DiskReserve = r.integer("DISK_RESERVE", cfg.MessageSizeLimit*3/2, 0, 1<<50,
		"give the free space to keep in bytes as a whole number, e.g. 75000000, or 0 to switch the check off")
	cfg.MessageRateLimit = r.rate("MESSAGE_RATELIMIT", "200/day")
	cfg.MessageRateLimitExemption = r.addressList("MESSAGE_RATELIMIT_EXEMPTION")
	cfg.AuthRateLimitIP = r.rate("AUTH_RATELIMIT_IP", "5/hour")
	cfg.AuthRateLimitUser = r.rate("AUTH_RATELIMIT_USER", "50/day")
	cfg.AuthRateLimitUserNetwork = r.rate("AUTH_RATELIMIT_USER_NETWORK", "10/day")
	cfg.AuthRateLimitIPv4Mask = int(r.integer("AUTH_RATELIMIT_IP_V4_MASK", 24, 0, 32, "use a prefix length from 0 to 32, e.g. 24"))
	cfg.AuthRateLimitIPv6Mask = int(r.integer("AUTH_RATELIMIT_IP_V6_MASK", 48, 0, 128, "use a prefix length from 0 to 128, e.g. 48"))
	cfg.AuthRateLimitExemption = r.prefixList("AUTH_RATELIMIT_EXEMPTION")
	cfg.AuthRateLimitExemptionLen = time.Duration(r.integer("AUTH_RATELIMIT_EXEMPTION_LENGTH", 86400, 0, 100*365*86400,
		"give seconds as a whole number, e.g. 86400")) * time.Second
	cfg.AuthRequireTokens = r.boolean("AUTH_REQUIRE_TOKENS", false)
}

func (r *reader) mailFlow(cfg *Config) {
	cfg.RelayNets = r.prefixList("RELAYNETS")
	r.relayHost(cfg)

	cfg.RecipientDelimiter = r.str("RECIPIENT_DELIMITER", "")
	for _, c := range cfg.RecipientDelimiter {
		if c <= ' ' || c == 0x7f || c == '@' || c == '"' || c == '\\' || c == ',' {
			r.errorf("RECIPIENT_DELIMITER", cfg.RecipientDelimiter,
				"use one or more delimiter characters such as + or +-",
				"%q cannot be a delimiter", c)
			cfg.RecipientDelimiter = ""
			break
		}
	}

	cfg.DefaultQuota = r.integer("DEFAULT_QUOTA", 1000000000, 0, 1<<62, "give bytes as a whole number, e.g. 1000000000 (0 = unlimited)")
	cfg.DefaultSpamThreshold = int(r.integer("DEFAULT_SPAM_THRESHOLD", 80, 0, 100, "give a percentage from 0 to 100, e.g. 80"))
	cfg.CredentialRounds = int(r.integer("CREDENTIAL_ROUNDS", 12, 4, 31, "use a bcrypt cost from 4 to 31; Mailu's default is 12"))
	cfg.WildcardSenders = r.addressList("WILDCARD_SENDERS")
	cfg.RejectUnlistedRecipient = r.boolean("REJECT_UNLISTED_RECIPIENT", false)

	cfg.DKIMSelector = r.str("DKIM_SELECTOR", "dkim")
	for _, c := range cfg.DKIMSelector {
		if !(c == '-' || c == '.' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			r.errorf("DKIM_SELECTOR", cfg.DKIMSelector, "use letters, digits and hyphens, e.g. dkim", "not a DNS label")
			cfg.DKIMSelector = "dkim"
			break
		}
	}
	cfg.DKIMPath = r.str("DKIM_PATH", filepath.Join(cfg.DataDir, "dkim", "{domain}.{selector}.key"))
	_, cfg.DKIMPathSet = r.get("DKIM_PATH")
	if !strings.Contains(cfg.DKIMPath, "{domain}") {
		r.warnf("DKIM_PATH", cfg.DKIMPath, "include {domain} (and {selector}) in the path",
			"has no {domain}: every domain would sign with the same key file")
	}

	r.resolver(cfg)

	// Postfix defaults that Mailu keeps: maximal_queue_lifetime 5d, and
	// Mailu's delay_warning_time 5m (main.cf).
	cfg.QueueLifetime = r.duration("QUEUE_LIFETIME", 5*24*time.Hour, time.Minute, "give a duration such as 5d, 36h or 90m")
	cfg.QueueLease = r.duration("QUEUE_LEASE", 2*time.Minute, time.Second, "give a duration such as 2m or 30s")
	cfg.DelayWarningTime = r.duration("DELAY_WARNING_TIME", 5*time.Minute, 0, "give a duration such as 5m or 4h (0 = no delay notices)")
	cfg.InboundDNSTimeout = r.duration("INBOUND_DNS_TIMEOUT", 10*time.Second, 100*time.Millisecond, "give a duration such as 10s or 2s")
}

// duration reads a Go duration that may also use d for days ("5d", "1d12h").
func (r *reader) duration(name string, def, lo time.Duration, fix string) time.Duration {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	d, err := parseDuration(v)
	if err != nil || d < lo {
		r.errorf(name, v, fix, "not a duration of at least %s", lo)
		return def
	}
	return d
}

// parseDuration is time.ParseDuration plus a leading whole number of days.
func parseDuration(v string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(v, 'd'); i > 0 {
		n, err := strconv.Atoi(v[:i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad day count %q", v[:i])
		}
		days = time.Duration(n) * 24 * time.Hour
		v = v[i+1:]
		if v == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	return days + d, nil
}

// metrics reads METRICS*: off by default; when on, loopback may scrape
// without a token unless METRICS_NETWORKS says otherwise.
func (r *reader) metrics(cfg *Config) {
	cfg.Metrics = r.boolean("METRICS", false)
	if tok, ok := r.getRaw("METRICS_TOKEN"); ok {
		cfg.MetricsToken = tok
		if cfg.Metrics && len(strings.TrimSpace(tok)) < 16 {
			r.errorf("METRICS_TOKEN", "", "set METRICS_TOKEN to a long random string (pwgen 32 1)", "is shorter than 16 characters")
		}
	}
	if addr, ok := r.get("METRICS_ADDRESS"); ok {
		host, port, err := net.SplitHostPort(addr)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil || perr != nil || n < 1 || n > 65535:
			r.errorf("METRICS_ADDRESS", addr, "give host:port, for example 127.0.0.1:9154", "is not a host:port")
		case !cfg.Metrics:
			r.warnf("METRICS_ADDRESS", addr, "set METRICS=true, or unset METRICS_ADDRESS", "is set but METRICS is off: nothing is served there")
		default:
			if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
				r.warnf("METRICS_ADDRESS", addr, "listen on 127.0.0.1 or a private address", "listens on every interface; metrics are meant for loopback or a private network")
			}
		}
		cfg.MetricsAddress = addr
	}
	r.seen["METRICS_NETWORKS"] = true
	if _, set := r.env["METRICS_NETWORKS"]; set { // set but empty: the token only
		cfg.MetricsNetworks = r.prefixList("METRICS_NETWORKS")
	} else {
		cfg.MetricsNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
}

func (r *reader) api(cfg *Config) {
	cfg.API = r.boolean("API", false)
	token, ok := r.getRaw("API_TOKEN")
	if ok {
		cfg.APIToken = token
	}
	if cfg.API && !ok {
		r.errorf("API_TOKEN", "", "set API_TOKEN to a long random string (pwgen 32 1), or API=false",
			"is required when API=true")
	} else if cfg.API && len(strings.TrimSpace(token)) < 4 {
		// Mailu: api/common.py refuses tokens shorter than 4 characters.
		r.errorf("API_TOKEN", "", "set API_TOKEN to a long random string (pwgen 32 1), or API=false",
			"is shorter than 4 characters, so no token can match")
	}
	cfg.WebAPI = r.webPath("WEB_API", "/api")
	cfg.WebAdmin = r.webPath("WEB_ADMIN", "/admin")
	if cfg.WebAPI == cfg.WebAdmin {
		r.errorf("WEB_API", cfg.WebAPI, "give WEB_API and WEB_ADMIN different paths", "is the same path as WEB_ADMIN")
	}
	cfg.WebrootRedirect = strings.TrimSpace(r.str("WEBROOT_REDIRECT", ""))
	if v := cfg.WebrootRedirect; v != "" && !strings.EqualFold(v, "none") && !strings.HasPrefix(v, "/") &&
		!strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
		r.errorf("WEBROOT_REDIRECT", v, "use a path such as /admin, a URL, or none", "is neither a path nor a URL")
		cfg.WebrootRedirect = ""
	}
	if strings.EqualFold(cfg.WebrootRedirect, "/webmail") {
		r.warnf("WEBROOT_REDIRECT", cfg.WebrootRedirect, "set WEBROOT_REDIRECT to "+cfg.WebAdmin+" or none",
			"Petrel has no webmail; / redirects to WEB_ADMIN instead")
		cfg.WebrootRedirect = ""
	}
	cfg.RealIPHeader = strings.TrimSpace(r.str("REAL_IP_HEADER", ""))
	cfg.RealIPFrom = r.prefixList("REAL_IP_FROM")
	if cfg.RealIPHeader != "" && len(cfg.RealIPFrom) == 0 {
		r.warnf("REAL_IP_HEADER", cfg.RealIPHeader, "list your proxies in REAL_IP_FROM",
			"is ignored without REAL_IP_FROM: a header from anyone would let clients choose their address")
	}
	r.proxyProtocol(cfg)
	if strings.ContainsAny(cfg.RealIPHeader, " :\t") {
		r.errorf("REAL_IP_HEADER", cfg.RealIPHeader, "give a header name such as X-Forwarded-For or X-Real-IP", "is not a header name")
		cfg.RealIPHeader = ""
	}
}

// webPath reads a URL path setting: it must start with / and not be / itself.
func (r *reader) webPath(name, def string) string {
	v := strings.TrimSpace(r.str(name, def))
	p := "/" + strings.Trim(v, "/")
	if !strings.HasPrefix(v, "/") || p == "/" || strings.ContainsAny(v, " ?#{}") {
		r.errorf(name, v, "use a path such as "+def, "is not a path below /")
		return def
	}
	return p
}

func (r *reader) bootstrap(cfg *Config) {
	cfg.InitialAdminMode = strings.ToLower(r.str("INITIAL_ADMIN_MODE", "ifmissing"))
	switch cfg.InitialAdminMode {
	case "create", "ifmissing", "update":
	default:
		r.errorf("INITIAL_ADMIN_MODE", cfg.InitialAdminMode, "use ifmissing, create or update", "unknown mode")
		cfg.InitialAdminMode = "ifmissing"
	}
	account, hasAccount := r.get("INITIAL_ADMIN_ACCOUNT")
	domain, hasDomain := r.get("INITIAL_ADMIN_DOMAIN")
	pw, hasPw := r.getRaw("INITIAL_ADMIN_PW")
	if !hasAccount && !hasDomain && !hasPw {
		return
	}
	const fix = "set all three of INITIAL_ADMIN_ACCOUNT, INITIAL_ADMIN_DOMAIN and INITIAL_ADMIN_PW, or none"
	missing := false
	for _, m := range []struct {
		name string
		set  bool
	}{{"INITIAL_ADMIN_ACCOUNT", hasAccount}, {"INITIAL_ADMIN_DOMAIN", hasDomain}, {"INITIAL_ADMIN_PW", hasPw}} {
		if !m.set {
			r.errorf(m.name, "", fix, "is required when any INITIAL_ADMIN_* setting is given")
			missing = true
		}
	}
	if hasAccount && strings.ContainsAny(account, "@ \t\"") {
		r.errorf("INITIAL_ADMIN_ACCOUNT", account, "give only the local part, e.g. admin (the domain goes in INITIAL_ADMIN_DOMAIN)",
			"must be a local part without @, spaces or quotes")
		missing = true
	}
	d := ""
	if hasDomain {
		var err error
		if d, err = mailaddr.NormalizeDomain(domain); err != nil {
			r.errorf("INITIAL_ADMIN_DOMAIN", domain, "use a domain name such as example.com", "not a valid domain name: %v", err)
			missing = true
		}
	}
	if missing {
		return
	}
	cfg.InitialAdminAccount = strings.ToLower(account)
	cfg.InitialAdminDomain = d
	cfg.InitialAdminPw = pw
}

// splitList splits a comma list, trimming items and dropping empty ones.
func splitList(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// addressList reads a comma list of e-mail addresses, normalised
// (lower-case, IDNA domain) as Mailu compares them.
func (r *reader) addressList(name string) []string {
	v, ok := r.get(name)
	if !ok {
		return nil
	}
	var out []string
	for _, a := range splitList(v) {
		n, err := mailaddr.Normalize(a)
		if err != nil {
			r.errorf(name, v, "use a comma list of full addresses such as admin@example.com,ops@example.com",
				"%q is not an e-mail address: %v", a, err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// fullText reads Mailu's full-text search settings. Mailu (dovecot.conf)
// indexes unless FULL_TEXT_SEARCH is off, false or 0, and reads the value
// as a list of languages for stemming. Petrel's index keeps words as
// written, in every language, so any other value just means on.
func (r *reader) fullText(cfg *Config) {
	cfg.FullTextSearch = true
	if v, ok := r.get("FULL_TEXT_SEARCH"); ok {
		if on, isBool := parseBool(strings.TrimSpace(v)); isBool && !on {
			cfg.FullTextSearch = false
		}
	}
	cfg.FullTextAttachments = r.boolean("FULL_TEXT_SEARCH_ATTACHMENTS", false)
}
