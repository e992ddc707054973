package tlscfg

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
)

// TLSA311 is the data of a DANE-EE TLSA record for cert (RFC 7671 5.1,
// usage 3, selector 1 = SubjectPublicKeyInfo, matching 1 = SHA-256):
// "3 1 1 <hex>". It depends only on the key, so it survives renewals that
// keep the key (ACME here always does).
func TLSA311(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "3 1 1 " + hex.EncodeToString(sum[:])
}

// FileChain reads the certificate chain that the cert flavors serve from
// CertsDir (certFile as TLS_CERT_FILENAME; "" = cert.pem); the leaf comes
// first. It neither generates nor checks a key.
func FileChain(certsDir, certFile string) ([]*x509.Certificate, error) {
	path := inDir(certsDir, certFile, DefaultCertFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseChain(path, data)
}
