package tlscfg

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// CertInfo describes the certificate being served, for the startup log and
// the admin UI.
type CertInfo struct {
	Subject    string    // leaf subject, e.g. "CN=mail.example.com,O=..."
	DNSNames   []string  // DNS SANs
	IPs        []string  // IP SANs
	Serial     string    // hex
	NotBefore  time.Time //
	NotAfter   time.Time //
	SelfSigned bool      // issuer == subject and the leaf verifies its own signature
	Chain      int       // certificates in the file, leaf included
}

// LogValue implements slog.LogValuer.
func (ci CertInfo) LogValue() slog.Value {
	sans := append(append([]string(nil), ci.DNSNames...), ci.IPs...)
	return slog.GroupValue(
		slog.String("subject", ci.Subject),
		slog.String("sans", strings.Join(sans, ",")),
		slog.String("serial", ci.Serial),
		slog.Time("not_after", ci.NotAfter),
		slog.Bool("self_signed", ci.SelfSigned),
		slog.Int("chain", ci.Chain),
	)
}

// keyPair is one loaded certificate; it is replaced as a whole on reload.
type keyPair struct {
	cert *tls.Certificate
	info CertInfo
}

// loadPair reads and checks a PEM certificate chain and its key. Errors name
// the file at fault and the problem.
func loadPair(certPath, keyPath string) (*keyPair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("tlscfg: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("tlscfg: read key: %w", err)
	}
	chain, err := parseChain(certPath, certPEM)
	if err != nil {
		return nil, err
	}
	if !hasPrivateKey(keyPEM) {
		return nil, fmt.Errorf("tlscfg: key file %s: no PEM private key block found", keyPath)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlscfg: key file %s (for certificate %s): %w", keyPath, certPath, err)
	}
	leaf := chain[0]
	pair.Leaf = leaf
	return &keyPair{cert: &pair, info: describe(leaf, len(chain))}, nil
}

// parseChain parses every CERTIFICATE block; the first is the leaf.
func parseChain(path string, data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	sawKey := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("tlscfg: certificate file %s: certificate %d: %w", path, len(chain)+1, err)
			}
			chain = append(chain, c)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			sawKey = true
		}
	}
	if len(chain) > 0 {
		return chain, nil
	}
	if sawKey {
		return nil, fmt.Errorf("tlscfg: certificate file %s holds a private key but no certificate (certificate and key swapped?)", path)
	}
	return nil, fmt.Errorf("tlscfg: certificate file %s: no PEM CERTIFICATE block found", path)
}

func hasPrivateKey(data []byte) bool {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return true
		}
	}
}

func describe(leaf *x509.Certificate, chainLen int) CertInfo {
	ci := CertInfo{
		Subject:   leaf.Subject.String(),
		DNSNames:  append([]string(nil), leaf.DNSNames...),
		Serial:    leaf.SerialNumber.Text(16),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		Chain:     chainLen,
		SelfSigned: bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
			leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil,
	}
	for _, ip := range leaf.IPAddresses {
		ci.IPs = append(ci.IPs, ip.String())
	}
	return ci
}

// expiryWarning is how close to NotAfter a loaded certificate draws a WARN.
const expiryWarning = 14 * 24 * time.Hour

// complain logs what is wrong with a certificate that still loads: expiry
// and hostnames it does not cover.
func complain(log *slog.Logger, kp *keyPair, hostnames []string, now time.Time) {
	leaf := kp.cert.Leaf
	switch {
	case now.After(leaf.NotAfter):
		log.Warn("TLS certificate has expired; clients will refuse it", "cert", kp.info)
	case now.Add(expiryWarning).After(leaf.NotAfter):
		log.Warn("TLS certificate expires soon", "cert", kp.info)
	case now.Before(leaf.NotBefore):
		log.Warn("TLS certificate is not valid yet", "cert", kp.info)
	}
	for _, h := range hostnames {
		if err := leaf.VerifyHostname(h); err != nil {
			log.Warn("TLS certificate does not cover a configured hostname", "hostname", h, "cert", kp.info)
		}
	}
}
