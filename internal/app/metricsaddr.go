package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/metrics"
)

// metricsServer serves /metrics alone, in plain HTTP, on METRICS_ADDRESS:
// a scraper on loopback or a private network reaches it without the
// public HTTP ports (which keep their own /metrics). The same access
// rules apply: METRICS_TOKEN, or a client in METRICS_NETWORKS.
func metricsServer(cfg *config.Config, p *parts) server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", p.metrics.Handler(metrics.Access{Token: cfg.MetricsToken, Networks: cfg.MetricsNetworks}))
	return &plainHTTP{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}}
}

// plainHTTP is an http.Server as a server: a Shutdown is not a failure.
type plainHTTP struct{ srv *http.Server }

func (h *plainHTTP) Serve(ln net.Listener) error {
	if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (h *plainHTTP) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }
