// Package tlscfg provides the server certificate according to Mailu's
// TLS_FLAVOR: it loads cert.pem/key.pem from DATA_DIR/certs, generates a
// self-signed certificate when there is none, reloads on change or SIGHUP
// without restarting listeners, and builds the tls.Config for each port.
package tlscfg

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"
)

// TLS_FLAVOR values. Mailu: core/nginx/config.py.
const (
	FlavorCert            = "cert"
	FlavorMail            = "mail"
	FlavorNoTLS           = "notls"
	FlavorLetsencrypt     = "letsencrypt"      // like cert, with certificates from ACME (Options.Managed)
	FlavorMailLetsencrypt = "mail-letsencrypt" // like mail, with certificates from ACME
)

// Default file names inside CertsDir. Mailu: TLS_CERT_FILENAME, TLS_KEYPAIR_FILENAME.
const (
	DefaultCertFile = "cert.pem"
	DefaultKeyFile  = "key.pem"
)

// DefaultWatchInterval is Watch's poll interval when given none.
const DefaultWatchInterval = 10 * time.Second

// Options configures New.
type Options struct {
	Flavor    string           // TLS_FLAVOR; empty means cert
	CertsDir  string           // DATA_DIR/certs; required unless notls
	CertFile  string           // name inside CertsDir (or absolute); default cert.pem, full chain
	KeyFile   string           // name inside CertsDir (or absolute); default key.pem
	Hostnames []string         // HOSTNAMES: SANs of a generated certificate, checked against a loaded one
	Logger    *slog.Logger     // nil: discard
	Now       func() time.Time // nil: time.Now
	// Managed, when set, supplies certificates first (ACME under the
	// letsencrypt flavors); while it returns none, the file (or the
	// self-signed) certificate is served.
	Managed CertSource
}

// CertSource supplies certificates per handshake; nil, nil means it has
// none for this one.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Manager owns the served certificate. It is safe for concurrent use.
type Manager struct {
	flavor    string
	enabled   bool
	certPath  string
	keyPath   string
	hostnames []string
	managed   CertSource
	log       *slog.Logger
	now       func() time.Time

	cur atomic.Pointer[keyPair] // what GetCertificate serves

	mu   sync.Mutex // serialises loads
	seen fileStamps // files as seen by the last load attempt; under mu
}

