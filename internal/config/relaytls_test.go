package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caPEM writes a self-signed CA certificate to a file and returns its path.
func caPEM(t *testing.T) (string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Relay CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	f := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, c
}

func problemFor(probs []Problem, name string) *Problem {
	for i := range probs {
		if probs[i].Setting == name {
			return &probs[i]
		}
	}
	return nil
}

func TestRelayTLSDefaults(t *testing.T) {
	t.Parallel()
	cfg, probs := Parse(with("RELAYHOST", "[smtp.example.net]:587"))
	if len(probs) != 0 || !cfg.RelayTLSVerify || cfg.RelayCAFile != "" {
		t.Fatalf("verify=%v ca=%q problems %v; want verification on, no CA file, no problems", cfg.RelayTLSVerify, cfg.RelayCAFile, probs)
	}
}

func TestRelayCAFile(t *testing.T) {
	t.Parallel()
	f, ca := caPEM(t)
	cfg, probs := Parse(with("RELAYHOST", "[smtp.example.net]:587", "RELAYHOST_CA_FILE", f))
	if len(probs) != 0 || cfg.RelayCAFile != f {
		t.Fatalf("ca=%q problems %v", cfg.RelayCAFile, probs)
	}
	pool, err := LoadCAFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the pool does not trust the file's CA: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{bad, "no PEM CERTIFICATE block"},
		{filepath.Join(t.TempDir(), "missing.pem"), "cannot read the file"},
	} {
		_, probs := Parse(with("RELAYHOST", "[smtp.example.net]:587", "RELAYHOST_CA_FILE", tc.file))
		p := problemFor(probs, "RELAYHOST_CA_FILE")
		if p == nil || p.Warning || !strings.Contains(p.Message, tc.want) || !strings.Contains(p.Fix, "PEM") {
			t.Errorf("%s: problem %+v; want an error saying %q", tc.file, p, tc.want)
		}
	}
}

// RELAYHOST_TLS_VERIFY=false is Mailu's behaviour: allowed, with a warning
// that says what it gives up.
func TestRelayTLSVerifyOff(t *testing.T) {
	t.Parallel()
	cfg, probs := Parse(with("RELAYHOST", "[smtp.example.net]:587", "RELAYHOST_TLS_VERIFY", "false"))
	if cfg.RelayTLSVerify || HasErrors(probs) {
		t.Fatalf("verify=%v problems %v", cfg.RelayTLSVerify, probs)
	}
	p := problemFor(probs, "RELAYHOST_TLS_VERIFY")
	if p == nil || !p.Warning || !strings.Contains(p.Message, "not verified") || !strings.Contains(p.Message, "smtp.example.net") ||
		!strings.Contains(p.Fix, "RELAYHOST_CA_FILE") {
		t.Errorf("warning %+v; want one that says the certificate is not verified and how to verify it", p)
	}
	_, probs = Parse(with("RELAYHOST_TLS_VERIFY", "maybe"))
	if p := problemFor(probs, "RELAYHOST_TLS_VERIFY"); p == nil || p.Warning {
		t.Errorf("RELAYHOST_TLS_VERIFY=maybe: %+v; want an error", p)
	}
}
