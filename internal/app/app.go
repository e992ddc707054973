// Package app is Petrel's composition root: it builds every part from the
// Config, runs the listeners and shuts down cleanly. It is the only package
// that knows all the others.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/tlscfg"
)

// drainTimeout bounds how long shutdown waits for sessions in progress.
const drainTimeout = 30 * time.Second

// Run serves until ctx is cancelled (SIGTERM/SIGINT), then stops accepting,
// drains and returns nil. Every listener is opened before any is served, so
// a port that cannot be bound stops start-up with a clear error.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	p, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.close()

	servers, err := bind(cfg, p)
	if err != nil {
		return err
	}
	serving := make(map[int]string, len(servers))
	for _, s := range servers {
		serving[s.port] = s.ln.Addr().String()
	}
	logRoles(log, cfg, p.certs.Enabled(), serving, map[int]string{443: httpOff(cfg, p.certs, 443)})
	if a := serving[metricsPort]; a != "" {
		log.Info("metrics: on at http://"+a+"/metrics (METRICS_ADDRESS)", "addr", a)
	}

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	if err := startACME(bg, cfg, p, serving); err != nil {
		for _, s := range servers {
			s.ln.Close()
		}
		return err
	}
	var bgWG sync.WaitGroup
	bgWG.Add(1)
	go func() {
		defer bgWG.Done()
		reloadCerts(bg, p.certs, log)
	}()
	p.startBackground(bg, &bgWG)
	logMTASTS(ctx, cfg, p, mtastsServed(cfg, p))

	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Serve(s.ln); err != nil {
				errc <- fmt.Errorf("%s: %w", s.name(), err)
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
	for _, s := range servers {
		if err := s.srv.Shutdown(sctx); err != nil {
			log.Warn("sessions cut off at shutdown", "listener", s.name(), "err", err)
		}
	}
	wg.Wait()
	stopBG()
	bgWG.Wait()
	log.Info("stopped")
	return runErr
}

// reloadCerts reloads the certificates on SIGHUP and when the files change.
func reloadCerts(ctx context.Context, certs *tlscfg.Manager, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() { _ = certs.Watch(ctx, tlscfg.DefaultWatchInterval) }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading certificates")
			if err := certs.Reload(); err != nil {
				log.Error("certificate reload failed; the old certificate stays in use", "err", err)
			}
		}
	}
}
