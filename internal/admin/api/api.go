// Package api is Mailu's REST API (core/admin/mailu/api/v1) over the admin
// use cases: the same paths, verbs, JSON fields, messages and status codes,
// so existing Mailu API clients work unchanged. One route table (routes.go)
// drives both the handlers and the OpenAPI (Swagger 2.0) document at
// /swagger.json. Handlers parse, call one admin use case and map its error;
// no rule lives here that the web UI or the CLI would need too.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

// Limiter counts failed API logins per client address (Mailu:
// utils.limiter, shared with the mail logins: AUTH_RATELIMIT_IP).
type Limiter interface {
	// Limited reports whether ip may not try again now.
	Limited(ctx context.Context, ip netip.Addr) bool
	// Failed records a failed attempt from ip.
	Failed(ctx context.Context, ip netip.Addr)
}

// Options configure the API.
type Options struct {
	Admin *admin.Service
	// Token is API_TOKEN. New refuses one shorter than 4 characters
	// (Mailu: api/common.py never matches those).
	Token string
	// Prefix is WEB_API + "/v1" (default /api/v1): the API's own paths
	// follow it.
	Prefix  string
	Limiter Limiter          // nil: no limit
	DNS     admin.DNSOptions // for the dns_* fields of a domain
	Logger  *slog.Logger
}

// API serves /api/v1. It is an http.Handler that expects the full path.
type API struct {
	opts   Options
	svc    *admin.Service
	token  [sha256.Size]byte
	log    *slog.Logger
	mux    *http.ServeMux
	routes []route
}

// MinTokenLength is Mailu's shortest usable API_TOKEN.
const MinTokenLength = 4

// New builds the API.
func New(opts Options) (*API, error) {
	if opts.Admin == nil {
		return nil, errors.New("api: no admin service")
	}
	if len(opts.Token) < MinTokenLength {
		return nil, errors.New("api: API_TOKEN is shorter than 4 characters")
	}
	if opts.Prefix == "" {
		opts.Prefix = "/api/v1"
	}
	opts.Prefix = "/" + strings.Trim(opts.Prefix, "/")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{opts: opts, svc: opts.Admin, token: sha256.Sum256([]byte(opts.Token)), log: opts.Logger, mux: http.NewServeMux()}
	a.routes = a.table()
	for _, rt := range a.routes {
		a.mux.Handle(rt.method+" "+opts.Prefix+rt.path, a.authorized(rt))
	}
	// Mailu (flask-restx): the spec and the documentation root need no token.
	a.mux.HandleFunc("GET "+opts.Prefix+"/swagger.json", a.swaggerJSON)
	a.mux.HandleFunc("GET "+opts.Prefix+"/{$}", a.docRoot)
	a.mux.HandleFunc(opts.Prefix+"/", a.notFound)
	return a, nil
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// authorized checks the token before the route's handler (Mailu:
// common.api_token_authorization): first the per-IP limit (429), then a
// missing header (401), then the token itself, compared in constant time
// (403, counted against the IP).
func (a *API) authorized(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r)
		if a.opts.Limiter != nil && a.opts.Limiter.Limited(r.Context(), ip) {
			abort(w, http.StatusTooManyRequests, "Too many attempts from your IP (rate-limit)")
			return
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			abort(w, http.StatusUnauthorized, "A valid Authorization header is mandatory")
			return
		}
		// Mailu strips only "Bearer "; hashing first keeps the comparison
		// constant-time whatever the lengths.
		got := sha256.Sum256([]byte(strings.TrimPrefix(h, "Bearer ")))
		if subtle.ConstantTimeCompare(got[:], a.token[:]) != 1 {
			if a.opts.Limiter != nil {
				a.opts.Limiter.Failed(r.Context(), ip)
			}
			a.log.Warn("invalid API token", "remote", ip.String(), "path", r.URL.Path)
			abort(w, http.StatusForbidden, "Invalid API token")
			return
		}
		c := &call{api: a, w: w, r: r, route: &rt}
		if rt.body != nil {
			b, ok := c.decode(rt.body)
			if !ok {
				return
			}
			c.body = b
		}
		a.log.Debug("API call", "method", r.Method, "path", r.URL.Path, "remote", ip.String())
		rt.h(c)
	})
}

