// Package web is Petrel's admin web UI (Mailu's admin app: core/admin/mailu/ui
// and sso): sign-in, each user's own settings, and the pages of domain
// managers and global admins. Pages are rendered on the server with
// html/template from embedded files; there is no JavaScript at all, so the
// UI works with a strict Content-Security-Policy, with keyboards and screen
// readers, and on small screens.
//
// Sessions are kept in the store (store.Web): the cookie holds a random
// secret, the store its SHA-256, so every node sharing the database knows
// the session and a sign-out or password change ends it everywhere. Every
// form carries the session's CSRF token and every unsafe request must also
// pass net/http.CrossOriginProtection.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the UI reads and writes directly; *sqlstore.Store is one.
// Changes go through admin.Service, which validates them.
type Store interface {
	store.Accounts
	store.Web
}

// Authenticator is the shared login check (auth.Authenticator): the same
// failed-login limits as IMAP and SMTP apply to the web sign-in.
type Authenticator interface {
	Authenticate(ctx context.Context, a auth.Attempt) (*auth.Result, error)
}

// Announcer delivers an announcement to every user (Mailu: /announcement)
// and returns how many got it.
type Announcer interface {
	Announce(ctx context.Context, subject, body string) (int, error)
}

// Options configure a Handler. Admin, Store and Auth are required.
type Options struct {
	Admin *admin.Service
	Store Store
	Auth  Authenticator
	// Announce sends announcements; nil hides the page.
	Announce Announcer
	// Fetches turns on the fetched accounts pages (FETCHMAIL_ENABLED); nil: off.
	Fetches *Fetches

	Prefix string // WEB_ADMIN; "" = /admin
	// Secure sets the Secure flag on cookies (SESSION_COOKIE_SECURE, and
	// off with TLS_FLAVOR=notls).
	Secure bool
	// SessionTimeout is SESSION_TIMEOUT (idle); 0 = 1 hour.
	SessionTimeout time.Duration
	// SessionLifetime is PERMANENT_SESSION_LIFETIME (absolute; the cookie
	// lifetime with "remember me"); 0 = 30 days.
	SessionLifetime time.Duration

	SiteName       string // SITENAME
	Website        string // WEBSITE
	LogoURL        string // LOGO_URL
	LogoBackground string // LOGO_BACKGROUND (a CSS colour)
	Hostname       string // first of HOSTNAMES: the server clients use
	// TLS is false with TLS_FLAVOR=notls (client setup shows 143/25).
	TLS bool
	// Records builds a domain's DNS records (the same code as petrel dns).
	Records func(info admin.DKIMInfo) ([]msgauth.Record, error)
	// ClientIP returns the client's address (REAL_IP_HEADER handling);
	// nil = the connection's remote address.
	ClientIP func(r *http.Request) netip.Addr
	Port     int // the HTTP role's port, for the auth log line; 0 = 443
	Log      *slog.Logger
	Now      func() time.Time
}

// Handler serves WEB_ADMIN and /sso/.
type Handler struct {
	opt    Options
	log    *slog.Logger
	now    func() time.Time
	pages  map[string]*template.Template
	mux    *http.ServeMux
	static http.Handler
	root   http.Handler
}

// New builds the UI handler.
func New(opt Options) (*Handler, error) {
	if opt.Admin == nil || opt.Store == nil || opt.Auth == nil {
		return nil, errors.New("web: Admin, Store and Auth are required")
	}
	if opt.Prefix == "" {
		opt.Prefix = "/admin"
	}
	opt.Prefix = "/" + strings.Trim(opt.Prefix, "/")
	if opt.Prefix == "/" || opt.Prefix == "/sso" {
		return nil, fmt.Errorf("web: WEB_ADMIN %q would hide the sign-in pages", opt.Prefix)
	}
	if opt.SessionTimeout <= 0 {
		opt.SessionTimeout = time.Hour
	}
	if opt.SessionLifetime <= 0 {
		opt.SessionLifetime = 30 * 24 * time.Hour
	}
	if opt.SiteName == "" {
		opt.SiteName = "Mailu"
	}
	if opt.Port == 0 {
		opt.Port = 443
	}
	h := &Handler{opt: opt, log: opt.Log, now: opt.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	var err error
	if h.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h.static = http.StripPrefix(opt.Prefix+"/static/", http.FileServerFS(sub))
	h.mux = http.NewServeMux()
	h.routes()
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.Warn("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "Forbidden: cross-origin request refused", http.StatusForbidden)
	}))
	h.root = cop.Handler(h.mux)
	return h, nil
}

