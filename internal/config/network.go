package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// prefixList reads a list of networks (Mailu: comma-separated; Postfix's
// mynetworks also takes spaces). A bare address is a /32 or /128, host bits
// are cleared (Python's ip_network(cidr, False)), and Postfix's bracketed
// IPv6 form "[2001:db8::]/32" is accepted.
func (r *reader) prefixList(name string) []netip.Prefix {
	v, ok := r.get(name)
	if !ok {
		return nil
	}
	var out []netip.Prefix
	for _, item := range strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' }) {
		p, err := parsePrefix(item)
		if err != nil {
			r.errorf(name, v, "use a comma list of networks such as 192.0.2.0/24,2001:db8::/32 (a bare address means one host)",
				"%q: %v", item, err)
			continue
		}
		out = append(out, p)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		addr = addr[1 : len(addr)-1]
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", addr)
	}
	if ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has an IPv6 zone, which a network cannot have", addr)
	}
	if !hasBits {
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 0 || n > ip.BitLen() || strings.HasPrefix(bits, "+") {
		return netip.Prefix{}, fmt.Errorf("mask %q is not a number from 0 to %d", bits, ip.BitLen())
	}
	return netip.PrefixFrom(ip, n).Masked(), nil
}

// relayHost reads RELAYHOST in Postfix's syntax (Mailu: core/postfix/conf/main.cf
// relayhost = {{ RELAYHOST }}) and the SASL credentials for it.
func (r *reader) relayHost(cfg *Config) {
	cfg.RelayUser = r.str("RELAYUSER", "")
	if pw, ok := r.getRaw("RELAYPASSWORD"); ok {
		cfg.RelayPassword = pw
	}
	if v, ok := r.get("RELAYHOST"); ok {
		t, err := parseRelayHost(v)
		if err != nil {
			r.errorf("RELAYHOST", v, "use [host]:port (no MX lookup), host:port or host, e.g. [smtp.example.com]:587", "%v", err)
		} else {
			cfg.RelayHost = v
			cfg.Relay = t
		}
	}
	const fix = "set both RELAYUSER and RELAYPASSWORD, or neither"
	switch {
	case cfg.RelayUser != "" && cfg.RelayPassword == "":
		r.errorf("RELAYPASSWORD", "", fix, "is required when RELAYUSER is set")
	case cfg.RelayUser == "" && cfg.RelayPassword != "":
		r.errorf("RELAYUSER", "", fix, "is required when RELAYPASSWORD is set")
	}
	if cfg.RelayUser != "" && cfg.RelayHost == "" {
		r.warnf("RELAYUSER", cfg.RelayUser, "set RELAYHOST, or remove RELAYUSER and RELAYPASSWORD",
			"is ignored without RELAYHOST")
	}
	r.relayTLS(cfg)
}

// relayTLS reads how RELAYHOST's certificate is checked: against the
// system's CAs plus RELAYHOST_CA_FILE, or not at all with
// RELAYHOST_TLS_VERIFY=false (Mailu's Postfix: smtp_tls_security_level
// may/encrypt, nothing verified).
func (r *reader) relayTLS(cfg *Config) {
	cfg.RelayTLSVerify = r.boolean("RELAYHOST_TLS_VERIFY", true)
	if f, ok := r.get("RELAYHOST_CA_FILE"); ok {
		if _, err := LoadCAFile(f); err != nil {
			r.errorf("RELAYHOST_CA_FILE", f, "point RELAYHOST_CA_FILE at a readable PEM file with the CA certificate(s) that signed the relay's certificate", "%v", err)
		} else {
			cfg.RelayCAFile = f
		}
		if !cfg.RelayTLSVerify {
			r.warnf("RELAYHOST_CA_FILE", f, "remove one of them", "is ignored because RELAYHOST_TLS_VERIFY=false")
		}
	}
	if cfg.RelayHost == "" {
		if cfg.RelayCAFile != "" {
			r.warnf("RELAYHOST_CA_FILE", cfg.RelayCAFile, "set RELAYHOST, or remove RELAYHOST_CA_FILE", "is ignored without RELAYHOST")
		}
		return
	}
	if !cfg.RelayTLSVerify {
		r.warnf("RELAYHOST_TLS_VERIFY", "false", "set RELAYHOST_CA_FILE to the relay's CA certificate and remove RELAYHOST_TLS_VERIFY",
			"RELAYHOST's certificate is not verified: mail to it is encrypted, but anyone between here and %s can pose as it and read the mail and RELAYPASSWORD; "+
				"messages sent with REQUIRETLS are returned rather than relayed", cfg.Relay.Host)
	}
}

