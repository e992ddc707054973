package tlspolicy

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
)

// DANE for SMTP (RFC 7672): a server's TLSA records, when DNSSEC
// authenticated, say which certificate or trust anchor it must present.

// Usable reports whether a TLSA record can be used for SMTP (RFC 7672
// 3.1): DANE-TA(2) or DANE-EE(3) with a known selector and matching type.
// PKIX-TA(0) and PKIX-EE(1) records are unusable (3.1.3).
func Usable(t dnsres.TLSA) bool {
	if t.Usage != 2 && t.Usage != 3 {
		return false
	}
	if t.Selector > 1 {
		return false
	}
	switch t.MatchingType {
	case 0:
		return len(t.Data) > 0
	case 1:
		return len(t.Data) == sha256.Size
	case 2:
		return len(t.Data) == sha512.Size
	}
	return false
}

// matches reports whether cert matches one TLSA record's selector and
// matching type.
func matches(t dnsres.TLSA, cert *x509.Certificate) bool {
	var data []byte
	switch t.Selector {
	case 0:
		data = cert.Raw
	case 1:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch t.MatchingType {
	case 0:
		return bytes.Equal(data, t.Data)
	case 1:
		h := sha256.Sum256(data)
		return bytes.Equal(h[:], t.Data)
	case 2:
		h := sha512.Sum512(data)
		return bytes.Equal(h[:], t.Data)
	}
	return false
}

// ErrDANEMismatch is a certificate that matches none of the TLSA records.
var ErrDANEMismatch = errors.New("certificate does not match any TLSA record")

// VerifyDANE checks a TLS connection against usable TLSA records (RFC
// 7672 3.1). A DANE-EE(3) record matches the server's own certificate,
// with no name or expiry check (3.1.1). A DANE-TA(2) record matches a
// certificate the server sent in its chain, which then acts as the trust
// anchor: the leaf must chain to it, be current, and name one of names
// (3.1.2 and 3.2.2: the MX host name, and the next-hop domain). Unusable
// records are ignored; with none usable the caller should not call this.
func VerifyDANE(records []dnsres.TLSA, cs tls.ConnectionState, names []string, now time.Time) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("server sent no certificate")
	}
	leaf := certs[0]
	var taErr error
	for _, t := range records {
		if !Usable(t) {
			continue
		}
		if t.Usage == 3 {
			if matches(t, leaf) {
				return nil
			}
			continue
		}
		// DANE-TA: any certificate of the chain, the leaf excepted
		// (RFC 7672 3.1.2: a TA record names an issuer).
		for _, ca := range certs[1:] {
			if !matches(t, ca) {
				continue
			}
			if err := verifyTA(leaf, certs[1:], ca, names, now); err != nil {
				taErr = err
				continue
			}
			return nil
		}
	}
	if taErr != nil {
		return fmt.Errorf("DANE-TA: %w", taErr)
	}
	return ErrDANEMismatch
}

// verifyTA checks that leaf chains to ta through the other certificates
// sent, and that its name is one of names.
func verifyTA(leaf *x509.Certificate, chain []*x509.Certificate, ta *x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, c := range chain {
		if c != ta {
			inter.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return err
	}
	var nameErr error
	for _, n := range names {
		if n = strings.TrimSuffix(n, "."); n == "" {
			continue
		}
		if nameErr = leaf.VerifyHostname(n); nameErr == nil {
			return nil
		}
	}
	if nameErr == nil {
		nameErr = errors.New("no name to check")
	}
	return nameErr
}
