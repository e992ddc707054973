package app

import (
	"crypto/tls"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/managesieve"
	"github.com/petrelmail/petrel/internal/sieve"
)

// manageSieve builds the ManageSieve server of port 4190 (when PORTS
// lists it): scripts in the store, checked by the same Sieve package that
// runs them at delivery, so what PUTSCRIPT accepts is what delivery runs.
func manageSieve(cfg *config.Config, p *parts, tc *tls.Config) *managesieve.Server {
	return managesieve.New(managesieve.Options{
		TLSConfig:    tc,
		NoTLS:        !p.certs.Enabled(),
		Hostname:     cfg.Hostnames[0],
		Auth:         p.auth,
		Store:        p.store,
		Validate:     sieve.Check,
		Extensions:   sieve.Extensions(),
		MaxRedirects: sieve.MaxRedirects,
		Logger:       p.log,
		ConnIDs:      p.connIDs,
	})
}
