package httpd

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Security headers on every answer. A handler may replace any of them
// (Header().Set) before it writes.
const (
	// CSP: no inline script or style anywhere, nothing from elsewhere, no
	// framing (clickjacking), forms post only here.
	contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	// HSTS only over TLS (RFC 6797 7.2: not over plain HTTP). Two years,
	// no includeSubDomains: other names under the domain are not ours.
	strictTransportSecurity = "max-age=63072000"
)

// wrap puts the middleware around the mux, outermost first: client
// address, security headers, autoconfig routing (case-insensitive), body
// limit and deadline, access log.
func (s *Server) wrap(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.realIP(r)
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.opts.Mode == ModeTLS {
			h.Set("Strict-Transport-Security", strictTransportSecurity)
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.HandlerTimeout)
		defer cancel()
		r = r.WithContext(ctx)

		rec := &statusRecorder{ResponseWriter: w}
		var next http.Handler = mux
		if s.opts.Autoconfig != nil && s.isAutoconfig(r.URL.Path) {
			next = s.opts.Autoconfig
		}
		next.ServeHTTP(rec, r)
		lvl := s.log.Debug
		if rec.status >= 500 {
			lvl = s.log.Warn
		}
		lvl("http request", "method", r.Method, "path", r.URL.Path, "status", rec.code(),
			"remote", r.RemoteAddr, "bytes", rec.bytes, "ms", time.Since(start).Milliseconds())
	})
}

// isAutoconfig reports whether path is an autoconfig path served on this
// mode: all of them, except that ModeRedirect keeps only Mozilla's in
// plain HTTP.
func (s *Server) isAutoconfig(path string) bool {
	paths := AutoconfigPaths()
	if s.opts.Mode == ModeRedirect {
		paths = mozillaPaths()
	}
	for _, p := range paths {
		if strings.EqualFold(path, p) {
			return true
		}
	}
	// Outlook: /autodiscover/autodiscover.json/v1.0/<address>?Protocol=...
	const adJSON = "/autodiscover/autodiscover.json/"
	return s.opts.Mode != ModeRedirect && len(path) > len(adJSON) && strings.EqualFold(path[:len(adJSON)], adJSON)
}

// realIP replaces r.RemoteAddr with the address in RealIPHeader when the
// peer is a trusted proxy. For a list (X-Forwarded-For) the rightmost
// address that is not itself a trusted proxy is the client: everything
// left of it was written by parties we cannot trust. Mailu: nginx
// real_ip_header with set_real_ip_from and real_ip_recursive on.
func (s *Server) realIP(r *http.Request) {
	if s.opts.RealIPHeader == "" || len(s.opts.RealIPFrom) == 0 {
		return
	}
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return
	}
	vals := r.Header.Values(s.opts.RealIPHeader)
	if len(vals) == 0 {
		return
	}
	var items []string
	for _, v := range vals {
		items = append(items, strings.Split(v, ",")...)
	}
	var client netip.Addr
	for i := len(items) - 1; i >= 0; i-- {
		a, ok := parseForwardedAddr(items[i])
		if !ok {
			return // a garbled header: keep the proxy's address
		}
		client = a
		if !s.trusted(a) {
			break
		}
	}
	if client.IsValid() {
		r.RemoteAddr = net.JoinHostPort(client.String(), port)
	}
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.opts.RealIPFrom {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwardedAddr reads one address as proxies write them: "192.0.2.1",
// "2001:db8::1", "[2001:db8::1]:443" or "192.0.2.1:5555".
func parseForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// statusRecorder notes the status and size of an answer for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Flush passes a flush on (streamed answers, server-sent events).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if r.status == 0 {
			r.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
