package app

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/admin/api"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/ratelimit"
)

// newAPI builds the REST API when API=true (config.Parse has already
// refused API=true without a usable API_TOKEN); nil means not served.
func newAPI(cfg *config.Config, p *parts) (http.Handler, error) {
	if !cfg.API {
		return nil, nil
	}
	return api.New(api.Options{
		Admin:   p.admin,
		Token:   cfg.APIToken,
		Prefix:  cfg.WebAPI + "/v1",
		Limiter: newAPILimiter(cfg, p.auth),
		DNS:     dnsOptions(cfg),
		Logger:  p.log.With("part", "api"),
	})
}

// dnsOptions are the settings the suggested DNS records follow.
func dnsOptions(cfg *config.Config) admin.DNSOptions {
	return admin.DNSOptions{
		Hostnames:    cfg.Hostnames,
		ServerDomain: cfg.Domain,
		DMARCRUA:     cfg.DMARCRUA,
		DMARCRUF:     cfg.DMARCRUF,
		Ports:        cfg.Ports,
		Served:       cfg.ServedPorts(),
		TLS:          cfg.TLSFlavor != "notls",
	}
}

// apiLimiter limits failed API tokens per client network with
// AUTH_RATELIMIT_IP (Mailu: the API shares utils.limiter with the mail
// logins). A network the mail logins have already locked out is refused
// too. The API's own failures are counted in this process only.
type apiLimiter struct {
	auth   *auth.Authenticator
	lim    *ratelimit.Limiter
	v4, v6 int
	exempt []netip.Prefix
}

func newAPILimiter(cfg *config.Config, a *auth.Authenticator) *apiLimiter {
	return &apiLimiter{
		auth:   a,
		lim:    ratelimit.New(ratelimit.Rate(cfg.AuthRateLimitIP), time.Now),
		v4:     cfg.AuthRateLimitIPv4Mask,
		v6:     cfg.AuthRateLimitIPv6Mask,
		exempt: cfg.AuthRateLimitExemption,
	}
}

func (l *apiLimiter) key(ip netip.Addr) (string, bool) {
	if !ip.IsValid() || slices.ContainsFunc(l.exempt, func(p netip.Prefix) bool { return p.Contains(ip) }) {
		return "", false
	}
	bits := l.v6
	if ip.Is4() {
		bits = l.v4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return "", false
	}
	return p.String(), true
}

func (l *apiLimiter) Limited(ctx context.Context, ip netip.Addr) bool {
	k, subject := l.key(ip)
	if !subject {
		return false
	}
	return !l.lim.Test(k) || (l.auth != nil && l.auth.IPRateLimited(ctx, ip))
}

func (l *apiLimiter) Failed(_ context.Context, ip netip.Addr) {
	if k, subject := l.key(ip); subject {
		l.lim.Hit(k)
	}
}