// New builds a Manager. With a cert flavor it loads the certificate and key;
// if both files are missing it generates a self-signed certificate for
// Hostnames and writes it there. A file that exists but does not load is an
// error naming the file and the problem (Mailu would set TLS_ERROR).
func New(opts Options) (*Manager, error) {
	m := &Manager{
		flavor:  strings.ToLower(strings.TrimSpace(opts.Flavor)),
		log:     opts.Logger,
		now:     opts.Now,
		managed: opts.Managed,
	}
	if m.flavor == "" {
		m.flavor = FlavorCert
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	switch m.flavor {
	case FlavorNoTLS:
		return m, nil
	case FlavorCert, FlavorMail, FlavorLetsencrypt, FlavorMailLetsencrypt:
		m.enabled = true
	default:
		return nil, fmt.Errorf("tlscfg: unknown TLS_FLAVOR %q (want cert, mail, letsencrypt, mail-letsencrypt or notls)", opts.Flavor)
	}
	if opts.CertsDir == "" {
		return nil, errors.New("tlscfg: no certificate directory")
	}
	m.certPath = inDir(opts.CertsDir, opts.CertFile, DefaultCertFile)
	m.keyPath = inDir(opts.CertsDir, opts.KeyFile, DefaultKeyFile)
	m.hostnames = normalizeHostnames(opts.Hostnames)

	if err := m.ensureFiles(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = stampFiles(m.certPath, m.keyPath)
	kp, err := loadPair(m.certPath, m.keyPath)
	if err != nil {
		return nil, err
	}
	m.install(kp, "TLS certificate loaded")
	return m, nil
}

// ensureFiles generates a self-signed pair when both files are missing.
func (m *Manager) ensureFiles() error {
	certOK, err := exists(m.certPath)
	if err != nil {
		return err
	}
	keyOK, err := exists(m.keyPath)
	if err != nil {
		return err
	}
	switch {
	case certOK && keyOK:
		return nil
	case certOK:
		return fmt.Errorf("tlscfg: key file %s is missing (certificate %s exists)", m.keyPath, m.certPath)
	case keyOK:
		return fmt.Errorf("tlscfg: certificate file %s is missing (key %s exists)", m.certPath, m.keyPath)
	}
	certPEM, keyPEM, err := newSelfSigned(m.hostnames, m.now())
	if err != nil {
		return err
	}
	if err := writePair(m.certPath, certPEM, m.keyPath, keyPEM); err != nil {
		return err
	}
	if m.managed != nil {
		m.log.Info("self-signed certificate generated for "+strings.Join(m.hostnames, ", ")+
			"; it is served until the ACME CA has issued the real ones", "cert_file", m.certPath)
		return nil
	}
	m.log.Warn(fmt.Sprintf("self-signed certificate generated for %s, clients will warn; "+
		"install a real one by writing %s (full chain) and %s into %s - "+
		"Petrel reloads them automatically or on SIGHUP",
		strings.Join(m.hostnames, ", "), filepath.Base(m.certPath), filepath.Base(m.keyPath), filepath.Dir(m.certPath)),
		"cert_file", m.certPath, "key_file", m.keyPath)
	return nil
}

// install makes kp the served certificate. Caller holds mu.
func (m *Manager) install(kp *keyPair, msg string) {
	m.cur.Store(kp)
	m.log.Info(msg, "flavor", m.flavor, "cert_file", m.certPath, "cert", kp.info)
	complain(m.log, kp, m.hostnames, m.now())
}

// Reload re-reads the certificate and key. If they do not load, the
// previous certificate stays in service, an ERROR is logged and the error
// returned. The composition root calls it on SIGHUP; a no-op for notls.
func (m *Manager) Reload() error {
	if !m.enabled {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = stampFiles(m.certPath, m.keyPath)
	kp, err := loadPair(m.certPath, m.keyPath)
	if err != nil {
		m.log.Error("TLS certificate reload failed; keeping the previous certificate",
			"err", err, "serving", m.cur.Load().info)
		return err
	}
	m.install(kp, "TLS certificate reloaded")
	return nil
}

// Watch polls the files' size and mtime every interval (DefaultWatchInterval
// if <= 0) and reloads once a change has held still for one poll, so that a
// certificate copied in by hand is not read half-written. It returns nil
// when ctx is done, at once for notls. Mailu: certwatcher.py.
func (m *Manager) Watch(ctx context.Context, interval time.Duration) error {
	if !m.enabled {
		return nil
	}
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending fileStamps
	havePending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := stampFiles(m.certPath, m.keyPath)
		m.mu.Lock()
		seen := m.seen
		m.mu.Unlock()
		switch {
		case now == seen:
			havePending = false
		case !havePending || now != pending:
			pending, havePending = now, true // changed; wait for it to settle
		default:
			havePending = false
			_ = m.Reload() // logged inside
		}
	}
}

// GetCertificate is the tls.Config hook: every handshake sees the current
// certificate, so reloads need no listener restart.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.managed != nil && m.enabled {
		c, err := m.managed.GetCertificate(hello)
		if c != nil || err != nil {
			return c, err
		}
	}
	kp := m.cur.Load()
	if kp == nil {
		return nil, errors.New("tlscfg: TLS is disabled (TLS_FLAVOR=notls)")
	}
	return kp.cert, nil
}

// ServerConfig returns a fresh tls.Config for one listener, or nil for notls.
// minTLS12 is true for everything with AUTH (465, 587, 993, 995, 143, 110,
// 4190, HTTPS) and for port 25 with TLS_PERMISSIVE=false: Mozilla's
// intermediate profile (Intermediate). With minTLS12 false (port 25,
// TLS_PERMISSIVE=true) TLS 1.0 and 1.1 and legacy CBC, RSA-key-exchange and
// 3DES suites are accepted too, since weak encryption beats the plaintext a
// sender falls back to. Go's crypto/tls never speaks SSLv3. Session tickets
// are off. Mailu: nginx tls.conf, proxy.conf (ssl_options no_ticket).
func (m *Manager) ServerConfig(minTLS12 bool) *tls.Config {
	if !minTLS12 {
		return m.Permissive()
	}
	return m.Intermediate()
}

