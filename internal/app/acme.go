package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlscfg"
	"github.com/petrelmail/petrel/internal/tlscfg/acme"
)

// newACME builds the ACME manager for TLS_FLAVOR letsencrypt and
// mail-letsencrypt, nil for the other flavors. Mailu: letsencrypt.py,
// the account under POSTMASTER@DOMAIN.
func newACME(cfg *config.Config, st store.CertStorage, log *slog.Logger) (*acme.Manager, error) {
	switch cfg.TLSFlavor {
	case tlscfg.FlavorLetsencrypt, tlscfg.FlavorMailLetsencrypt:
	default:
		return nil, nil
	}
	var roots *x509.CertPool
	if f := cfg.ACMECARoots; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ACME_CA_ROOTS: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ACME_CA_ROOTS %s: no PEM certificate in the file", f)
		}
	}
	return acme.New(acme.Options{
		Hostnames:  cfg.Hostnames,
		Email:      cfg.Postmaster + "@" + cfg.Domain,
		Directory:  cfg.ACMEDirectory,
		Roots:      roots,
		ShortChain: cfg.LetsencryptShortchain,
		Storage:    st,
		Logger:     log,
	})
}

// startACME begins obtaining once the listeners are open: HTTP-01 on the
// port-80 role, TLS-ALPN-01 on 443 when the web is served there.
func startACME(ctx context.Context, cfg *config.Config, p *parts, serving map[int]string) error {
	if p.acme == nil {
		return nil
	}
	a := acme.Addrs{HTTP: serving[80]}
	if a.HTTP == "" {
		// No port-80 role: certmagic opens port 80 itself while it
		// solves a challenge.
		a.HTTP = cfg.Listeners[80].Addr
	}
	if webTLS(cfg, p.certs) {
		a.TLSALPN = serving[443]
	}
	return p.acme.Start(ctx, a)
}
