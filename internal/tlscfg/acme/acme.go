// Package acme gets and renews the server certificates from an ACME CA
// (Let's Encrypt by default) for TLS_FLAVOR=letsencrypt and
// mail-letsencrypt. It drives github.com/caddyserver/certmagic over the
// store's certificate tree, so that several nodes sharing one database
// serve one certificate, serialise issuance with leases and answer each
// other's challenges.
//
// Like Mailu, it keeps an ECDSA (P-256) and an RSA (2048) certificate for
// every name in HOSTNAMES and serves the ECDSA one to clients that support
// it. Unlike Mailu (one certificate with every name), each name has its own
// certificate: certmagic's model, and it lets one name fail without
// holding up the others.
package acme

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/petrelmail/petrel/internal/store"
)

// LetsEncrypt is the default ACME directory: Let's Encrypt production.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// Options configures New.
type Options struct {
	// Hostnames are HOSTNAMES; the first is the main name, served to
	// clients that send no SNI or a name we have no certificate for.
	Hostnames []string
	// Email is the ACME account's contact (Mailu: POSTMASTER@DOMAIN).
	Email string
	// Directory is the CA's ACME directory URL (ACME_DIRECTORY); empty
	// means LetsEncrypt.
	Directory string
	// Roots are the CAs trusted for the ACME server's own HTTPS
	// (ACME_CA_ROOTS, for a private CA); nil means the system's.
	Roots *x509.CertPool
	// ShortChain drops the last certificate of a chain longer than two
	// (Mailu: LETSENCRYPT_SHORTCHAIN, which strips the cross-signed root).
	ShortChain bool
	// Storage is the store's certificate tree; required.
	Storage store.CertStorage
	// RenewalWindow is the part of a certificate's lifetime, counted back
	// from its end, in which it is renewed; 0 means a third (30 days of
	// Let's Encrypt's 90).
	RenewalWindow float64
	// RenewCheck is how often certificates are checked for renewal; 0
	// means certmagic's default (10 minutes).
	RenewCheck time.Duration
	Logger     *slog.Logger // nil: discard
}

// Manager obtains, renews and serves the certificates. It is safe for
// concurrent use.
type Manager struct {
	opts    Options
	log     *slog.Logger
	node    string
	caches  []*certmagic.Cache // ECDSA, RSA
	cacheOf map[*certmagic.Config]*certmagic.Cache
	ec      *certmagic.Config
	rsa     *certmagic.Config

	issuers  atomic.Pointer[[]*certmagic.ACMEIssuer] // set by Start; read by the HTTP handler
	started  atomic.Bool
	stopOnce sync.Once
	ready    atomic.Int32 // certificates obtained or loaded since Start
}

// New checks opts and builds a Manager; Start begins obtaining.
func New(opts Options) (*Manager, error) {
	if len(opts.Hostnames) == 0 {
		return nil, errors.New("acme: no hostnames")
	}
	if opts.Storage == nil {
		return nil, errors.New("acme: no storage")
	}
	if opts.Directory == "" {
		opts.Directory = LetsEncrypt
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for _, h := range opts.Hostnames {
		if !certmagic.SubjectQualifiesForPublicCert(h) {
			return nil, fmt.Errorf("acme: hostname %q cannot get a certificate from a public CA (an IP address, localhost or an internal name)", h)
		}
	}
	m := &Manager{opts: opts, log: opts.Logger, node: newNodeID(opts.Hostnames[0])}
	m.build()
	return m, nil
}

// build makes the certmagic configurations. They exist before Start so
// that a node answers challenges (from the store) as soon as its listeners
// are up, whichever node placed the order.
func (m *Manager) build() {
	zl := newZap(m.log)
	// One cache per key type: certmagic takes a name that has any
	// certificate in its cache as managed, so a shared cache would let
	// the ECDSA certificate keep the RSA one from being loaded.
	mk := func(kind string, kt certmagic.KeyType) *certmagic.Config {
		var cfg *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
			RenewCheckInterval: m.opts.RenewCheck,
			Logger:             zl,
		})
		m.caches = append(m.caches, cache)
		cfg = certmagic.New(cache, certmagic.Config{
			RenewalWindowRatio: m.opts.RenewalWindow,
			DefaultServerName:  m.opts.Hostnames[0],
			FallbackServerName: m.opts.Hostnames[0],
			// The key stays across renewals, so a published TLSA 3 1 1
			// record stays valid.
			ReusePrivateKeys: true,
			KeySource:        certmagic.StandardKeyGenerator{KeyType: kt},
			CertSelection:    selector{},
			Storage:          newStorage(m.opts.Storage, "acme/"+kind, m.node),
			OnEvent:          m.onEvent(kind),
			Logger:           zl,
		})
		cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
			CA:                      m.opts.Directory,
			Email:                   m.opts.Email,
			Agreed:                  true,
			TrustedRoots:            m.opts.Roots,
			DisableTLSALPNChallenge: true, // until Start knows the port-443 address
			Logger:                  zl,
		})}
		return cfg
	}
	m.ec = mk("ecdsa", certmagic.P256)
	m.rsa = mk("rsa", certmagic.RSA2048)
	m.cacheOf = map[*certmagic.Config]*certmagic.Cache{m.ec: m.caches[0], m.rsa: m.caches[1]}
	iss := []*certmagic.ACMEIssuer{m.ec.Issuers[0].(*certmagic.ACMEIssuer), m.rsa.Issuers[0].(*certmagic.ACMEIssuer)}
	m.issuers.Store(&iss)
}

