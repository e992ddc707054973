// Package pebbletest runs Debian's pebble, Let's Encrypt's ACME test CA,
// on loopback for end-to-end certificate tests. Pebble validates for real:
// it resolves names through the DNS server it is given and fetches
// HTTP-01 and TLS-ALPN-01 challenges from the ports it is told.
package pebbletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures Start.
type Options struct {
	DNS      string // host:port of the DNS server pebble resolves names with; required
	HTTPPort int    // where pebble fetches HTTP-01 challenges
	TLSPort  int    // where pebble tries TLS-ALPN-01 challenges
	// ChainLength is PEBBLE_CHAIN_LENGTH: intermediates between leaf and
	// root (0 = pebble's default, 1).
	ChainLength int
}

// CA is a running pebble.
type CA struct {
	Directory string         // the ACME directory URL
	APIRoots  *x509.CertPool // trusts pebble's own HTTPS (for the ACME client)
	RootsFile string         // the same as a PEM file
	mgmt      string         // management API base URL
	client    *http.Client
	Log       *logBuffer // pebble's output
}

// Start runs pebble until the test ends. It skips the test when pebble
// is not installed.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		t.Skip("pebble not installed (Debian package pebble; .ci/run installs it): skipping the ACME end-to-end test")
	}
	dir := t.TempDir()
	certFile, keyFile, pool := apiCert(t, dir)
	// Ports are picked free and then bound by pebble; on a shared machine
	// another process may take one first, so a pebble that exits is
	// started again on new ports.
	for attempt := 1; ; attempt++ {
		ca, err := start(t, bin, dir, certFile, keyFile, pool, o)
		if err == nil {
			return ca
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("pebble: %v; trying other ports", err)
	}
}

func start(t testing.TB, bin, dir, certFile, keyFile string, pool *x509.CertPool, o Options) (*CA, error) {
	listen, mgmt := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        "",
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := &CA{
		Directory: "https://" + listen + "/dir",
		APIRoots:  pool,
		RootsFile: certFile,
		mgmt:      "https://" + mgmt,
		client:    &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		Log:       new(logBuffer),
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", o.DNS)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce errors
		"PEBBLE_AUTHZREUSE=0",      // every order validates anew
	)
	if o.ChainLength > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("PEBBLE_CHAIN_LENGTH=%d", o.ChainLength))
	}
	cmd.Stdout, cmd.Stderr = ca.Log, ca.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := ca.client.Get(ca.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// The management port must be pebble's too.
				if _, err := ca.roots(); err == nil {
					return ca, nil
				}
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("pebble exited: %s", ca.Log)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("pebble did not come up at %s: %v\n%s", ca.Directory, err, ca.Log)
		}
		time.Sleep(50 * time.Millisecond) // polling a starting process
	}
}

// Roots returns pebble's issuing root (regenerated at every start), which
// the certificates it issues chain to.
func (ca *CA) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool, err := ca.roots()
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func (ca *CA) roots() (*x509.CertPool, error) {
	resp, err := ca.client.Get(ca.mgmt + "/roots/0")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pebble root: no certificate in %q", b)
	}
	return pool, nil
}

// Issued counts the certificates pebble has issued, from its log.
func (ca *CA) Issued() int {
	return strings.Count(ca.Log.String(), "Issued certificate serial")
}

// apiCert makes the certificate pebble's HTTPS listeners present.
func apiCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "pebble test API"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "api-ca.pem"), filepath.Join(dir, "api-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// freePort returns a loopback address no one listens on right now.
func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// logBuffer collects pebble's output, written from two pipes at once.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
