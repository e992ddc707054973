package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/httpd/mtasts"
)

// writeCert puts a certificate for mail.example.com into DATA_DIR/certs
// and returns the SHA-256 of its SubjectPublicKeyInfo.
func writeCert(t *testing.T, e *env) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mail.example.com"},
		DNSNames: []string{"mail.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.vars["DATA_DIR"], "certs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:])
}

// `petrel dns` prints the MTA-STS, TLS-RPT and DANE records of what the
// server serves, with the policy id the HTTP role serves and the TLSA
// digest of the served key.
func TestDNSTransportSecurityRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "domain", "example.com")
	spki := writeCert(t, e)
	r := e.ok("", "dns", "example.com")
	pol, err := mtasts.New("testing", []string{"mail.example.com"}, 604800)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`_mta-sts.example.com. 600 IN TXT "v=STSv1; id=` + pol.ID() + `"` + "\n",
		"mta-sts.example.com. 600 IN CNAME mail.example.com.\n",
		`_smtp._tls.example.com. 600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.com"` + "\n",
		"_25._tcp.mail.example.com. 86400 IN TLSA 3 1 1 " + spki + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "only in a DNSSEC-signed zone") {
		t.Errorf("no DNSSEC note: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, "covers mta-sts.example.com") {
		t.Errorf("no certificate note for the policy host: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, "postmaster@example.com is no user or alias yet") {
		t.Errorf("no note that the report address does not exist: %q", r.stderr)
	}
	e.ok("", "alias", "postmaster", "example.com", "admin@example.com")
	if r := e.ok("", "dns", "example.com"); strings.Contains(r.stderr, "no user or alias") {
		t.Errorf("note although postmaster@example.com is an alias: %q", r.stderr)
	}

	// The id follows the policy.
	e.vars["MTA_STS_MODE"] = "enforce"
	z := e.ok("", "dns", "example.com").stdout
	if strings.Contains(z, pol.ID()) || !strings.Contains(z, `_mta-sts.example.com. 600 IN TXT "v=STSv1; id=`) {
		t.Errorf("id unchanged after MTA_STS_MODE=enforce:\n%s", z)
	}

	// What is not served is not suggested.
	e.vars["PORTS"], e.vars["TLS"] = "25,465,993", "465,993"
	e.vars["TLSRPT_RUA"] = "none"
	z = e.ok("", "dns", "example.com").stdout
	if strings.Contains(z, "mta-sts") || strings.Contains(z, "_smtp._tls") {
		t.Errorf("MTA-STS without HTTP, or TLS-RPT with TLSRPT_RUA=none:\n%s", z)
	}
	e.vars["TLSRPT_RUA"] = "tls-reports"
	if z := e.ok("", "dns", "example.com").stdout; !strings.Contains(z, `"v=TLSRPTv1; rua=mailto:tls-reports@example.com"`) {
		t.Errorf("TLSRPT_RUA not followed:\n%s", z)
	}
	e.vars["TLS_FLAVOR"] = "notls"
	if z := e.ok("", "dns", "example.com").stdout; strings.Contains(z, "TLSA") {
		t.Errorf("TLSA under notls:\n%s", z)
	}

	// No certificate yet: no TLSA, and a reason.
	e2 := newEnv(t)
	e2.ok("", "domain", "example.com")
	r = e2.ok("", "dns", "example.com")
	if strings.Contains(r.stdout, "TLSA") || !strings.Contains(r.stderr, "no TLSA records: no certificate") {
		t.Errorf("without a certificate:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
}
