// Package testutil holds the test helpers the listener packages (smtpd,
// pop3d, imapd) share: a self-signed certificate, a log buffer safe for
// concurrent writers, a fake authenticator and a seeded sqlstore.
//
// Only _test.go files may import it; no production package does.
package testutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// Cert is a self-signed certificate for host and 127.0.0.1, valid for an
// hour either side of now.
type Cert struct {
	Server *tls.Config // presents the certificate
	Client *tls.Config // trusts it, ServerName host
	CAFile string      // the certificate as PEM, for clients outside Go
}

// NewCert makes a Cert for host; the PEM file lives in t.TempDir().
func NewCert(t testing.TB, host string) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return Cert{
		Server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
			MinVersion:   tls.VersionTLS12,
		},
		Client: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12},
		CAFile: caFile,
	}
}

// LogBuffer collects log output from concurrent writers.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// FakeAuth accepts the users it knows with their password and records
// every attempt; SetFail overrides the answer.
type FakeAuth struct {
	mu       sync.Mutex
	users    map[string]string
	fail     error
	attempts []auth.Attempt
}

// NewFakeAuth knows users (address -> password).
func NewFakeAuth(users map[string]string) *FakeAuth {
	return &FakeAuth{users: users}
}

// Authenticate implements the servers' Authenticator.
func (a *FakeAuth) Authenticate(ctx context.Context, at auth.Attempt) (*auth.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts = append(a.attempts, at)
	if a.fail != nil {
		return nil, a.fail
	}
	if pw, ok := a.users[at.Username]; ok && pw == string(at.Password) {
		return &auth.Result{User: &store.User{Email: at.Username}}, nil
	}
	return nil, auth.ErrBadCredentials
}

// SetFail makes every later attempt fail with err; nil restores checking.
func (a *FakeAuth) SetFail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

// Last is the latest attempt; it panics without one.
func (a *FakeAuth) Last() auth.Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[len(a.attempts)-1]
}

// Attempts is a copy of every attempt so far.
func (a *FakeAuth) Attempts() []auth.Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]auth.Attempt(nil), a.attempts...)
}

// OpenStore opens a sqlstore in dir (main.db and blobs/, closed at the
// test's end) with domain and the users local@domain (quota 0, 80%).
func OpenStore(t testing.TB, dir, domain string, locals ...string) *sqlstore.Store {
	t.Helper()
	return OpenStoreWith(t, sqlstore.Options{
		Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs"), InlineMax: 4096,
	}, domain, locals...)
}

// OpenStoreWith is OpenStore with the store's options given.
func OpenStoreWith(t testing.TB, opt sqlstore.Options, domain string, locals ...string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.CreateDomain(ctx, &store.Domain{Name: domain, MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	for _, l := range locals {
		u := store.NewUser(l, domain, 0, 80)
		if err := st.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// Server is a listener under test (smtpd, pop3d, imapd).
type Server interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
}

// Serve runs srv on a fresh 127.0.0.1 port and returns its address and
// the channel Serve's result arrives on. At the test's end it shuts srv
// down within grace and reads done: an error from either fails the
// test. A test that reads done itself puts a nil back for that check.
func Serve(t testing.TB, srv Server, grace time.Duration) (addr string, done chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), done
}

// Dial connects to addr, through TLS with cfg unless cfg is nil (the
// handshake comes with the first read or write), and closes the
// connection at the test's end.
func Dial(t testing.TB, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		conn = tls.Client(conn, cfg)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
