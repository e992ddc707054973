// Package httpd serves Petrel's HTTP roles, Mailu's front on ports 80 and
// 443: TLS with the mail certificates, the redirect from 80 to 443, security
// headers, the client address behind trusted proxies, timeouts and body
// limits, and the routing to the REST API, the web UI, client
// autoconfiguration, the health check and the handlers later roles add
// (ACME challenges, MTA-STS, metrics). It holds no use case itself.
package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Mode says what one HTTP listener does.
type Mode int

const (
	// ModeTLS serves the site over TLS (port 443; TLS_FLAVOR cert and
	// letsencrypt).
	ModeTLS Mode = iota
	// ModeRedirect answers plain HTTP with a redirect to HTTPS, except for
	// what must stay on port 80: ACME HTTP-01 challenges, the health check
	// and Mozilla autoconfig (Thunderbird falls back to plain HTTP on
	// autoconfig.<domain>, whose name the certificate rarely covers).
	// Mailu: nginx.conf, port 80 under TLS_FLAVOR cert/letsencrypt.
	ModeRedirect
	// ModePlain serves the whole site in plain HTTP: TLS_FLAVOR=notls, or
	// mail/mail-letsencrypt behind a TLS-terminating proxy (Mailu: "HTTP
	// served in plain on :80 with no https redirect").
	ModePlain
)