// LoadCAFile reads PEM certificates from file into a pool with the
// system's CAs (the system pool alone when it is unavailable).
func LoadCAFile(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read the file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE block in the file")
	}
	return pool, nil
}

// parseRelayHost parses "[host]:port", "[host]", "host:port" or "host".
// Postfix's "[ipv6:2001:db8::1]" form is accepted as well.
func parseRelayHost(s string) (RelayTarget, error) {
	t := RelayTarget{Port: 25, MX: true}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return RelayTarget{}, fmt.Errorf("missing ]")
		}
		host, t.MX = s[1:end], false
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return RelayTarget{}, fmt.Errorf("unexpected %q after ]", rest)
			}
			port = rest[1:]
			if port == "" {
				return RelayTarget{}, fmt.Errorf("empty port after ':'")
			}
		}
		if len(host) > 5 && strings.EqualFold(host[:5], "ipv6:") {
			host = host[5:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if strings.Count(s, ":") > 1 {
			return RelayTarget{}, fmt.Errorf("an IPv6 address must be in brackets, e.g. [2001:db8::1]:25")
		}
		host, port = s[:i], s[i+1:]
		if port == "" {
			return RelayTarget{}, fmt.Errorf("empty port after ':'")
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return RelayTarget{}, fmt.Errorf("%q is not a port number", port)
		}
		t.Port = n
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		t.Host, t.MX = ip.String(), false // an address has no MX records
		return t, nil
	}
	d, err := mailaddr.NormalizeDomain(host)
	if err != nil {
		return RelayTarget{}, fmt.Errorf("%q is not a host name or IP address", host)
	}
	t.Host = d
	return t, nil
}

// resolver reads RESOLVER_ADDRESS: an IP address with an optional port (53).
func (r *reader) resolver(cfg *Config) {
	v, ok := r.get("RESOLVER_ADDRESS")
	if !ok {
		return
	}
	const fix = "use an IP address with an optional port, e.g. 127.0.0.1:53 or [2001:db8::53]:53"
	host, port := v, "53"
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		host = v[1 : len(v)-1]
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		r.errorf("RESOLVER_ADDRESS", v, fix, "%q is not an IP address", host)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		r.errorf("RESOLVER_ADDRESS", v, fix, "%q is not a port number", port)
		return
	}
	cfg.ResolverAddress = net.JoinHostPort(ip.String(), port)
}