// Addrs says where this node serves the challenges: HTTP is the address
// the port-80 role listens on (HTTP-01); TLSALPN is the port-443 role's
// (TLS-ALPN-01), or "" to use HTTP-01 only.
type Addrs struct {
	HTTP    string
	TLSALPN string
}

// Start begins obtaining and renewing in the background until ctx ends.
// It must be called once the listeners in a are open: certmagic finds
// the ports taken and leaves the challenges to HTTPHandler and
// GetCertificate. Progress and failures are logged.
func (m *Manager) Start(ctx context.Context, a Addrs) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("acme: started twice")
	}
	host, port, err := splitPort(a.HTTP, 80)
	if err != nil {
		return fmt.Errorf("acme: HTTP-01 address: %w", err)
	}
	alpnPort := 0
	if a.TLSALPN != "" {
		h, p, err := splitPort(a.TLSALPN, 443)
		if err != nil {
			return fmt.Errorf("acme: TLS-ALPN-01 address: %w", err)
		}
		// certmagic has one ListenHost for both challenges.
		if h == host {
			alpnPort = p
		}
	}
	for _, is := range *m.issuers.Load() {
		// Read only when an order is placed, which Start is about to allow.
		is.ListenHost, is.AltHTTPPort = host, port
		is.AltTLSALPNPort, is.DisableTLSALPNChallenge = alpnPort, alpnPort == 0
	}

	m.log.Info("ACME: managing certificates; a self-signed certificate is served until they are issued",
		"hostnames", strings.Join(m.opts.Hostnames, ","), "directory", m.opts.Directory, "account", m.opts.Email,
		"http01", net.JoinHostPort(host, strconv.Itoa(port)), "tlsalpn01", alpnPort != 0, "keys", "ecdsa-p256,rsa-2048")
	for _, cfg := range []*certmagic.Config{m.ec, m.rsa} {
		if err := cfg.ManageAsync(ctx, m.opts.Hostnames); err != nil {
			return fmt.Errorf("acme: %w", err)
		}
	}
	return nil
}

// Stop ends renewal; certificates in service stay until the process ends.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		for _, c := range m.caches {
			c.Stop()
		}
	})
}

