package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/imapd"
	"github.com/petrelmail/petrel/internal/managesieve"
	"github.com/petrelmail/petrel/internal/msgrate"
	"github.com/petrelmail/petrel/internal/pop3d"
	"github.com/petrelmail/petrel/internal/proxyproto"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/smtpd"
	"github.com/petrelmail/petrel/internal/stats"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
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
		if slices.Contains(cfg.ProxyProtocol, port) {
			// PROXY_PROTOCOL: the client's address comes from the header
			// of a REAL_IP_FROM proxy, for logs, limits, RELAYNETS, SPF
			// and Received alike; anyone else is refused.
			ln = proxyproto.Listen(ln, proxyproto.Options{
				Trusted: cfg.RealIPFrom,
				Logger:  p.log.With("part", "proxy", "port", port),
			})
		}
		if p.metrics != nil {
			ln = p.metrics.Listener(ln, port)
		}
		out = append(out, boundServer{port: port, srv: srv, ln: ln})
		return nil
	}

	for _, r := range roleServers(cfg, p) {
		if !cfg.Listeners[r.port].Enabled && r.port != 25 { // Mailu: port 25 is always on
			continue
		}
		if err := listen(r.port, r.build(tlsFor(p.certs, r.port, cfg.TLSPermissive))); err != nil {
			return fail(err)
		}
	}
	web, err := httpServers(cfg, p)
	if err != nil {
		return fail(err)
	}
	for _, port := range []int{443, 80} {
		if srv := web[port]; srv != nil {
			if err := listen(port, srv); err != nil {
				return fail(err)
			}
		}
	}
	if p.metrics != nil && cfg.MetricsAddress != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddress)
		if err != nil {
			return fail(fmt.Errorf("METRICS_ADDRESS: cannot listen on %s: %w", cfg.MetricsAddress, err))
		}
		out = append(out, boundServer{port: metricsPort, srv: metricsServer(cfg, p), ln: ln})
	}
	return out, nil
}

// metricsPort stands for METRICS_ADDRESS's listener among the roles'
// port numbers.
const metricsPort = -1

// name is how logs and errors call a bound server.
func (s boundServer) name() string {
	if s.port == metricsPort {
		return "METRICS_ADDRESS"
	}
	return fmt.Sprintf("port %d", s.port)
}

// roleServer builds the server of one port from its TLS configuration.
type roleServer struct {
	port  int
	build func(*tls.Config) server
}

// roleServers lists every role Petrel serves, in start-up order.
func roleServers(cfg *config.Config, p *parts) []roleServer {
	smtpCommon := smtpOptions(cfg, p)
	smtpRole := func(port int, role smtpd.Role) roleServer {
		return roleServer{port, func(tc *tls.Config) server {
			o := smtpCommon
			o.Role, o.TLSConfig = role, tc
			return smtpd.New(o)
		}}
	}
	imapRole := func(port int, implicit bool) roleServer {
		return roleServer{port, func(tc *tls.Config) server {
			o := imapd.Options{
				Implicit: implicit, TLSConfig: tc, NoTLS: !p.certs.Enabled(), Hostname: cfg.Hostnames[0],
				Auth: p.auth, Store: p.store, Logger: p.log, ConnIDs: p.connIDs, MaxMessageSize: cfg.MessageSizeLimit,
				Space: p.reserve, FullTextSearch: cfg.FullTextSearch, FullTextAttachments: cfg.FullTextAttachments,
			}
			o.OnCommand = func(name string) {
				p.activity.Add(1) // the full-text indexer yields to IMAP users
				if p.metrics != nil {
					p.metrics.Command("imap", name)
				}
			}
			if p.learner != nil {
				o.CopyObserver = p.learner // Junk moves train the spam filters
			}
			return imapd.New(o)
		}}
	}
	popRole := func(port int, implicit bool) roleServer {
		return roleServer{port, func(tc *tls.Config) server {
			o := pop3d.Options{
				Implicit: implicit, TLSConfig: tc, NoTLS: !p.certs.Enabled(), Hostname: cfg.Hostnames[0],
				Auth: p.auth, Store: p.store, Logger: p.log, ConnIDs: p.connIDs,
			}
			if p.metrics != nil {
				o.OnCommand = func(verb string) { p.metrics.Command("pop3", verb) }
			}
			return pop3d.New(o)
		}}
	}
	return []roleServer{
		smtpRole(25, smtpd.RoleMX), smtpRole(465, smtpd.RoleSubmissions), smtpRole(587, smtpd.RoleSubmission),
		imapRole(993, true), imapRole(143, false),
		popRole(995, true), popRole(110, false),
		{managesieve.Port, func(tc *tls.Config) server { return manageSieve(cfg, p, tc) }},
	}
}

// smtpOptions are the settings all SMTP roles share.
func smtpOptions(cfg *config.Config, p *parts) smtpd.Options {
	var msgRate smtpd.RateLimiter // a nil interface, not a typed nil, when off
	if r := ratelimit.Rate(cfg.MessageRateLimit); r.Enabled() {
		// Several nodes share one PostgreSQL: the count lives there, so a
		// user does not get the limit once per node. SQLite is one node;
		// its count stays in memory.
		if p.store.Flavor() == sqlstore.FlavorPostgreSQL {
			msgRate = msgrate.NewShared(p.store, r)
		} else {
			msgRate = msgrate.NewMemory(r, time.Now)
		}
	}
	o := smtpd.Options{
		OnReject:          func() { p.stats.Count(stats.Rejected) },
		Hostname:          cfg.Hostnames[0],
		NoTLS:             !p.certs.Enabled(),
		MaxMessageBytes:   cfg.MessageSizeLimit,
		InboundTLSEnforce: cfg.InboundTLSForce,
		RelayNets:         cfg.RelayNets,
		// Mailu: mynetworks = 127.0.0.1/32 [::1]/128 RELAYNETS; the rest of
		// 127.0.0.0/8 stays limited, so a local abuser is not exempt.
		PerIPExempt:          append([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}, cfg.RelayNets...),
		WildcardSenders:      cfg.WildcardSenders,
		MessageRate:          msgRate,
		MessageRateExemption: cfg.MessageRateLimitExemption,
		Auth:                 p.auth,
		Router:               p.router,
		Deliverer:            delivererAdapter{p.deliverer, p.queue},
		Resolver:             p.resolver, // RESOLVER_ADDRESS applies to Received lookups too
		Space:                p.reserve,  // DISK_RESERVE
		Submission: submit.New(submit.Options{
			Signers:  p.signers,
			Hostname: cfg.Hostnames[0],
			Logger:   p.log.With("part", "submit"),
		}),
		Logger:  p.log,
		ConnIDs: p.connIDs,
	}
	inboundChecks(cfg, p, &o) // checks.go
	return o
}

// tlsFor returns the TLS configuration for a port: Mozilla's intermediate
// profile everywhere AUTH happens, and on port 25 the legacy versions and
// suites too while TLS_PERMISSIVE. nil for notls.
func tlsFor(certs *tlscfg.Manager, port int, permissive bool) *tls.Config {
	if port == 25 && permissive {
		return certs.Permissive()
	}
	return certs.Intermediate()
}
