// Package tlspolicytest has test helpers for DANE and MTA-STS: a private
// CA issuing server certificates, TLSA records in zone-file syntax, an
// HTTPS MTA-STS policy server on 127.0.0.1 and an in-memory policy store.
package tlspolicytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// CA is a private certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial struct {
	mu sync.Mutex
	n  int64
}

func nextSerial() *big.Int {
	serial.mu.Lock()
	defer serial.mu.Unlock()
	serial.n++
	return big.NewInt(time.Now().UnixNano() + serial.n)
}

// NewCA makes a CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: c, key: key}
}

// Pool trusts the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue returns a server config whose certificate, for hosts, is signed
// by the CA and sent with the CA certificate as its chain.
func (ca *CA) Issue(t testing.TB, hosts ...string) *tls.Config {
	return ca.IssueValid(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), hosts...)
}

// IssueValid is Issue with a validity period.
func (ca *CA) IssueValid(t testing.TB, notBefore, notAfter time.Time, hosts ...string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}}}
}

// Leaf is the certificate a config from Issue (or sinktest.Cert) serves.
func Leaf(cfg *tls.Config) *x509.Certificate {
	c := cfg.Certificates[0]
	if c.Leaf != nil {
		return c.Leaf
	}
	l, _ := x509.ParseCertificate(c.Certificate[0])
	return l
}

// TLSA returns a TLSA record for name in zone-file syntax, with
// selector 1 (SPKI) or 0 (full certificate) and SHA-256 (matching type 1).
func TLSA(name string, usage, selector int, cert *x509.Certificate) string {
	data := cert.Raw
	if selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	h := sha256.Sum256(data)
	return name + " TLSA " + itoa(usage) + " " + itoa(selector) + " 1 " + hex.EncodeToString(h[:])
}

func itoa(n int) string { return string(rune('0' + n)) }

// PolicyServer serves body as https://mta-sts.<domain>/.well-known/mta-sts.txt
// with a certificate from ca (cfg overrides it when set) and returns a
// dial function for tlspolicy.Options.Dial that sends every connection to
// it. contentType "" is text/plain.
type PolicyServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body string
	ct   string
	hits int
}

// NewPolicyServer starts the server; it stops at the end of the test.
func NewPolicyServer(t testing.TB, cfg *tls.Config, body string) *PolicyServer {
	t.Helper()
	ps := &PolicyServer{body: body, ct: "text/plain"}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		ps.hits++
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ps.ct)
		w.Write([]byte(ps.body))
	}))
	ps.srv.TLS = cfg
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

// Set changes the policy served.
func (ps *PolicyServer) Set(body, contentType string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.body, ps.ct = body, contentType
}

// Hits is how many requests the server has had.
func (ps *PolicyServer) Hits() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hits
}

// Dial connects any address to the server.
func (ps *PolicyServer) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, ps.srv.Listener.Addr().String())
}

// MemStore is an in-memory tlspolicy.Store.
type MemStore struct {
	mu       sync.Mutex
	policies map[string]store.MTASTSPolicy
	results  []store.TLSResult
	claimed  map[string]bool
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{policies: map[string]store.MTASTSPolicy{}} }

func (m *MemStore) GetMTASTSPolicy(_ context.Context, domain string) (*store.MTASTSPolicy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.policies[domain]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &p, nil
}

func (m *MemStore) PutMTASTSPolicy(_ context.Context, p store.MTASTSPolicy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policies[p.Domain] = p
	return nil
}

func (m *MemStore) AddTLSResults(_ context.Context, rs []store.TLSResult) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results = append(m.results, rs...)
	return nil
}

// Results returns what was added, summed per domain, policy type and
// result type as "domain policy-type result-type=count" lines, sorted.
func (m *MemStore) Results() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	sum := map[string]int64{}
	for _, r := range m.results {
		rt := r.ResultType
		if rt == "" {
			rt = "success"
		}
		sum[r.PolicyDomain+" "+r.PolicyType+" "+rt] += r.Count
	}
	var out []string
	for k, n := range sum {
		out = append(out, k+"="+big.NewInt(n).String())
	}
	sort.Strings(out)
	return out
}

// Has reports whether Results contains line.
func (m *MemStore) Has(line string) bool {
	for _, l := range m.Results() {
		if strings.EqualFold(l, line) {
			return true
		}
	}
	return false
}

// TLSResults returns the rows added for day (not summed).
func (m *MemStore) TLSResults(_ context.Context, day time.Time) ([]store.TLSResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.TLSResult
	for _, r := range m.results {
		if r.Day.Format("2006-01-02") == day.UTC().Format("2006-01-02") {
			out = append(out, r)
		}
	}
	return out, nil
}

// ClaimTLSReport claims (day, domain) once.
func (m *MemStore) ClaimTLSReport(_ context.Context, day time.Time, domain string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.claimed == nil {
		m.claimed = map[string]bool{}
	}
	k := day.UTC().Format("2006-01-02") + " " + domain
	if m.claimed[k] {
		return false, nil
	}
	m.claimed[k] = true
	return true, nil
}

// PruneTLSResults drops rows of days before before.
func (m *MemStore) PruneTLSResults(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := m.results[:0]
	for _, r := range m.results {
		if !r.Day.Before(before) {
			kept = append(kept, r)
		}
	}
	m.results = kept
	return nil
}

// Raw returns the rows added, as added.
func (m *MemStore) Raw() []store.TLSResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.TLSResult(nil), m.results...)
}