// Intermediate returns a fresh tls.Config with Mozilla's intermediate
// profile and the served certificate, or nil for notls. Every server with
// AUTH uses it: submission, IMAP, POP3, ManageSieve, HTTPS.
func (m *Manager) Intermediate() *tls.Config {
	if !m.enabled {
		return nil
	}
	cfg := &tls.Config{GetCertificate: m.GetCertificate}
	ApplyIntermediate(cfg)
	return cfg
}

// Permissive returns a fresh tls.Config for port 25 with TLS_PERMISSIVE
// (the intermediate profile plus TLS 1.0/1.1 and legacy suites), or nil for
// notls.
func (m *Manager) Permissive() *tls.Config {
	if !m.enabled {
		return nil
	}
	return &tls.Config{
		GetCertificate:         m.GetCertificate,
		MinVersion:             tls.VersionTLS10,
		CipherSuites:           permissiveSuites(),
		SessionTicketsDisabled: true,
	}
}

// ApplyIntermediate sets Mozilla's intermediate profile (v5.7,
// https://ssl-config.mozilla.org/guidelines/5.7.json) on cfg, for a server
// that gets its certificate elsewhere (an ACME manager, say): TLS 1.2 and
// 1.3; for TLS 1.2 only the ECDHE AEAD suites (forward secrecy, no
// CBC-SHA1: LUCKY13); curves X25519, P-256, P-384 (with the X25519 ML-KEM
// hybrid ahead of them); session tickets off. TLS 1.3 suites are not
// configurable in Go and are exactly Mozilla's three.
func ApplyIntermediate(cfg *tls.Config) {
	cfg.MinVersion = tls.VersionTLS12
	cfg.CipherSuites = IntermediateSuites()
	cfg.CurvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384}
	cfg.SessionTicketsDisabled = true
}

// IntermediateSuites returns Mozilla's intermediate TLS 1.2 suites that Go
// implements (it has no DHE), in Mozilla's order: ECDHE with AES-GCM or
// ChaCha20-Poly1305, for ECDSA and RSA certificates.
func IntermediateSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// permissiveSuites is Go's secure list plus the legacy suites old MTAs need.
// Go picks by its own preference order, so a modern client still gets AEAD.
// Mailu: nginx.conf mail ssl_ciphers for TLS_PERMISSIVE.
func permissiveSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		if !onlyTLS13(s) {
			ids = append(ids, s.ID)
		}
	}
	return append(ids,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
		tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	)
}

func onlyTLS13(s *tls.CipherSuite) bool {
	return len(s.SupportedVersions) == 1 && s.SupportedVersions[0] == tls.VersionTLS13
}

// Enabled reports whether TLS is on (false for notls).
func (m *Manager) Enabled() bool { return m.enabled }

// Flavor returns the normalised TLS_FLAVOR.
func (m *Manager) Flavor() string { return m.flavor }

// Leaf describes the certificate in service; ok is false for notls.
func (m *Manager) Leaf() (info CertInfo, ok bool) {
	kp := m.cur.Load()
	if kp == nil {
		return CertInfo{}, false
	}
	return kp.info, true
}

// inDir resolves a file name from the environment against dir.
func inDir(dir, name, def string) string {
	if name == "" {
		name = def
	}
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// normalizeHostnames lower-cases, converts IDNs to A-labels (certificates
// carry only ASCII) and drops blanks and duplicates. A name idna rejects is
// kept as given; certificate creation then reports it.
func normalizeHostnames(in []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, h := range in {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" {
			continue
		}
		if _, err := netip.ParseAddr(h); err != nil {
			if a, err := idna.Lookup.ToASCII(h); err == nil {
				h = a
			}
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("tlscfg: %w", err)
}

// fileStamp identifies a file version cheaply; stat follows symlinks, so a
// certbot-style symlink swap counts as a change.
type fileStamp struct {
	exists bool
	size   int64
	mtime  int64 // UnixNano
}

type fileStamps struct{ cert, key fileStamp }

func stampFiles(certPath, keyPath string) fileStamps {
	return fileStamps{cert: stampFile(certPath), key: stampFile(keyPath)}
}

func stampFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}
