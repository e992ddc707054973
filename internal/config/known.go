package config

// SettingDoc documents one setting for the README table and
// `petrel config-check --list`.
type SettingDoc struct {
	Name        string // environment name; "LISTEN_<port>" stands for LISTEN_25, LISTEN_465, ...
	Default     string // the default Petrel uses ("" = empty/unset)
	Meaning     string // what it does
	Differs     string // how Petrel differs from Mailu; "" = same as Mailu
	Implemented bool   // false: Mailu setting Petrel only warns about
	Secret      bool   // its value is never printed
}

// Known lists every setting Parse reads: Petrel's own and Mailu's, the
// implemented ones first, then those Petrel only warns about.
func Known() []SettingDoc {
	docs := implementedSettings()
	for _, s := range notImplementedSettings() {
		def := s.Default
		docs = append(docs, SettingDoc{
			Name:    s.Name,
			Default: def,
			Meaning: s.Meaning,
			Differs: "not implemented: " + s.Note,
			Secret:  isSecret(s.Name),
		})
	}
	for i := range docs {
		docs[i].Secret = docs[i].Secret || isSecret(docs[i].Name)
	}
	return docs
}

func implementedSettings() []SettingDoc {
	s := func(name, def, meaning, differs string) SettingDoc {
		return SettingDoc{Name: name, Default: def, Meaning: meaning, Differs: differs, Implemented: true}
	}
	docs := []SettingDoc{
		// Identity
		s("DOMAIN", "", "main mail domain: postmaster, SRS and report addresses", "required (Mailu's code default mailu.io is not used)"),
		s("HOSTNAMES", "", "comma list of the server's public names; the first is the SMTP banner and MX host", "required"),
		s("POSTMASTER", "postmaster", "local part of postmaster@DOMAIN", ""),
		s("DMARC_RUA", "POSTMASTER", "local part at DOMAIN for DMARC aggregate reports in the DMARC record petrel dns suggests", "default POSTMASTER, as Mailu's setup writes (Mailu's code default: no rua tag)"),
		s("DMARC_RUF", "POSTMASTER", "local part at DOMAIN for DMARC failure reports in the suggested DMARC record", "default POSTMASTER, as Mailu's setup writes (Mailu's code default: no ruf tag)"),
		s("SECRET_KEY", "", "master secret; sub-keys for SRS, tokens and log hashes derive from it", "no default: a warning when unset (Mailu: changeMe)"),
		s("SECRET_KEY_FILE", "", "file holding SECRET_KEY (read when SECRET_KEY is unset)", ""),
		s("SITENAME", "Mailu", "name shown to users", ""),
		s("WELCOME", "false", "send every new user a welcome message to their INBOX, once, at creation", ""),
		s("WELCOME_SUBJECT", "Welcome to your new email account", "subject of the welcome message", ""),
		s("WELCOME_BODY", "Welcome to your new email account, if you can read this, then it is configured properly!", "body of the welcome message (plain text)", ""),
		s("WEBSITE", "https://mailu.io", "link shown to users", ""),

		// Petrel's own
		s("DATA_DIR", DefaultDataDir, "directory for the SQLite database, messages, certificates and DKIM keys", "Petrel only (Mailu uses container volumes)"),
		s("BIND_ADDRESS", "", "IP address every listener binds to; empty = all addresses", "Petrel only"),
		s("LISTEN_<port>", "BIND_ADDRESS:<port>", "host:port for one role, e.g. LISTEN_25=127.0.0.1:2525", "Petrel only"),
		s("LOG_LEVEL", "INFO", "log threshold: DEBUG, INFO, WARNING, ERROR, CRITICAL", "also TRACE: every SMTP, IMAP and POP3 protocol line, with the connection id (passwords and AUTH data redacted, message contents summarised)"),
		s("LOG_FORMAT", "text", "log format: text or json", "Petrel only"),
		s("QUEUE_LEASE", "2m", "how long a node holds a claimed outbound queue entry between renewals; a node that dies gives its entries to another node after this", "Petrel only (several nodes on one PostgreSQL)"),
		s("QUEUE_LIFETIME", "5d", "how long outbound mail is retried before it bounces (e.g. 5d, 36h)", "Petrel only (Postfix maximal_queue_lifetime)"),
		s("DELAY_WARNING_TIME", "5m", "when the sender gets a delay notice for mail still queued; 0 = never", "Petrel only (Mailu sets Postfix delay_warning_time=5m)"),
		s("RESOLVER_ADDRESS", "", "DNS server (IP[:port]) for MX, SPF, DKIM and DMARC lookups; empty = the system resolver", ""),
		s("INBOUND_DNS_TIMEOUT", "10s", "DNS time budget per inbound message for its SPF, DKIM, DMARC and iprev checks; a look-up still running then is a temperror", "Petrel only (Mailu leaves it to rspamd's dns timeouts)"),

		// TLS and ports
		s("TLS_FLAVOR", "cert", "certificate source: cert, notls, mail, letsencrypt, mail-letsencrypt", "a self-signed certificate is made when none exists (and served under letsencrypt until the CA has issued); letsencrypt gets one ECDSA and one RSA certificate per HOSTNAMES entry (Mailu: one certificate with every name) through HTTP-01 on port 80 or TLS-ALPN-01 on 443, kept in the database so every node shares them"),
		s("ACME_DIRECTORY", DefaultACMEDirectory, "ACME directory URL of the CA for TLS_FLAVOR=letsencrypt and mail-letsencrypt (the account is POSTMASTER@DOMAIN)", "Petrel only (Mailu always uses Let's Encrypt); for a private or test CA"),
		s("ACME_CA_ROOTS", "", "PEM file of the CAs that sign the ACME server's own HTTPS certificate; empty = the system's", "Petrel only"),
		s("LETSENCRYPT_SHORTCHAIN", "false", "serve the chain without its last certificate when it has more than two (the cross-signed root)", ""),
		s("TLS_CERT_FILENAME", "cert.pem", "certificate file (full chain) in DATA_DIR/certs", "DATA_DIR/certs instead of /certs"),
		s("TLS_KEYPAIR_FILENAME", "key.pem", "private key file in DATA_DIR/certs", "DATA_DIR/certs instead of /certs"),
		s("TLS_PERMISSIVE", "true", "allow legacy TLS versions and ciphers on port 25", ""),
		s("INBOUND_TLS_ENFORCE", "false", "require STARTTLS on port 25", ""),
		s("PORTS", DefaultPorts, "enabled ports; add 587,143,110 for the STARTTLS ports. 25 is always on; 465, 993 and 443 follow TLS", ""),
		s("TLS", DefaultPorts, "ports that get implicit TLS (443, 465, 993, 995); undocumented in Mailu", ""),

		// Limits
		s("MESSAGE_SIZE_LIMIT", "50000000", "largest message in bytes", ""),
		s("DISK_RESERVE", "1.5 x MESSAGE_SIZE_LIMIT", "bytes that must stay free on DATA_DIR's filesystem; below it new mail gets SMTP 452 4.3.1 and IMAP APPEND NO [OVERQUOTA], while deletions and the queue go on; 0 = off", "Petrel only (Postfix queue_minfree)"),
		s("MESSAGE_RATELIMIT", "200/day", "messages a user may send", "one rate only; further rates after , ; or | are ignored with a warning"),
		s("MESSAGE_RATELIMIT_EXEMPTION", "", "comma list of users exempt from MESSAGE_RATELIMIT", ""),
		s("AUTH_RATELIMIT_IP", "5/hour", "distinct failed usernames per client network", "one rate only"),
		s("AUTH_RATELIMIT_USER", "50/day", "distinct failed passwords per account; when spent, only networks the account has logged in from get in", "one rate only"),
		s("AUTH_RATELIMIT_USER_NETWORK", "10/day", "distinct failed passwords per account from one client network (Petrel: one network cannot lock the owner out)", "one rate only"),
		s("AUTH_RATELIMIT_IP_V4_MASK", "24", "IPv4 prefix length that groups clients", ""),
		s("AUTH_RATELIMIT_IP_V6_MASK", "48", "IPv6 prefix length that groups clients", ""),
		s("AUTH_RATELIMIT_EXEMPTION", "", "comma list of networks never rate-limited", ""),
		s("AUTH_RATELIMIT_EXEMPTION_LENGTH", "86400", "seconds an address stays exempt, for the account that logged in, after a successful login", ""),
		s("AUTH_REQUIRE_TOKENS", "false", "IMAP, POP3, SMTP and sieve accept only app tokens, not passwords", ""),

		// Mail flow
		s("RELAYNETS", "", "comma list of networks that may relay through port 25 without login", ""),
		s("OUTBOUND_TLS_LEVEL", "dane", "TLS to MX hosts without a DANE or MTA-STS policy: may (STARTTLS when offered), encrypt (STARTTLS required) or dane (as may; DANE and MTA-STS apply at every level)", "Postfix's other levels (dane-only, verify, secure) are refused"),
		s("DEFER_ON_TLS_ERROR", "true", "trust DNSSEC-signed TLSA records even behind an unsigned MX answer, and enforce MTA-STS policies in testing mode; false = DANE only with a signed MX, testing mode delivers and only reports", ""),
		s("TLSRPT_SEND", "true", "send daily TLS-RPT (RFC 8460) reports to recipient domains that publish an _smtp._tls record", "Petrel only (Mailu sends none)"),
		s("MTA_STS_MODE", "testing", "mode of the MTA-STS policy (RFC 8461) served at https://mta-sts.<domain>/.well-known/mta-sts.txt for every local domain, listing HOSTNAMES as MX (but for mta-sts., autoconfig. and autodiscover. names): none, testing or enforce; petrel dns prints its _mta-sts record, whose id changes with the policy. The HTTPS certificate must cover mta-sts.<domain>: under letsencrypt only if mta-sts.<domain> is listed in HOSTNAMES", "Petrel only (Mailu serves no MTA-STS policy)"),
		s("MTA_STS_MAX_AGE", "604800", "max_age of the served MTA-STS policy, in seconds (60..31557600)", "Petrel only"),
		s("TLSRPT_RUA", "POSTMASTER", "local part at DOMAIN in the _smtp._tls record petrel dns suggests; TLS-RPT reports (RFC 8460) delivered to that address are parsed and shown by petrel tlsrpt; none = no record", "Petrel only"),
		s("RELAYHOST", "", "smarthost for all outbound mail: [host]:port, host:port or host", ""),
		s("RELAYUSER", "", "login for RELAYHOST", ""),
		s("RELAYPASSWORD", "", "password for RELAYHOST", ""),
		s("RELAYHOST_CA_FILE", "", "PEM file of CA certificates trusted for RELAYHOST's certificate, besides the system's (a private or self-signed relay)", "Petrel only (Mailu's Postfix does not verify RELAYHOST)"),
		s("RELAYHOST_TLS_VERIFY", "true", "verify RELAYHOST's certificate; false = encrypt without verifying, as Mailu does (open to a man in the middle; logged as a warning at start)", "Petrel verifies by default; Mailu encrypts without verifying"),
		s("RECIPIENT_DELIMITER", "", "characters that start a subaddress, e.g. +", "template writes +; the code default is empty, as here"),
		s("DEFAULT_QUOTA", "1000000000", "quota in bytes for new users", ""),
		s("DEFAULT_SPAM_THRESHOLD", "80", "spam threshold (%) for new users", ""),
		s("CREDENTIAL_ROUNDS", "12", "bcrypt cost for new password hashes", ""),
		s("WILDCARD_SENDERS", "", "comma list of users who may send as any address", ""),
		s("REJECT_UNLISTED_RECIPIENT", "false", "reject unknown local recipients on submission instead of bouncing", ""),
		s("DKIM_SELECTOR", "dkim", "DKIM selector", ""),
		s("DKIM_PATH", "DATA_DIR/dkim/{domain}.{selector}.key", "DKIM key files to import: a key found there that the store lacks is imported at start; when set explicitly, keys written to the store are written there too", "keys live in the store (shared by every node); the files are the import and export format"),
	}
	docs = append(docs, filterSettingDocs()...)
	return append(docs, []SettingDoc{

		// Database
		s("DB_FLAVOR", "sqlite", "database: sqlite or postgresql", "mysql is not supported"),
		s("DB_HOST", "", "PostgreSQL host (host or host:port)", "required for postgresql (Mailu's default host name 'database' is not assumed)"),
		s("DB_PORT", "5432", "PostgreSQL port", "Petrel only; Mailu puts the port in DB_HOST, which works too"),
		s("DB_USER", "", "PostgreSQL user", "required for postgresql"),
		s("DB_PW", "", "PostgreSQL password", ""),
		s("DB_NAME", "mailu", "PostgreSQL database", ""),
		s("SQLALCHEMY_DATABASE_URI", "", "database URL, used when DB_FLAVOR is unset", "sqlite:// URIs must point at DATA_DIR/main.db"),

		// Message bodies in an S3-compatible object store (docs/shared-state.md)
		s("BLOB_S3_ENDPOINT", "", "S3-compatible object store (host[:port], or an http:// or https:// URL) for message bodies over the inline limit; empty: blob files (SQLite) or rows (PostgreSQL)", "Petrel only"),
		s("BLOB_S3_BUCKET", "", "bucket for the bodies (must exist; objects under bodies/)", "Petrel only; required with BLOB_S3_ENDPOINT"),
		s("BLOB_S3_ACCESS_KEY", "", "access key id for the bucket", "Petrel only"),
		s("BLOB_S3_SECRET_KEY", "", "secret access key for the bucket (never logged)", "Petrel only"),
		s("BLOB_S3_SECRET_KEY_FILE", "", "file holding BLOB_S3_SECRET_KEY (read when BLOB_S3_SECRET_KEY is unset)", "Petrel only"),
		s("BLOB_S3_REGION", "", "region of the bucket (empty: the store's default, us-east-1 on most)", "Petrel only"),
		s("BLOB_S3_TLS", "true", "talk HTTPS to BLOB_S3_ENDPOINT (a URL's scheme wins)", "Petrel only"),

		// Bootstrap
		s("INITIAL_ADMIN_ACCOUNT", "", "local part of an admin created at start", ""),
		s("INITIAL_ADMIN_DOMAIN", "", "domain of that admin", ""),
		s("INITIAL_ADMIN_PW", "", "password of that admin", ""),
		s("INITIAL_ADMIN_MODE", "ifmissing", "ifmissing, create or update", ""),

		// API
		s("API", "false", "enable the REST API", ""),
		s("API_TOKEN", "", "bearer token for the REST API (Authorization: Bearer TOKEN)", "required when API=true; at least 4 characters"),
		s("METRICS", "false", "serve Prometheus metrics at /metrics on the HTTP ports", "petrel extension: Mailu has no metrics"),
		s("METRICS_TOKEN", "", "bearer token a scraper sends (Authorization: Bearer TOKEN)", "at least 16 characters"),
		s("METRICS_ADDRESS", "", "host:port of a plain HTTP listener of its own serving /metrics (with METRICS=true), for loopback or a private network; the same METRICS_TOKEN and METRICS_NETWORKS rules apply", "empty: /metrics only on the HTTP ports"),
		s("METRICS_NETWORKS", "127.0.0.0/8,::1/128", "networks that may scrape /metrics without the token", "empty: the token only"),
		s("FETCHMAIL_ENABLED", "false", "fetch mail from users' remote accounts (IMAP, POP3) and show the fetched accounts pages", ""),
		s("FETCHMAIL_DELAY", "600", "seconds between two polls of each fetched account", ""),
		s("WEB_API", "/api", "path of the REST API (WEB_API/v1/...)", ""),
		s("WEB_ADMIN", "/admin", "path of the admin web UI", ""),
		s("WEBROOT_REDIRECT", "WEB_ADMIN", "where / redirects (a path or URL), or none", "default WEB_ADMIN (Petrel has no webmail; /webmail means WEB_ADMIN)"),
		s("REAL_IP_HEADER", "", "HTTP header holding the client address set by a proxy (X-Forwarded-For, X-Real-IP)", "only honoured from REAL_IP_FROM"),
		s("REAL_IP_FROM", "", "comma list of proxy networks whose REAL_IP_HEADER is believed, and who may send PROXY headers", ""),
		s("PROXY_PROTOCOL", "", "ports that take the PROXY protocol (v1 and v2) from REAL_IP_FROM: port numbers, mail, all-but-http or all", "a connection on such a port from elsewhere, or with a bad header, is logged and closed; the address in the header is the client's for logs, limits, RELAYNETS, SPF and Received"),

		// Full-text search
		s("FULL_TEXT_SEARCH", "en", "IMAP SEARCH BODY and TEXT use a word index of the messages' decoded text (charsets, quoted-printable, base64, HTML reduced to text), built in the background; off, false, 0 or no switches it off", "no stemming: any other value (Mailu: languages) means on, and words are kept as written; \\Junk and \\Trash are not indexed (searched by reading); SQLite FTS5 or posting lists on PostgreSQL instead of Dovecot's flatcurve; answers stay IMAP substring matches (docs/search.md)"),
		s("FULL_TEXT_SEARCH_ATTACHMENTS", "false", "also index (and let BODY and TEXT match) text/* parts sent as attachments, and the text of office documents (docx, xlsx, pptx, odt, ods, odp)", "built in, no Tika; PDF and the old binary doc/xls/ppt are not indexed"),

		// Web UI
		s("ADMIN", "true", "serve the admin web UI at WEB_ADMIN (sign-in at /sso/login); false or none switches it off", "Mailu's setup always writes ADMIN=true; Petrel serves the UI unless told not to"),
		s("SESSION_COOKIE_SECURE", "true", "Secure flag on the web session cookie", "always off with TLS_FLAVOR=notls"),
		s("SESSION_TIMEOUT", "3600", "seconds a web session may stay idle", "sessions ticked \"remember me\" are not ended by idleness"),
		s("PERMANENT_SESSION_LIFETIME", "2592000", "longest life of a web session in seconds, and of a \"remember me\" cookie", ""),
		s("LOGO_URL", "", "URL of a logo shown in the web UI header", ""),
		s("LOGO_BACKGROUND", "", "colour of the web UI header behind the logo", "a CSS colour: #rgb, #rrggbb, a name, rgb() or hsl()"),

		// Ignored on purpose
		s("COMPOSE_PROJECT_NAME", "mailu", "docker compose project name", "ignored: not read by Petrel"),
	}...)
}
