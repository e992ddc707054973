package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/imapd"
	"github.com/petrelmail/petrel/internal/pop3d"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/smtpd"
	"github.com/petrelmail/petrel/internal/submit"
	"github.com/petrelmail/petrel/internal/tlscfg"
)

// server is what every protocol listener offers.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// boundServer is a server with its listening socket, not yet serving.
type boundServer struct {
	port int
	srv  server
	ln   net.Listener
}

// bind builds the server of every enabled role and opens its socket. A
// port that cannot be bound closes the ones already open and fails.
func bind(cfg *config.Config, p *parts) ([]boundServer, error) {
	var out []boundServer
	fail := func(err error) ([]boundServer, error) {
		for _, s := range out {
			s.ln.Close()
		}
		return nil, err
	}
	listen := func(port int, srv server) error {
		lc := cfg.Listeners[port]
		ln, err := net.Listen("tcp", lc.Addr)
		if err != nil {
			return fmt.Errorf("port %d: cannot listen on %s: %w (set LISTEN_%d or BIND_ADDRESS to change where)", port, lc.Addr, err, port)
		}
		out = append(out, boundServer{port: port, srv: srv, ln: ln})
		return nil
	}

	smtpCommon := smtpOptions(cfg, p)
	for _, r := range []struct {
		port int
		role smtpd.Role
	}{{25, smtpd.RoleMX}, {465, smtpd.RoleSubmissions}, {587, smtpd.RoleSubmission}} {
		if !cfg.Listeners[r.port].Enabled && r.port != 25 { // Mailu: port 25 is always on
			continue
		}
		o := smtpCommon
		o.Role = r.role
		o.TLSConfig = tlsFor(p.certs, r.port, cfg.TLSPermissive)
		if err := listen(r.port, smtpd.New(o)); err != nil {
			return fail(err)
		}
	}

	for _, r := range []struct {
		port     int
		implicit bool
	}{{993, true}, {143, false}} {
		if !cfg.Listeners[r.port].Enabled {
			continue
		}
		o := imapd.Options{
			Implicit:       r.implicit,
			TLSConfig:      tlsFor(p.certs, r.port, cfg.TLSPermissive),
			NoTLS:          !p.certs.Enabled(),
			Hostname:       cfg.Hostnames[0],
			Auth:           p.auth,
			Store:          p.store,
			Logger:         p.log,
			ConnIDs:        p.connIDs,
			MaxMessageSize: cfg.MessageSizeLimit,
		}
		if err := listen(r.port, imapd.New(o)); err != nil {
			return fail(err)
		}
	}

	for _, r := range []struct {
		port     int
		implicit bool
	}{{995, true}, {110, false}} {
		if !cfg.Listeners[r.port].Enabled {
			continue
		}
		o := pop3d.Options{
			Implicit:  r.implicit,
			TLSConfig: tlsFor(p.certs, r.port, cfg.TLSPermissive),
			NoTLS:     !p.certs.Enabled(),
			Hostname:  cfg.Hostnames[0],
			Auth:      p.auth,
			Store:     p.store,
			Logger:    p.log,
			ConnIDs:   p.connIDs,
		}
		if err := listen(r.port, pop3d.New(o)); err != nil {
			return fail(err)
		}
	}
	return out, nil
}

// smtpOptions are the settings all SMTP roles share.
func smtpOptions(cfg *config.Config, p *parts) smtpd.Options {
	var msgRate smtpd.RateLimiter // a nil interface, not a typed nil, when off
	if r := ratelimit.Rate(cfg.MessageRateLimit); r.Enabled() {
		msgRate = ratelimit.New(r, time.Now)
	}
	return smtpd.Options{
		Hostname:             cfg.Hostnames[0],
		NoTLS:                !p.certs.Enabled(),
		MaxMessageBytes:      cfg.MessageSizeLimit,
		InboundTLSEnforce:    cfg.InboundTLSForce,
		RelayNets:            cfg.RelayNets,
		WildcardSenders:      cfg.WildcardSenders,
		MessageRate:          msgRate,
		MessageRateExemption: cfg.MessageRateLimitExemption,
		Auth:                 p.auth,
		Router:               p.router,
		Deliverer:            delivererAdapter{p.deliverer, p.queue},
		Resolver:             p.resolver, // RESOLVER_ADDRESS applies to Received lookups too
		Submission: submit.New(submit.Options{
			Signers:  p.signers,
			Hostname: cfg.Hostnames[0],
			Logger:   p.log.With("part", "submit"),
		}),
		Logger:  p.log,
		ConnIDs: p.connIDs,
	}
}

// tlsFor returns the TLS configuration for a port: TLS 1.2+ everywhere
// AUTH happens, and on port 25 the legacy versions while TLS_PERMISSIVE.
func tlsFor(certs *tlscfg.Manager, port int, permissive bool) *tls.Config {
	if !certs.Enabled() {
		return nil
	}
	return certs.ServerConfig(!(port == 25 && permissive))
}
