// Package app is Petrel's composition root: it builds every part from the
// Config, runs the listeners and shuts down cleanly. It is the only package
// that knows all the others.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/smtpd"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/tlscfg"
)

// drainTimeout bounds how long shutdown waits for sessions in progress.
const drainTimeout = 30 * time.Second

// Run serves until ctx is cancelled (SIGTERM/SIGINT), then stops accepting,
// drains and returns nil. Every listener is opened before any is served, so
// a port that cannot be bound stops start-up with a clear error.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	secret, err := secretKey(cfg, log)
	if err != nil {
		return err
	}

	st, err := sqlstore.OpenConfig(ctx, cfg, log.With("part", "store"))
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	svc := admin.New(st, admin.Options{
		DefaultQuota:         cfg.DefaultQuota,
		DefaultSpamThreshold: cfg.DefaultSpamThreshold,
		CredentialRounds:     cfg.CredentialRounds,
		DKIMPath:             cfg.DKIMPath,
		DKIMSelector:         cfg.DKIMSelector,
		Logger:               log.With("part", "admin"),
	})
	if _, err := svc.EnsureInitialAdmin(ctx, cfg.InitialAdminAccount, cfg.InitialAdminDomain, cfg.InitialAdminPw, cfg.InitialAdminMode); err != nil {
		return fmt.Errorf("INITIAL_ADMIN_ACCOUNT: %w", err)
	}

	certs, err := tlscfg.New(tlscfg.Options{
		Flavor:    cfg.TLSFlavor,
		CertsDir:  filepath.Join(cfg.DataDir, "certs"),
		CertFile:  cfg.TLSCertFilename,
		KeyFile:   cfg.TLSKeyFilename,
		Hostnames: cfg.Hostnames,
		Logger:    log.With("part", "tls"),
	})
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}

	authn := auth.New(auth.Options{
		Users:           st,
		IPLimit:         ratelimit.Rate(cfg.AuthRateLimitIP),
		UserLimit:       ratelimit.Rate(cfg.AuthRateLimitUser),
		IPv4Mask:        cfg.AuthRateLimitIPv4Mask,
		IPv6Mask:        cfg.AuthRateLimitIPv6Mask,
		Exemptions:      cfg.AuthRateLimitExemption,
		ExemptionLength: cfg.AuthRateLimitExemptionLen,
		RequireTokens:   cfg.AuthRequireTokens,
		Rounds:          cfg.CredentialRounds,
		Logger:          log.With("part", "auth"),
		FingerprintKey:  deriveKey(secret, "auth-fingerprint"),
	})

	router := inbound.NewRouter(inbound.RouterOptions{
		Accounts:   st,
		Delimiters: cfg.RecipientDelimiter,
		Logger:     log.With("part", "inbound"),
	})
	deliverer := inbound.NewDeliverer(inbound.DelivererOptions{
		Store:  st,
		Blobs:  st.Blobs(),
		Logger: log.With("part", "delivery"),
	})
	deliverer.Start(context.WithoutCancel(ctx))
	defer func() {
		if err := deliverer.Close(); err != nil {
			log.Error("closing the deliverer", "err", err)
		}
	}()

	var msgRate smtpd.RateLimiter
	if r := ratelimit.Rate(cfg.MessageRateLimit); r.Enabled() {
		msgRate = ratelimit.New(r, time.Now)
	}

	common := smtpd.Options{
		Hostname:             cfg.Hostnames[0],
		NoTLS:                !certs.Enabled(),
		MaxMessageBytes:      cfg.MessageSizeLimit,
		InboundTLSEnforce:    cfg.InboundTLSForce,
		RelayNets:            cfg.RelayNets,
		WildcardSenders:      cfg.WildcardSenders,
		MessageRate:          msgRate,
		MessageRateExemption: cfg.MessageRateLimitExemption,
		Auth:                 authn,
		Router:               router,
		Deliverer:            delivererAdapter{deliverer},
		Resolver:             net.DefaultResolver,
		Logger:               log,
		ConnIDs:              obs.NewConnIDs(),
	}

	type listener struct {
		srv *smtpd.Server
		ln  net.Listener
	}
	var listeners []listener
	serving := map[int]string{}
	closeAll := func() {
		for _, l := range listeners {
			l.ln.Close()
		}
	}
	for _, r := range []struct {
		port int
		role smtpd.Role
	}{{25, smtpd.RoleMX}, {465, smtpd.RoleSubmissions}, {587, smtpd.RoleSubmission}} {
		lc := cfg.Listeners[r.port]
		if !lc.Enabled && r.port != 25 {
			continue
		}
		opts := common
		opts.Role = r.role
		opts.TLSConfig = tlsFor(certs, r.port, cfg.TLSPermissive)
		ln, err := net.Listen("tcp", lc.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("port %d: cannot listen on %s: %w (set LISTEN_%d or BIND_ADDRESS to change where)", r.port, lc.Addr, err, r.port)
		}
		listeners = append(listeners, listener{smtpd.New(opts), ln})
		serving[r.port] = ln.Addr().String()
	}
	logRoles(log, cfg, certs.Enabled(), serving)

	// SIGHUP reloads the certificates; file changes are picked up too.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	go func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading certificates")
				if err := certs.Reload(); err != nil {
					log.Error("certificate reload failed; the old certificate stays in use", "err", err)
				}
			}
		}
	}()
	go func() { _ = certs.Watch(bg, tlscfg.DefaultWatchInterval) }()

	errc := make(chan error, len(listeners))
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Serve(l.ln); err != nil {
				errc <- err
			}
		}()
	}
	log.Info("petrel is running", "hostname", cfg.Hostnames[0], "domain", cfg.Domain, "data_dir", cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new connections; waiting for sessions in progress", "timeout", drainTimeout.String())
	case runErr = <-errc:
		log.Error("a listener failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	for _, l := range listeners {
		if err := l.srv.Shutdown(sctx); err != nil {
			log.Warn("sessions cut off at shutdown", "err", err)
		}
	}
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// tlsFor returns the TLS configuration for a port: TLS 1.2+ everywhere
// AUTH happens, and on port 25 the legacy versions while TLS_PERMISSIVE.
func tlsFor(certs *tlscfg.Manager, port int, permissive bool) *tls.Config {
	if !certs.Enabled() {
		return nil
	}
	return certs.ServerConfig(!(port == 25 && permissive))
}

// delivererAdapter lets smtpd's Deliverer interface hand back the concrete
// spool inbound.Deliverer made.
type delivererAdapter struct{ d *inbound.Deliverer }

func (a delivererAdapter) NewSpool() (smtpd.Spool, error) {
	sp, err := a.d.NewSpool()
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return sp, nil
}

func (a delivererAdapter) Deliver(ctx context.Context, env *inbound.Envelope, sp smtpd.Spool) error {
	s, ok := sp.(*inbound.Spool)
	if !ok {
		return errors.New("app: spool not made by the deliverer")
	}
	return a.d.Deliver(ctx, env, s)
}