func (m Mode) String() string {
	switch m {
	case ModeTLS:
		return "https"
	case ModeRedirect:
		return "redirect"
	case ModePlain:
		return "plain"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Defaults for Options.
const (
	DefaultMaxBodyBytes   = 1 << 20 // the API and the forms take small bodies
	DefaultHandlerTimeout = 30 * time.Second
	DefaultAPIPrefix      = "/api"
	DefaultWebPrefix      = "/admin"

	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 90 * time.Second // > DefaultHandlerTimeout, so a timed-out handler can still answer
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Options configure one HTTP listener. The handlers are mounted as
// documented on each field; a nil handler means "not served" (404).
// Handlers see r.RemoteAddr as the client's address: when the peer is a
// trusted proxy (RealIPFrom) and sends RealIPHeader, RemoteAddr has been
// replaced by the address the header names.
type Options struct {
	Mode      Mode
	TLSConfig *tls.Config // required for ModeTLS (the mail certificates, TLS 1.2+)
	// Hostnames are HOSTNAMES; the first is the canonical name (redirects
	// for other names go there, so the certificate matches).
	Hostnames []string
	// HTTPSPort is the port redirects point at; 0 or 443 leave it out
	// (LISTEN_443 may move the listener, e.g. in quickstart).
	HTTPSPort int

	// API is the REST API, mounted at APIPrefix + "/v1/" (Mailu: WEB_API
	// + /v1); it sees the full path. GET APIPrefix and APIPrefix + "/"
	// redirect to APIPrefix + "/v1/".
	API       http.Handler
	APIPrefix string // WEB_API; default /api

	// Web is the web UI, mounted at WebPrefix, WebPrefix + "/..." and
	// "/sso/..." (Mailu: WEB_ADMIN and the SSO pages); it sees the full path.
	Web       http.Handler
	WebPrefix string // WEB_ADMIN; default /admin

	// Autoconfig serves client autoconfiguration at AutoconfigPaths
	// (matched case-insensitively, as Outlook varies the case).
	Autoconfig http.Handler

	// ACME answers /.well-known/acme-challenge/ on every mode, never
	// redirected (RFC 8555 8.3 allows redirects, but port 80 must answer).
	ACME http.Handler

	// Extra maps net/http ServeMux patterns ("GET /.well-known/mta-sts.txt",
	// "/metrics") to handlers, for roles added later. They are served on
	// ModeTLS and ModePlain, not on ModeRedirect.
	Extra map[string]http.Handler

	// WebrootRedirect is where "/" redirects (WEBROOT_REDIRECT); "" leaves
	// "/" unanswered (404).
	WebrootRedirect string

	// RealIPHeader (REAL_IP_HEADER, e.g. X-Forwarded-For or X-Real-IP) is
	// honoured only from peers in RealIPFrom (REAL_IP_FROM).
	RealIPHeader string
	RealIPFrom   []netip.Prefix

	// Health checks what a load balancer needs (the store answers); nil
	// means always healthy. Served at /health and /ping.
	Health func(context.Context) error

	MaxConns       int           // open connections at most; default DefaultMaxConns
	MaxConnsPerIP  int           // per client address, RealIPFrom exempt; default DefaultMaxConnsPerIP
	MaxBodyBytes   int64         // request body limit for every handler; default DefaultMaxBodyBytes
	HandlerTimeout time.Duration // context deadline of every request; default DefaultHandlerTimeout
	Logger         *slog.Logger
}

// AutoconfigPaths are the paths Options.Autoconfig is mounted at. Mailu:
// core/nginx/conf/nginx.conf and admin internal/views/autoconfig.py.
func AutoconfigPaths() []string {
	return []string{
		"/.well-known/autoconfig/mail/config-v1.1.xml", // Thunderbird, autoconfig.<domain>
		"/mail/config-v1.1.xml",                        // Thunderbird, older lookup
		"/autodiscover/autodiscover.xml",               // Outlook (POST), any case
		"/autodiscover/autodiscover.json",              // Outlook JSON form
		"/apple",                                       // Apple .mobileconfig profile (Mailu's path)
		"/mobileconfig",
		"/apple.mobileconfig",
	}
}

// mozillaPaths stay reachable in plain HTTP under ModeRedirect.
func mozillaPaths() []string { return AutoconfigPaths()[:2] }

// Server is one HTTP listener. Serve and Shutdown match the other roles.
type Server struct {
	opts Options
	srv  *http.Server
	log  *slog.Logger
	root http.Handler
}

// New builds a Server. It fails on a ModeTLS server without TLS.
func New(opts Options) (*Server, error) {
	if opts.Mode == ModeTLS && opts.TLSConfig == nil {
		return nil, errors.New("httpd: HTTPS without a TLS configuration")
	}
	if opts.APIPrefix == "" {
		opts.APIPrefix = DefaultAPIPrefix
	}
	if opts.WebPrefix == "" {
		opts.WebPrefix = DefaultWebPrefix
	}
	for _, p := range []*string{&opts.APIPrefix, &opts.WebPrefix} {
		*p = "/" + strings.Trim(*p, "/")
		if *p == "/" {
			return nil, errors.New("httpd: WEB_API and WEB_ADMIN must not be /")
		}
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerIP <= 0 {
		opts.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if opts.HandlerTimeout <= 0 {
		opts.HandlerTimeout = DefaultHandlerTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger.With("proto", opts.Mode.String())}
	mux, err := s.routes()
	if err != nil {
		return nil, err
	}
	s.root = s.wrap(mux)
	s.srv = &http.Server{
		Handler:           s.root,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshake failures and the like: scanners make plenty.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if opts.Mode == ModeTLS {
		tc := opts.TLSConfig.Clone()
		if len(tc.NextProtos) == 0 {
			tc.NextProtos = []string{"h2", "http/1.1"}
		}
		s.srv.TLSConfig = tc
	}
	return s, nil
}

// Handler is the whole site with every middleware, for tests and for
// callers that bring their own server.
func (s *Server) Handler() http.Handler { return s.root }

// Serve serves on ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("http listening", "addr", ln.Addr().String(), "mode", s.opts.Mode.String())
	ln = newLimitListener(ln, s.opts.MaxConns, s.opts.MaxConnsPerIP, s.trusted)
	var err error
	if s.opts.Mode == ModeTLS {
		err = s.srv.ServeTLS(ln, "", "") // certificates come from TLSConfig.GetCertificate
	} else {
		err = s.srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets requests in progress finish until ctx
// ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}

// routes builds the mux of the mode.
func (s *Server) routes() (*http.ServeMux, error) {
	o := s.opts
	mux := http.NewServeMux()
	handle := func(pattern string, h http.Handler) (err error) {
		defer func() { // ServeMux panics on a bad or conflicting pattern
			if v := recover(); v != nil {
				err = fmt.Errorf("httpd: route %q: %v", pattern, v)
			}
		}()
		mux.Handle(pattern, h)
		return nil
	}
	if o.ACME != nil {
		if err := handle("/.well-known/acme-challenge/", o.ACME); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{"GET /health", "GET /ping"} {
		if err := handle(p, http.HandlerFunc(s.health)); err != nil {
			return nil, err
		}
	}
	if o.Mode == ModeRedirect {
		if err := handle("/", http.HandlerFunc(s.redirectHTTPS)); err != nil {
			return nil, err
		}
		return mux, nil
	}

	if o.API != nil {
		v1 := o.APIPrefix + "/v1/"
		if err := handle(v1, o.API); err != nil {
			return nil, err
		}
		// Mailu: GET /api/ redirects to the v1 root.
		for _, p := range []string{"GET " + o.APIPrefix + "/{$}", "GET " + o.APIPrefix + "/v1"} {
			if err := handle(p, http.RedirectHandler(v1, http.StatusFound)); err != nil {
				return nil, err
			}
		}
		if err := handle("GET "+o.APIPrefix, http.RedirectHandler(v1, http.StatusFound)); err != nil {
			return nil, err
		}
	}
	if o.Web != nil {
		for _, p := range []string{o.WebPrefix, o.WebPrefix + "/", "/sso/"} {
			if err := handle(p, o.Web); err != nil {
				return nil, err
			}
		}
	}
	for p, h := range o.Extra {
		if err := handle(p, h); err != nil {
			return nil, err
		}
	}
	if o.WebrootRedirect != "" {
		if err := handle("GET /{$}", http.RedirectHandler(o.WebrootRedirect, http.StatusFound)); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

// health answers load balancers: 204 when healthy, 503 when not (Mailu's
// front answers /health with 204).
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.opts.Health != nil {
		if err := s.opts.Health(r.Context()); err != nil {
			s.log.Warn("health check failed", "err", err)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("unhealthy\n"))
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// redirectHTTPS sends plain-HTTP requests to the same path over HTTPS on
// a configured host name (so the certificate matches, and a forged Host
// header cannot send anyone elsewhere). Mailu: return 301 https://...
func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := s.canonicalHost(r.Host)
	if p := s.opts.HTTPSPort; p != 0 && p != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(p))
	}
	target := "https://" + host + r.URL.RequestURI()
	code := http.StatusMovedPermanently
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusPermanentRedirect // keep the method and body (RFC 9110 15.4.9)
	}
	http.Redirect(w, r, target, code)
}

// canonicalHost returns the request's host when it is one of Hostnames,
// else the first host name.
func (s *Server) canonicalHost(reqHost string) string {
	h := reqHost
	if hh, _, err := net.SplitHostPort(reqHost); err == nil {
		h = hh
	}
	for _, n := range s.opts.Hostnames {
		if strings.EqualFold(h, n) {
			return strings.ToLower(n)
		}
	}
	if len(s.opts.Hostnames) > 0 {
		return strings.ToLower(s.opts.Hostnames[0])
	}
	return "localhost"
}