// Renew renews every certificate now, even one far from expiry when force,
// and waits. Renewals keep the private key.
func (m *Manager) Renew(ctx context.Context, force bool) error {
	if !m.started.Load() {
		return errors.New("acme: not started")
	}
	var errs []error
	for _, cfg := range []*certmagic.Config{m.ec, m.rsa} {
		for _, h := range m.opts.Hostnames {
			if err := cfg.RenewCertSync(ctx, h, force); err != nil {
				errs = append(errs, fmt.Errorf("acme: renew %s: %w", h, err))
				continue
			}
			// RenewCertSync only stores the new certificate; swap it into
			// the cache, so the next handshake gets it.
			if err := m.recache(ctx, cfg, h); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// recache loads name's certificate of cfg's key type from storage into
// the cache and drops the older ones of that type.
func (m *Manager) recache(ctx context.Context, cfg *certmagic.Config, name string) error {
	fresh, err := cfg.CacheManagedCertificate(ctx, name)
	if err != nil {
		return fmt.Errorf("acme: load renewed %s: %w", name, err)
	}
	cache := m.cacheOf[cfg]
	var old []string
	for _, c := range cache.AllMatchingCertificates(name) {
		if c.Hash() != fresh.Hash() {
			old = append(old, c.Hash())
		}
	}
	cache.Remove(old)
	return nil
}

// GetCertificate returns the managed certificate for hello: the ECDSA one
// when the client supports it, else RSA; the main hostname's when hello
// has no SNI or a name not in HOSTNAMES. It answers TLS-ALPN-01
// challenges. It returns nil, nil while no certificate is there yet, so
// that the caller serves its self-signed one.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if isALPNChallenge(hello) {
		// Either manager's order may be the one being validated.
		var err error
		for _, cfg := range []*certmagic.Config{m.ec, m.rsa} {
			var c *tls.Certificate
			if c, err = cfg.GetCertificate(hello); err == nil {
				return c, nil
			}
		}
		return nil, err
	}
	if !m.started.Load() {
		return nil, nil
	}
	if !m.serves(hello.ServerName) {
		// No SNI, or a name we have no certificate for: the main name's.
		// (certmagic would otherwise hand our selector every certificate.)
		h := *hello
		h.ServerName = m.opts.Hostnames[0]
		hello = &h
	}
	// Mailu serves RSA and ECDSA side by side: ECDSA to clients that
	// take it, RSA to the rest.
	c, err := m.ec.GetCertificate(hello)
	if err != nil || c == nil || hello.SupportsCertificate(c) != nil {
		if rc, rerr := m.rsa.GetCertificate(hello); rerr == nil && rc != nil {
			c, err = rc, nil
		}
	}
	if err != nil || c == nil {
		return nil, nil //nolint:nilerr // none yet: the caller falls back
	}
	if m.opts.ShortChain {
		c = shortChain(c)
	}
	return c, nil
}

func (m *Manager) serves(name string) bool {
	for _, h := range m.opts.Hostnames {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

func isALPNChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeTLS1
}

// acmeTLS1 is the ALPN protocol of TLS-ALPN-01 (RFC 8737 6.2); the
// port-443 role must offer it.
const acmeTLS1 = "acme-tls/1"

// ALPNProto is the protocol a TLS listener that answers TLS-ALPN-01 must
// list in tls.Config.NextProtos.
const ALPNProto = acmeTLS1

// HTTPHandler answers HTTP-01 challenges under /.well-known/acme-challenge/
// from the store, so whichever node the CA reaches answers; any other
// path there is 404. Mailu's /.well-known/acme-challenge/testing answers
// 204, for reachability checks.
func (m *Manager) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/acme-challenge/testing" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if iss := m.issuers.Load(); iss != nil {
			for _, is := range *iss {
				if is.HandleHTTPChallenge(w, r) {
					m.log.Debug("ACME: answered an HTTP-01 challenge", "host", r.Host, "remote", r.RemoteAddr)
					return
				}
			}
		}
		http.NotFound(w, r)
	})
}

// selector serves the ECDSA certificate to clients that support it, RSA to
// the others, preferring ones in their validity period.
type selector struct{}

func (selector) SelectCertificate(hello *tls.ClientHelloInfo, choices []certmagic.Certificate) (certmagic.Certificate, error) {
	if len(choices) == 0 {
		return certmagic.Certificate{}, errors.New("no certificates")
	}
	now := time.Now()
	rank := func(c certmagic.Certificate) int {
		r := 0
		if hello.SupportsCertificate(&c.Certificate) == nil {
			r += 4
		}
		if c.Leaf != nil && now.After(c.Leaf.NotBefore) && now.Before(c.Leaf.NotAfter) {
			r += 2
		}
		if _, isRSA := c.PrivateKey.(*rsa.PrivateKey); !isRSA {
			r++
		}
		return r
	}
	best := choices[0]
	for _, c := range choices[1:] {
		// Of equals, the newest: a renewed certificate may briefly sit
		// beside the one it replaces.
		if rb, rc := rank(best), rank(c); rc > rb || rc == rb && c.Leaf != nil && best.Leaf != nil && c.Leaf.NotAfter.After(best.Leaf.NotAfter) {
			best = c
		}
	}
	return best, nil
}

