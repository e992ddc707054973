package tlscfg

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// selfSignedValidity is how long a generated certificate lasts. A year keeps
// it from expiring under an admin who never installs a real one, while
// clients warn about it anyway.
const selfSignedValidity = 365 * 24 * time.Hour

// selfSignedOrg marks certificates Petrel generated.
const selfSignedOrg = "Petrel self-signed"

// newSelfSigned returns PEM for a fresh ECDSA P-256 certificate whose SANs are
// all hostnames (IP literals become IP SANs) and its PKCS#8 key.
func newSelfSigned(hostnames []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(hostnames) == 0 {
		return nil, nil, errors.New("tlscfg: no hostnames (HOSTNAMES) for a self-signed certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlscfg: generate key: %w", err)
	}
	// RFC 5280 4.1.2.2: positive, at most 20 octets.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tlscfg: serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostnames[0], Organization: []string{selfSignedOrg}},
		// An hour back tolerates clients whose clocks run slow.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hostnames {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlscfg: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlscfg: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// writePair stores a certificate (0644) and its key (0600) durably: both
// are written to temporary files and fsynced before either is renamed into
// place, so a crash leaves at most a tiny window with only one of the two.
func writePair(certPath string, certPEM []byte, keyPath string, keyPEM []byte) error {
	keyTmp, err := writeTemp(keyPath, keyPEM, 0o600)
	if err != nil {
		return err
	}
	certTmp, err := writeTemp(certPath, certPEM, 0o644)
	if err != nil {
		_ = os.Remove(keyTmp)
		return err
	}
	if err := os.Rename(keyTmp, keyPath); err != nil {
		_ = os.Remove(keyTmp)
		_ = os.Remove(certTmp)
		return fmt.Errorf("tlscfg: %w", err)
	}
	if err := os.Rename(certTmp, certPath); err != nil {
		_ = os.Remove(certTmp)
		return fmt.Errorf("tlscfg: %w", err)
	}
	if err := syncDir(filepath.Dir(keyPath)); err != nil {
		return err
	}
	if d := filepath.Dir(certPath); d != filepath.Dir(keyPath) {
		return syncDir(d)
	}
	return nil
}

// writeTemp writes data with perm to a fsynced temporary file next to path
// and returns its name.
func writeTemp(path string, data []byte, perm os.FileMode) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("tlscfg: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("tlscfg: %w", err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(name)
		return "", fmt.Errorf("tlscfg: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("tlscfg: write %s: %w", path, err)
	}
	return name, nil
}

// syncDir makes renames inside dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tlscfg: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tlscfg: sync %s: %w", dir, err)
	}
	return nil
}