// Prefix is WEB_ADMIN as the handler uses it ("/admin").
func (h *Handler) Prefix() string { return h.opt.Prefix }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.root.ServeHTTP(w, r) }

// Prune deletes ended sessions; run it now and then (app does, hourly).
func (h *Handler) Prune(ctx context.Context) error {
	now := h.now()
	n, err := h.opt.Store.PruneWebSessions(ctx, now, now.Add(-h.opt.SessionTimeout))
	if err == nil && n > 0 {
		h.log.Info("web sessions pruned", "count", n)
	}
	return err
}

func (h *Handler) clientIP(r *http.Request) netip.Addr {
	if h.opt.ClientIP != nil {
		return h.opt.ClientIP(r)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// route registers a handler for method and path below Prefix ("" = the
// sso pages, given with their /sso path). need says who may call it.
func (h *Handler) route(method, path string, need role, fn func(*request) error) {
	full := h.opt.Prefix + path
	if strings.HasPrefix(path, "/sso/") {
		full = path
	}
	h.mux.HandleFunc(method+" "+full, func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, need, fn)
	})
}

func (h *Handler) routes() {
	p := h.opt.Prefix
	h.mux.Handle("GET "+p+"/static/", h.static)
	h.mux.HandleFunc("GET "+p+"/theme.css", h.theme)
	h.mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/", http.StatusFound)
	})
	h.mux.HandleFunc("GET /sso/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/sso/login", http.StatusFound)
	})
	h.route("GET", "/{$}", roleUser, func(q *request) error { return q.redirect("/user/settings") })
	h.route("GET", "/ui/", roleAnon, func(q *request) error { return q.redirect("/") }) // Mailu: /ui/ moved

	h.route("GET", "/sso/login", roleAnon, h.loginForm)
	h.route("POST", "/sso/login", roleAnon, h.loginPost)
	h.route("GET", "/sso/totp", roleTOTP, h.totpForm)
	h.route("POST", "/sso/totp", roleTOTP, h.totpPost)
	h.route("GET", "/sso/logout", roleAnon, h.logoutForm)
	h.route("POST", "/sso/logout", roleAnon, h.logoutPost)
	h.route("GET", "/sso/pw_change", rolePwChange, h.pwChangeForm)
	h.route("POST", "/sso/pw_change", rolePwChange, h.pwChangePost)

	h.userRoutes()
	h.domainRoutes()
	h.accountRoutes()
	h.globalRoutes()
	h.fetchRoutes()
}

// theme is the one stylesheet made from settings: LOGO_BACKGROUND behind
// the header (config checks it is a plain CSS colour). A stylesheet keeps
// it out of inline styles, which the CSP forbids.
func (h *Handler) theme(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=300")
	if bg := h.opt.LogoBackground; bg != "" && !strings.ContainsAny(bg, ";{}<>\\\"'") {
		fmt.Fprintf(w, "header{background:%s}\n", bg)
	}
}

// allowLogo lets the page load LOGO_URL from its own origin when it is
// on another server (the CSP allows only 'self' images otherwise).
func (h *Handler) allowLogo(w http.ResponseWriter) {
	u, err := url.Parse(h.opt.LogoURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return
	}
	csp := w.Header().Get("Content-Security-Policy")
	if csp == "" || !strings.Contains(csp, "img-src 'self'") {
		return
	}
	w.Header().Set("Content-Security-Policy", strings.Replace(csp, "img-src 'self'", "img-src 'self' "+u.Scheme+"://"+u.Host, 1))
}