func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// notFound answers paths and methods the table does not have, in
// flask-restx's words.
func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, a.opts.Prefix)
	var allow []string
	for _, rt := range a.routes {
		if pathMatches(rt.path, rel) {
			allow = append(allow, rt.method)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		abort(w, http.StatusMethodNotAllowed, "The method is not allowed for the requested URL.")
		return
	}
	abort(w, http.StatusNotFound, "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
}

// pathMatches matches a route path with {params} against a request path.
func pathMatches(pattern, path string) bool {
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			if qs[i] == "" {
				return false
			}
		} else if ps[i] != qs[i] {
			return false
		}
	}
	return true
}

// docRoot is the documentation root Mailu serves Swagger UI at; Petrel
// serves a plain page pointing at the spec (no script, so the strict CSP
// holds).
func (a *API) docRoot(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Petrel API</title></head><body>` +
		`<h1>Mailu-compatible REST API</h1><p>The OpenAPI (Swagger 2.0) description is at <a href="swagger.json">swagger.json</a>. ` +
		`Every call needs the header <code>Authorization: Bearer API_TOKEN</code>.</p></body></html>`))
}

// call is one authorised request.
type call struct {
	api   *API
	w     http.ResponseWriter
	r     *http.Request
	route *route
	body  body
}

func (c *call) ctx() context.Context     { return c.r.Context() }
func (c *call) param(name string) string { return c.r.PathValue(name) }

// json writes v with status code.
func (c *call) json(code int, v any) { writeJSON(c.w, code, v) }

// msg is Mailu's handler answer: {"code": N, "message": "..."} with the
// same status.
func (c *call) msg(code int, text string) {
	writeJSON(c.w, code, obj{{"code", code}, {"message", text}})
}

// fail maps an admin error to Mailu's answer: invalid input 400, missing
// 404, a clash or a limit 409; anything else is logged and answers 500
// without detail.
func (c *call) fail(err error) {
	var ae *admin.Error
	text := err.Error()
	if errors.As(err, &ae) {
		text = ae.Msg
	}
	switch {
	case errors.Is(err, admin.ErrInvalid):
		c.msg(http.StatusBadRequest, capitalize(text))
	case errors.Is(err, store.ErrNotFound):
		c.msg(http.StatusNotFound, capitalize(text))
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNameInUse), errors.Is(err, store.ErrLimit):
		c.msg(http.StatusConflict, capitalize(text))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		c.api.log.Warn("API call timed out", "path", c.r.URL.Path, "err", err)
		c.msg(http.StatusServiceUnavailable, "The request took too long; try again")
	default:
		c.api.log.Error("API call failed", "method", c.r.Method, "path", c.r.URL.Path, "err", err)
		c.msg(http.StatusInternalServerError, "Internal server error")
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// abort is flask-restx's abort(): {"message": "..."}.
func abort(w http.ResponseWriter, code int, text string) {
	writeJSON(w, code, obj{{"message", text}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ") // flask-restx indents
	if err := enc.Encode(v); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"message": "Internal server error"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// obj is a JSON object that keeps its key order (as flask-restx's
// OrderedDict marshalling does).
type obj []kv

type kv struct {
	k string
	v any
}

// MarshalJSON writes the members in order.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.k)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalNoEscape(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// skipNone drops null members (flask-restx marshal_with skip_none=True,
// used by every list).
func (o obj) skipNone() obj {
	out := make(obj, 0, len(o))
	for _, m := range o {
		if m.v == nil {
			continue
		}
		out = append(out, m)
	}
	return out
}

// nullable is s, or JSON null when empty (Mailu's nullable columns).
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// found answers a lookup's error: 404 with notFound when the row is
// missing, fail's mapping for anything else. It reports whether err is nil.
func (c *call) found(err error, notFound string) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		c.msg(http.StatusNotFound, notFound)
	default:
		c.fail(err)
	}
	return false
}
