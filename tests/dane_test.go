package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// testCA is a certificate with its key, able to sign others.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCert(t *testing.T, serial int64, cn string, parent *testCA, isCA bool) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.DNSNames = []string{cn}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

func spkiSHA256(c *x509.Certificate) []byte {
	s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return s[:]
}

// TestPort25ChainAndTLSA: port 25 sends the whole chain of cert.pem after
// STARTTLS (so a sender's DANE-TA record for the intermediate works), and
// the TLSA 3 1 1 record `petrel dns` prints matches what port 25 serves.
func TestPort25ChainAndTLSA(t *testing.T) {
	s := newServer(t, nil)
	root := newCert(t, 1, "Test Root", nil, true)
	inter := newCert(t, 2, "Test Intermediate", root, true)
	leaf := newCert(t, 3, "mail.example.test", inter, false)
	dir := filepath.Join(s.dataDir, "certs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.cert.Raw})...)
	kder, err := x509.MarshalECPrivateKey(leaf.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), chainPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("", "domain", "example.test")
	s.start()

	c, err := smtp.Dial(s.addr[25])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("sender.example.org"); err != nil {
		t.Fatal(err)
	}
	// The sender checks the chain itself, by DANE, below.
	if err := c.StartTLS(&tls.Config{ServerName: "mail.example.test", InsecureSkipVerify: true}); err != nil { //nolint:gosec // verified by DANE below
		t.Fatalf("STARTTLS: %v\n%s", err, s.logs())
	}
	cs, ok := c.TLSConnectionState()
	if !ok {
		t.Fatal("no TLS state")
	}
	if len(cs.PeerCertificates) != 2 || !cs.PeerCertificates[1].Equal(inter.cert) {
		t.Fatalf("port 25 sent %d certificates, want the leaf and the intermediate", len(cs.PeerCertificates))
	}
	_ = c.Quit()

	now := time.Now()
	names := []string{"mail.example.test"}
	ta := []dnsres.TLSA{{Usage: 2, Selector: 1, MatchingType: 1, Data: spkiSHA256(inter.cert)}}
	if err := tlspolicy.VerifyDANE(ta, cs, names, now); err != nil {
		t.Errorf("DANE-TA record for the intermediate: %v", err)
	}
	rootTA := []dnsres.TLSA{{Usage: 2, Selector: 1, MatchingType: 1, Data: spkiSHA256(root.cert)}}
	if err := tlspolicy.VerifyDANE(rootTA, cs, names, now); err == nil {
		t.Error("DANE-TA for the root, which is not sent, verified")
	}

	zone := s.mustCLI("", "dns", "example.test")
	var ee []dnsres.TLSA
	for _, line := range strings.Split(zone, "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[0] == "_25._tcp.mail.example.test." && f[3] == "TLSA" {
			if f[4] != "3" || f[5] != "1" || f[6] != "1" {
				t.Errorf("TLSA record %q is not 3 1 1", line)
			}
			data, err := hex.DecodeString(f[7])
			if err != nil {
				t.Fatalf("TLSA data %q: %v", f[7], err)
			}
			ee = append(ee, dnsres.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: data})
		}
	}
	if len(ee) != 1 {
		t.Fatalf("petrel dns printed %d TLSA records, want 1:\n%s", len(ee), zone)
	}
	if err := tlspolicy.VerifyDANE(ee, cs, names, now); err != nil {
		t.Errorf("the printed TLSA record does not match port 25: %v", err)
	}
	other := newCert(t, 4, "mail.example.test", inter, false)
	if err := tlspolicy.VerifyDANE([]dnsres.TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spkiSHA256(other.cert)}}, cs, names, now); err == nil {
		t.Error("a TLSA record of another key matched")
	}
	if err := s.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
