// Package config turns the environment (Mailu's setting names) into a typed
// Config. Of Petrel's packages it imports only internal/mailaddr (a leaf), so
// that settings and runtime agree on what a valid domain or address is.
package config

import (
	"net/netip"
	"time"
)

// Rate is a Mailu rate limit such as "5/hour", "200/day" or "10 per minute":
// at most Count events in any moving window of length Per.
type Rate struct {
	Count int
	Per   time.Duration
}

// RelayTarget is RELAYHOST in Postfix's syntax: "[host]:port" connects to
// host directly, "host" or "host:port" looks up host's MX records first.
type RelayTarget struct {
	Host string // normalised host name or IP address, without brackets
	Port int    // 25 unless given
	MX   bool   // look up MX records for Host (no brackets in RELAYHOST)
}

// Listener says where one role listens.
type Listener struct {
	Port    int    // Mailu's port number naming the role: 25, 465, 587, 993, 143, 995, 110, 4190, 80, 443
	Enabled bool   // from PORTS (port 25 is always on)
	Addr    string // host:port to listen on (LISTEN_<port>, else BIND_ADDRESS:port)
}

// Config is every setting Petrel reads. Field comments give the environment
// name and Mailu's default.
type Config struct {
	// Identity
	Domain     string   // DOMAIN (required)
	Hostnames  []string // HOSTNAMES (required), comma list; first = SMTP banner
	Postmaster string   // POSTMASTER, default "postmaster"
	DMARCRUA   string   // DMARC_RUA, local part at DOMAIN for aggregate reports in the suggested DMARC record, default POSTMASTER
	DMARCRUF   string   // DMARC_RUF, local part at DOMAIN for failure reports, default POSTMASTER
	SecretKey  string   // SECRET_KEY or the contents of SECRET_KEY_FILE
	SiteName   string   // SITENAME, default "Mailu"

	Welcome        bool   // WELCOME: new users get a welcome message
	WelcomeSubject string // WELCOME_SUBJECT
	WelcomeBody    string // WELCOME_BODY
	Website        string // WEBSITE, default "https://mailu.io"

	// Petrel's own settings (one binary instead of containers)
	DataDir     string           // DATA_DIR, default "/var/lib/petrel"
	BindAddress string           // BIND_ADDRESS, default "" (all addresses)
	Listeners   map[int]Listener // from PORTS, TLS, LISTEN_<port>, BIND_ADDRESS
	LogLevel    string           // LOG_LEVEL, default "INFO" (TRACE, DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL), upper-cased
	LogFormat   string           // LOG_FORMAT, "text" (default) or "json", lower-cased

	// TLS
	TLSFlavor       string // TLS_FLAVOR as configured, lower-cased: cert (default), notls, mail, letsencrypt, mail-letsencrypt
	TLSCertFilename string // TLS_CERT_FILENAME, default cert.pem (under DataDir/certs)
	TLSKeyFilename  string // TLS_KEYPAIR_FILENAME, default key.pem
	TLSPermissive   bool   // TLS_PERMISSIVE, default true: legacy TLS versions on port 25
	InboundTLSForce bool   // INBOUND_TLS_ENFORCE, default false
	// ACME (TLS_FLAVOR letsencrypt and mail-letsencrypt)
	ACMEDirectory         string // ACME_DIRECTORY: the CA's directory URL, default Let's Encrypt production
	ACMECARoots           string // ACME_CA_ROOTS: PEM file trusted for the ACME server's HTTPS; "" = the system's
	LetsencryptShortchain bool   // LETSENCRYPT_SHORTCHAIN: drop the last certificate of a chain longer than two
	// PROXY protocol (HAProxy v1/v2) in front of the listeners
	ProxyProtocol []int // PROXY_PROTOCOL: ports that expect a PROXY header from REAL_IP_FROM
	Ports         []int // PORTS, default 25,80,443,465,993,995,4190
	TLSPorts      []int // TLS, default = PORTS default list

	// Limits
	MessageSizeLimit          int64          // MESSAGE_SIZE_LIMIT, default 50000000
	DiskReserve               int64          // DISK_RESERVE: bytes kept free on DATA_DIR's filesystem; default 1.5 x MESSAGE_SIZE_LIMIT, 0 = off
	MessageRateLimit          Rate           // MESSAGE_RATELIMIT, default 200/day
	MessageRateLimitExemption []string       // MESSAGE_RATELIMIT_EXEMPTION, comma list of user emails
	AuthRateLimitIP           Rate           // AUTH_RATELIMIT_IP, default 5/hour
	AuthRateLimitUser         Rate           // AUTH_RATELIMIT_USER, default 50/day
	AuthRateLimitUserNetwork  Rate           // AUTH_RATELIMIT_USER_NETWORK, default 10/day
	AuthRateLimitIPv4Mask     int            // AUTH_RATELIMIT_IP_V4_MASK, default 24
	AuthRateLimitIPv6Mask     int            // AUTH_RATELIMIT_IP_V6_MASK, default 48
	AuthRateLimitExemption    []netip.Prefix // AUTH_RATELIMIT_EXEMPTION, comma list of CIDRs
	AuthRateLimitExemptionLen time.Duration  // AUTH_RATELIMIT_EXEMPTION_LENGTH, seconds, default 86400
	AuthRequireTokens         bool           // AUTH_REQUIRE_TOKENS, default false

	// Mail flow
	RelayNets               []netip.Prefix // RELAYNETS, comma list of CIDRs
	RelayHost               string         // RELAYHOST, e.g. [smtp.example.com]:587
	Relay                   RelayTarget    // RELAYHOST parsed; Host is "" when RELAYHOST is unset
	RelayUser               string         // RELAYUSER
	RelayPassword           string         // RELAYPASSWORD (never logged)
	RelayCAFile             string         // RELAYHOST_CA_FILE: PEM certificates trusted for RELAYHOST, besides the system's
	RelayTLSVerify          bool           // RELAYHOST_TLS_VERIFY, default true; false = Mailu's encrypt-without-verifying
	RecipientDelimiter      string         // RECIPIENT_DELIMITER, a set of characters, default "" (Mailu template: "+")
	DefaultQuota            int64          // DEFAULT_QUOTA, default 1000000000
	DefaultSpamThreshold    int            // DEFAULT_SPAM_THRESHOLD, default 80
	CredentialRounds        int            // CREDENTIAL_ROUNDS, default 12 (bcrypt cost)
	WildcardSenders         []string       // WILDCARD_SENDERS, comma list of user emails
	RejectUnlistedRecipient bool           // REJECT_UNLISTED_RECIPIENT, default false
	DKIMSelector            string         // DKIM_SELECTOR, default "dkim"
	DKIMPath                string         // DKIM_PATH, default DataDir/dkim/{domain}.{selector}.key
	DKIMPathSet             bool           // DKIM_PATH was given: keys are also written there (docs/dkim)
	ResolverAddress         string         // RESOLVER_ADDRESS, host:port, default system resolver
	OutboundTLSLevel        string         // OUTBOUND_TLS_LEVEL: may, encrypt or dane (default)
	DeferOnTLSError         bool           // DEFER_ON_TLS_ERROR, default true
	TLSRPTSend              bool           // TLSRPT_SEND, default true: daily TLS-RPT reports
	TLSRPTRUA               string         // TLSRPT_RUA, local part at DOMAIN that receives TLS-RPT reports, default POSTMASTER; "" = none
	MTASTSMode              string         // MTA_STS_MODE: none, testing (default) or enforce, of the policy we serve
	MTASTSMaxAge            int64          // MTA_STS_MAX_AGE, seconds, default 604800 (one week)
	QueueLifetime           time.Duration  // QUEUE_LIFETIME, default 5d (Postfix maximal_queue_lifetime)
	QueueLease              time.Duration  // QUEUE_LEASE, default 2m: a dead node's claimed entries go to another node after this
	DelayWarningTime        time.Duration  // DELAY_WARNING_TIME, default 5m (Mailu delay_warning_time); 0 = none
	InboundDNSTimeout       time.Duration  // INBOUND_DNS_TIMEOUT, default 10s: SPF/DKIM/DMARC/iprev budget per message
	Filter                  Filter         // inbound checks: rspamd, clamd, greylisting, DNSBLs (filter.go)

	// Database
	DBFlavor string // DB_FLAVOR: sqlite (default) or postgresql
	DBHost   string // DB_HOST (a ":port" suffix moves to DBPort, as Mailu allows a port there)
	DBPort   int    // DB_PORT, default 5432
	DBUser   string // DB_USER
	DBPw     string // DB_PW (never logged)
	DBName   string // DB_NAME, default "mailu"
	DBURL    string // SQLALCHEMY_DATABASE_URI when set and DB_FLAVOR is not (never logged: may hold a password)

	// Message bodies in an S3-compatible object store (empty endpoint: none)
	BlobS3 BlobS3

	// Bootstrap
	InitialAdminAccount string // INITIAL_ADMIN_ACCOUNT (local part)
	InitialAdminDomain  string // INITIAL_ADMIN_DOMAIN
	InitialAdminPw      string // INITIAL_ADMIN_PW (never logged)
	InitialAdminMode    string // INITIAL_ADMIN_MODE: ifmissing (default), create, update

	// Web / API (the HTTP roles 80 and 443)
	API             bool           // API, default false
	APIToken        string         // API_TOKEN (never logged)
	WebAPI          string         // WEB_API, default /api: path of the REST API
	WebAdmin        string         // WEB_ADMIN, default /admin: path of the web UI
	WebrootRedirect string         // WEBROOT_REDIRECT: where / goes; "" = WebAdmin, "none" = nowhere
	RealIPHeader    string         // REAL_IP_HEADER: HTTP header naming the client behind a proxy
	RealIPFrom      []netip.Prefix // REAL_IP_FROM: proxies whose RealIPHeader is believed

	// Metrics: Prometheus text format at /metrics on the HTTP roles.
	Metrics         bool           // METRICS, default false
	MetricsToken    string         // METRICS_TOKEN: Authorization: Bearer (never logged)
	MetricsNetworks []netip.Prefix // METRICS_NETWORKS: clients that need no token; default loopback
	// METRICS_ADDRESS: host:port of a plain HTTP listener of its own for
	// /metrics (loopback or a private network), besides the HTTP roles;
	// "" = none.
	MetricsAddress string

	// Fetched accounts (Mailu's fetchmail).
	FetchmailEnabled bool          // FETCHMAIL_ENABLED, default false
	FetchmailDelay   time.Duration // FETCHMAIL_DELAY, seconds; default 600

	// Full-text search for IMAP SEARCH BODY and TEXT (docs/search.md).
	FullTextSearch      bool // FULL_TEXT_SEARCH: on unless off, false, 0 or no (Mailu default "en")
	FullTextAttachments bool // FULL_TEXT_SEARCH_ATTACHMENTS, default false

	// Web UI (internal/admin/web)
	Admin               bool          // ADMIN: serve the web UI at WEB_ADMIN (default true)
	SessionCookieSecure bool          // SESSION_COOKIE_SECURE (default true; off anyway with TLS_FLAVOR=notls)
	SessionTimeout      time.Duration // SESSION_TIMEOUT: idle web session timeout (default 1h)
	SessionLifetime     time.Duration // PERMANENT_SESSION_LIFETIME: longest web session (default 30 days)
	LogoURL             string        // LOGO_URL: logo in the web UI
	LogoBackground      string        // LOGO_BACKGROUND: colour behind the logo
}