// database reads DB_FLAVOR and DB_* or SQLALCHEMY_DATABASE_URI. As in Mailu
// (configuration.py), DB_FLAVOR wins over SQLALCHEMY_DATABASE_URI.
func (r *reader) database(cfg *Config) {
	cfg.DBHost = r.str("DB_HOST", "")
	cfg.DBUser = r.str("DB_USER", "")
	cfg.DBName = r.str("DB_NAME", "mailu")
	if pw, ok := r.getRaw("DB_PW"); ok {
		cfg.DBPw = pw
	}
	cfg.DBPort = int(r.integer("DB_PORT", 5432, 1, 65535, "use a port number such as 5432"))
	_, portSet := r.get("DB_PORT")
	// Mailu builds postgresql://user:pw@DB_HOST/name, so DB_HOST may carry a port.
	if h, p, err := net.SplitHostPort(cfg.DBHost); err == nil {
		n, err := strconv.Atoi(p)
		switch {
		case err != nil || n < 1 || n > 65535:
			r.errorf("DB_HOST", cfg.DBHost, "use host or host:port, e.g. db.example.com:5432", "%q is not a port number", p)
		case portSet && n != cfg.DBPort:
			r.errorf("DB_HOST", cfg.DBHost, "give the port once, in DB_HOST or in DB_PORT", "port %d contradicts DB_PORT=%d", n, cfg.DBPort)
		default:
			cfg.DBHost, cfg.DBPort = h, n
		}
	}

	flavor, hasFlavor := r.get("DB_FLAVOR")
	uri, hasURI := r.getRaw("SQLALCHEMY_DATABASE_URI")
	uri = strings.TrimSpace(uri)
	switch {
	case hasFlavor:
		cfg.DBFlavor = strings.ToLower(flavor)
		if hasURI {
			r.warnf("SQLALCHEMY_DATABASE_URI", "", "remove SQLALCHEMY_DATABASE_URI or DB_FLAVOR",
				"ignored because DB_FLAVOR is set (as in Mailu)")
		}
	case hasURI:
		r.databaseURI(cfg, uri)
		return
	default:
		cfg.DBFlavor = "sqlite"
	}
	switch cfg.DBFlavor {
	case "sqlite":
	case "postgresql", "postgres":
		cfg.DBFlavor = "postgresql"
		const fix = "set DB_HOST, DB_USER, DB_PW and DB_NAME for PostgreSQL"
		if cfg.DBHost == "" {
			r.errorf("DB_HOST", "", fix, "is required when DB_FLAVOR=postgresql")
		}
		if cfg.DBUser == "" {
			r.errorf("DB_USER", "", fix, "is required when DB_FLAVOR=postgresql")
		}
		// DB_NAME cannot be missing: it defaults to mailu, as in Mailu.
	case "mysql", "mariadb":
		r.errorf("DB_FLAVOR", flavor, "use sqlite (default) or postgresql; move the data with 'petrel config-export' from Mailu",
			"MySQL/MariaDB is not supported by Petrel")
		cfg.DBFlavor = "sqlite"
	default:
		r.errorf("DB_FLAVOR", flavor, "use sqlite (default) or postgresql", "unknown database flavor")
		cfg.DBFlavor = "sqlite"
	}
}

// databaseURI takes the flavor from an SQLAlchemy URL. Its value is never
// shown: it may hold a password.
func (r *reader) databaseURI(cfg *Config, uri string) {
	scheme, rest, ok := strings.Cut(uri, "://")
	scheme, _, _ = strings.Cut(strings.ToLower(scheme), "+") // postgresql+psycopg2
	if !ok {
		scheme = ""
	}
	cfg.DBFlavor = "sqlite"
	switch scheme {
	case "sqlite":
		cfg.DBURL = uri
		// sqlite:////data/main.db is the absolute path /data/main.db.
		if path := strings.TrimPrefix(rest, "/"); path != filepath.Join(cfg.DataDir, "main.db") {
			r.warnf("SQLALCHEMY_DATABASE_URI", "", "set DATA_DIR to the directory that holds main.db, and remove SQLALCHEMY_DATABASE_URI",
				"Petrel keeps its SQLite database at DATA_DIR/main.db (%s), not at the path in the URI", filepath.Join(cfg.DataDir, "main.db"))
		}
	case "postgresql", "postgres":
		cfg.DBFlavor = "postgresql"
		cfg.DBURL = uri
	case "mysql", "mariadb":
		r.errorf("SQLALCHEMY_DATABASE_URI", "", "use sqlite (default) or a postgresql:// URI", "MySQL/MariaDB is not supported by Petrel")
	default:
		r.errorf("SQLALCHEMY_DATABASE_URI", "", "use postgresql://user:password@host/name, or DB_FLAVOR and DB_*",
			"not an sqlite:// or postgresql:// URI")
	}
}
