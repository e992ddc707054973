package app

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/httpd"
	"github.com/petrelmail/petrel/internal/httpd/autoconfig"
	"github.com/petrelmail/petrel/internal/httpd/mtasts"
	"github.com/petrelmail/petrel/internal/metrics"
	"github.com/petrelmail/petrel/internal/tlscfg"
	"github.com/petrelmail/petrel/internal/tlscfg/acme"
)

// webTLS reports whether the web is served over TLS on 443. Mailu: only
// TLS_FLAVOR cert and letsencrypt; the mail flavors serve the web in plain
// on 80 for a TLS-terminating proxy, notls has no TLS at all.
func webTLS(cfg *config.Config, certs *tlscfg.Manager) bool {
	if !certs.Enabled() {
		return false
	}
	switch cfg.TLSFlavor {
	case tlscfg.FlavorMail, tlscfg.FlavorMailLetsencrypt:
		return false
	}
	return true
}

// httpOff says why an enabled HTTP port is not served, or "".
func httpOff(cfg *config.Config, certs *tlscfg.Manager, port int) string {
	if port == 443 && cfg.Listeners[443].Enabled && !webTLS(cfg, certs) {
		return "TLS_FLAVOR=" + cfg.TLSFlavor + " serves the web in plain HTTP on port 80, for a TLS-terminating proxy"
	}
	return ""
}

// newWebUI builds the web UI (internal/admin/web: sign-in at /sso, the
// admin and self-service pages under WEB_ADMIN). It returns nil while the
// web UI is not built in: its paths then answer 404.
func newWebUI(p *parts) (http.Handler, error) {
	return buildWebUI(p) // webui.go
}

// httpServers builds the servers of ports 80 and 443 that are on.
func httpServers(cfg *config.Config, p *parts) (map[int]server, error) {
	on80, on443 := cfg.Listeners[80].Enabled, cfg.Listeners[443].Enabled && webTLS(cfg, p.certs)
	if !on80 && !on443 {
		return nil, nil
	}
	web, err := newWebUI(p)
	if err != nil {
		return nil, fmt.Errorf("web UI: %w", err)
	}
	api, err := newAPI(cfg, p)
	if err != nil {
		return nil, fmt.Errorf("REST API: %w", err)
	}
	base := httpd.Options{
		Hostnames:       cfg.Hostnames,
		HTTPSPort:       portNumber(cfg.Listeners[443].Addr),
		API:             api,
		APIPrefix:       cfg.WebAPI,
		Web:             web,
		WebPrefix:       cfg.WebAdmin,
		Autoconfig:      newAutoconfig(cfg, p, web != nil),
		WebrootRedirect: webrootRedirect(cfg, web != nil),
		RealIPHeader:    cfg.RealIPHeader,
		RealIPFrom:      cfg.RealIPFrom,
		Health:          p.store.Ping,
		Logger:          p.log.With("part", "http"),
	}
	if p.acme != nil {
		base.ACME = p.acme.HTTPHandler() // HTTP-01, answered from the store on every node
	}
	if p.metrics != nil {
		// Mailu has no metrics; METRICS_TOKEN or METRICS_NETWORKS guard them.
		base.Extra = map[string]http.Handler{"GET /metrics": p.metrics.Handler(metrics.Access{
			Token: cfg.MetricsToken, Networks: cfg.MetricsNetworks,
		})}
	}
	// RFC 8461 3.3: the policy of every local domain, over HTTPS (on 443,
	// or on 80 behind a TLS proxy; the redirect mode does not serve it).
	sts, err := newMTASTS(cfg, p)
	if err != nil {
		return nil, fmt.Errorf("MTA-STS policy: %w", err)
	}
	if base.Extra == nil {
		base.Extra = map[string]http.Handler{}
	}
	base.Extra["GET "+mtasts.Path] = sts
	out := map[int]server{}
	if on443 {
		o := base
		// Mozilla's intermediate profile, as every server with AUTH.
		o.Mode, o.TLSConfig = httpd.ModeTLS, p.certs.Intermediate()
		if p.acme != nil {
			o.TLSConfig.NextProtos = []string{"h2", "http/1.1", acme.ALPNProto} // TLS-ALPN-01 (RFC 8737)
		}
		s, err := httpd.New(o)
		if err != nil {
			return nil, err
		}
		out[443] = s
	}
	if on80 {
		o := base
		o.Mode = httpd.ModePlain
		if on443 {
			o.Mode = httpd.ModeRedirect
		}
		s, err := httpd.New(o)
		if err != nil {
			return nil, err
		}
		out[80] = s
	}
	return out, nil
}

// mtastsServed reports whether an HTTP role serves the MTA-STS policy:
// 443 with TLS, else 80 in plain mode (behind a TLS-terminating proxy).
func mtastsServed(cfg *config.Config, p *parts) bool {
	return cfg.Listeners[443].Enabled && webTLS(cfg, p.certs) || cfg.Listeners[80].Enabled
}

// webrootRedirect is where / goes: WEBROOT_REDIRECT, by default WEB_ADMIN
// when the web UI is served; "none" switches it off.
func webrootRedirect(cfg *config.Config, webUI bool) string {
	switch v := cfg.WebrootRedirect; {
	case strings.EqualFold(v, "none"):
		return ""
	case v != "":
		return v
	case webUI:
		return cfg.WebAdmin
	}
	return ""
}

// portNumber returns the port of a listen address, or 0.
func portNumber(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// newAutoconfig builds client autoconfiguration from the ports that are
// on (Mailu: 993 and 465 with implicit TLS; POP3 995 when on).
func newAutoconfig(cfg *config.Config, p *parts, webUI bool) http.Handler {
	tlsOn := p.certs.Enabled()
	o := autoconfig.Options{
		Hostname: cfg.Hostnames[0],
		SiteName: cfg.SiteName,
		TLS:      tlsOn,
	}
	if tlsOn {
		o.POP3 = cfg.Listeners[995].Enabled
	} else {
		o.POP3, o.IMAP143, o.Submit587 = cfg.Listeners[110].Enabled, cfg.Listeners[143].Enabled, cfg.Listeners[587].Enabled
	}
	if webUI && (webTLS(cfg, p.certs) || cfg.TLSFlavor == tlscfg.FlavorMail || cfg.TLSFlavor == tlscfg.FlavorMailLetsencrypt) {
		// The client setup page of the web UI (behind a TLS proxy for the mail flavors).
		o.DocURL = "https://" + cfg.Hostnames[0] + cfg.WebAdmin + "/client"
	}
	return autoconfig.New(o)
}
