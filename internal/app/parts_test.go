package app

import (
	"context"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/store"
)

// testParts builds the parts as serve does, on a fresh DATA_DIR for
// example.test without TLS, with extra settings on top and no logs. They
// are closed when the test ends.
func testParts(t testing.TB, extra map[string]string) (*config.Config, *parts) {
	t.Helper()
	return testPartsLogged(t, extra, slog.New(slog.DiscardHandler))
}

// testPartsLogged is testParts logging to log.
func testPartsLogged(t testing.TB, extra map[string]string, log *slog.Logger) (*config.Config, *parts) {
	t.Helper()
	env := map[string]string{
		"DATA_DIR":   t.TempDir(),
		"DOMAIN":     "example.test",
		"HOSTNAMES":  "mail.example.test",
		"SECRET_KEY": "0123456789abcdef0123456789abcdef",
		"TLS_FLAVOR": "notls",
	}
	maps.Copy(env, extra)
	cfg, problems := config.Parse(env)
	if config.HasErrors(problems) {
		t.Fatalf("config: %v", problems)
	}
	p, err := build(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return cfg, p
}

// addDomain creates example.test, without limits.
func addDomain(t testing.TB, p *parts) {
	t.Helper()
	if err := p.store.CreateDomain(context.Background(), &store.Domain{Name: "example.test", MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
}

// deliverRaw delivers raw from sender to rcpts through the router and
// the deliverer, as port 25 does after DATA.
func deliverRaw(t testing.TB, p *parts, id, sender, raw string, rcpts ...string) {
	t.Helper()
	ctx := context.Background()
	var routes []inbound.Route
	for _, r := range rcpts {
		route, err := p.router.Resolve(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, route)
	}
	sp, err := p.deliverer.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	env := &inbound.Envelope{ID: id, Sender: sender, Routes: routes, ReceivedAt: time.Now()}
	if err := (delivererAdapter{p.deliverer, p.queue}).Deliver(ctx, env, sp); err != nil {
		t.Fatalf("delivery of %s: %v", id, err)
	}
}