// shortChain drops the last certificate of a chain longer than two.
// Mailu: config.py format_for_nginx with LETSENCRYPT_SHORTCHAIN.
func shortChain(c *tls.Certificate) *tls.Certificate {
	if len(c.Certificate) <= 2 {
		return c
	}
	cp := *c
	cp.Certificate = c.Certificate[:len(c.Certificate)-1]
	return &cp
}

// onEvent turns certmagic's events into the operator's log: what is being
// obtained, what was, and why it failed.
func (m *Manager) onEvent(kind string) func(context.Context, string, map[string]any) error {
	return func(_ context.Context, event string, data map[string]any) error {
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		switch event {
		case "cert_obtaining":
			m.log.Info("ACME: requesting a certificate", "hostname", name, "key", kind, "renewal", renewal,
				"waiting_for", "the CA to validate http://"+name+"/.well-known/acme-challenge/ (port 80) or TLS-ALPN on 443")
		case "cert_obtained":
			m.ready.Add(1)
			m.log.Info("ACME: certificate obtained; serving it from now on", "hostname", name, "key", kind, "renewal", renewal)
		case "cached_managed_cert":
			m.ready.Add(1)
		case "cert_failed":
			err, _ := data["error"].(error)
			why, fix := Explain(err)
			m.log.Warn("ACME: could not get a certificate; still serving the previous or self-signed one and retrying",
				"hostname", name, "key", kind, "renewal", renewal, "why", why, "fix", fix, "err", err)
		}
		return nil
	}
}

// Explain classifies an ACME failure for the log: what went wrong and what
// to do about it.
func Explain(err error) (why, fix string) {
	var p acme.Problem
	if errors.As(err, &p) {
		detail := strings.ToLower(p.Detail)
		switch {
		case strings.HasSuffix(p.Type, ":dns"), strings.Contains(detail, "resolve"), strings.Contains(detail, "nxdomain"),
			strings.Contains(detail, "no valid a"):
			return "DNS: the CA could not resolve the hostname", "publish an A/AAAA record for the hostname pointing at this server"
		case strings.HasSuffix(p.Type, ":connection"), strings.HasSuffix(p.Type, ":unauthorized"), strings.HasSuffix(p.Type, ":incorrectResponse"):
			return "port 80 unreachable or answered wrongly: the CA could not fetch the challenge",
				"make port 80 reachable from the internet and forward it, unredirected, to Petrel"
		case strings.HasSuffix(p.Type, ":rateLimited"):
			return "rate limit: the CA refuses more orders for now", "wait; Petrel retries with back-off (see the CA's rate-limit documentation)"
		case strings.HasSuffix(p.Type, ":caa"):
			return "CAA: a DNS CAA record forbids this CA", "allow the CA in the domain's CAA record"
		case strings.HasSuffix(p.Type, ":rejectedIdentifier"):
			return "the CA will not issue for this hostname", "check HOSTNAMES"
		}
		return "the CA refused: " + p.Type, "see err"
	}
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "DNS: this server could not resolve the ACME directory", "check RESOLVER_ADDRESS and outbound DNS"
	case errors.As(err, &ne):
		return "network: the ACME directory could not be reached", "check outbound HTTPS to ACME_DIRECTORY"
	case err != nil && strings.Contains(err.Error(), "x509"):
		return "TLS: the ACME directory's certificate is not trusted", "set ACME_CA_ROOTS for a private CA"
	}
	return "unknown", "see err"
}

func splitPort(addr string, def int) (string, int, error) {
	if addr == "" {
		return "", def, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if h == "0.0.0.0" || h == "::" {
		h = ""
	}
	return h, n, nil
}

// StoredLeaves returns the leaf certificates the store holds for the main
// hostname (ECDSA first, then RSA), without starting the manager: what
// `petrel dns` bases TLSA records on. None yet is not an error.
func (m *Manager) StoredLeaves(ctx context.Context) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, cfg := range []*certmagic.Config{m.ec, m.rsa} {
		c, err := cfg.CacheManagedCertificate(ctx, m.opts.Hostnames[0])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("acme: load the certificate of %s: %w", m.opts.Hostnames[0], err)
		}
		if c.Leaf != nil {
			out = append(out, c.Leaf)
		}
	}
	return out, nil
}
