package httpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/tlscfg"
)

// echo answers with its name, the path and the client address it sees.
func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, name+" "+r.URL.Path+" "+r.RemoteAddr)
	})
}

// start serves opts on a loopback port and returns its address.
func start(t *testing.T, opts Options) (string, *Server) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), s
}

func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	m, err := tlscfg.New(tlscfg.Options{CertsDir: filepath.Join(t.TempDir(), "certs"), Hostnames: []string{"mail.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	return m.ServerConfig(true)
}

func client(insecure bool) *http.Client {
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure}}, //nolint:gosec // test server, self-signed
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func fullOptions(mode Mode) Options {
	return Options{
		Mode:            mode,
		Hostnames:       []string{"mail.example.test", "mx2.example.test"},
		API:             echo("api"),
		Web:             echo("web"),
		Autoconfig:      echo("autoconfig"),
		ACME:            echo("acme"),
		Extra:           map[string]http.Handler{"GET /.well-known/mta-sts.txt": echo("mta-sts")},
		WebrootRedirect: "/admin",
	}
}

func TestTLSRoutesAndHeaders(t *testing.T) {
	o := fullOptions(ModeTLS)
	o.TLSConfig = testTLS(t)
	addr, _ := start(t, o)
	c := client(true)
	base := "https://" + addr
	cases := []struct {
		path   string
		status int
		body   string // prefix
	}{
		{"/api/v1/domain", 200, "api /api/v1/domain"},
		{"/api/v1/swagger.json", 200, "api /api/v1/swagger.json"},
		{"/admin", 200, "web /admin"},
		{"/admin/user/settings", 200, "web /admin/user/settings"},
		{"/sso/login", 200, "web /sso/login"},
		{"/.well-known/autoconfig/mail/config-v1.1.xml", 200, "autoconfig"},
		{"/mail/config-v1.1.xml", 200, "autoconfig"},
		{"/Autodiscover/Autodiscover.xml", 200, "autoconfig /Autodiscover/Autodiscover.xml"},
		{"/autodiscover/autodiscover.json", 200, "autoconfig"},
		{"/apple", 200, "autoconfig"},
		{"/.well-known/acme-challenge/abc", 200, "acme"},
		{"/.well-known/mta-sts.txt", 200, "mta-sts"},
		{"/health", 204, ""},
		{"/ping", 204, ""},
		{"/administrator", 404, ""},
		{"/nothing", 404, ""},
	}
	for _, tc := range cases {
		resp, body := get(t, c, base+tc.path)
		if resp.StatusCode != tc.status || !strings.HasPrefix(body, tc.body) {
			t.Errorf("GET %s: %d %q, want %d %q...", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
		h := resp.Header
		if h.Get("Strict-Transport-Security") == "" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			strings.Contains(h.Get("Content-Security-Policy"), "unsafe-inline") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("GET %s: security headers missing: %v", tc.path, h)
		}
	}
	resp, _ := get(t, c, base+"/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/admin" {
		t.Errorf("GET /: %d %q, want 302 to /admin", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, c, base+"/api/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/api/v1/" {
		t.Errorf("GET /api/: %d %q, want 302 to /api/v1/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestTLSVersions(t *testing.T) {
	o := fullOptions(ModeTLS)
	o.TLSConfig = testTLS(t)
	addr, _ := start(t, o)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}) //nolint:gosec // test
		if err == nil {
			conn.Close()
			t.Errorf("TLS version %x accepted; want 1.2+", v)
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}) //nolint:gosec // test
	if err != nil {
		t.Fatalf("TLS 1.2 refused: %v", err)
	}
	conn.Close()
	if _, err := New(Options{Mode: ModeTLS}); err == nil {
		t.Error("ModeTLS without TLSConfig accepted")
	}
}

func TestRedirectMode(t *testing.T) {
	o := fullOptions(ModeRedirect)
	o.HTTPSPort = 8443
	o.Health = func(context.Context) error { return errors.New("store down") }
	addr, _ := start(t, o)
	c := client(false)
	base := "http://" + addr

	// Everything else goes to HTTPS on a configured name, keeping the path.
	for _, tc := range []struct{ host, path, want string }{
		{"mx2.example.test", "/admin/x?y=1", "https://mx2.example.test:8443/admin/x?y=1"},
		{"evil.example", "/api/v1/domain", "https://mail.example.test:8443/api/v1/domain"},
		{"MAIL.example.test:80", "/autodiscover/autodiscover.xml", "https://mail.example.test:8443/autodiscover/autodiscover.xml"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != tc.want {
			t.Errorf("%s%s: %d %q, want 301 %q", tc.host, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS sent over plain HTTP (RFC 6797 7.2)")
		}
	}
	// POST keeps its method: 308.
	resp, err := c.Post(base+"/autodiscover/autodiscover.xml", "text/xml", strings.NewReader("<x/>"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("POST: %d, want 308", resp.StatusCode)
	}
	// What stays on port 80.
	for path, want := range map[string]string{
		"/.well-known/acme-challenge/tok":              "acme",
		"/.well-known/autoconfig/mail/config-v1.1.xml": "autoconfig",
		"/mail/config-v1.1.xml":                        "autoconfig",
	} {
		resp, body := get(t, c, base+path)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, want) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, resp.StatusCode, body, want)
		}
	}
	resp, body := get(t, c, base+"/health")
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "store down") {
		t.Errorf("unhealthy /health: %d %q, want 503 without the detail", resp.StatusCode, body)
	}
}

func TestPlainMode(t *testing.T) {
	o := fullOptions(ModePlain)
	o.APIPrefix, o.WebPrefix = "/rest/", "panel"
	addr, _ := start(t, o)
	c := client(false)
	for path, want := range map[string]string{
		"/rest/v1/user":                  "api",
		"/panel/domain":                  "web",
		"/sso/logout":                    "web",
		"/mail/config-v1.1.xml":          "autoconfig",
		"/autodiscover/autodiscover.xml": "autoconfig",
	} {
		resp, body := get(t, c, "http://"+addr+path)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, want) {
			t.Errorf("GET %s: %d %q, want %s", path, resp.StatusCode, body, want)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s: HSTS over plain HTTP", path)
		}
	}
	for _, path := range []string{"/api/v1/user", "/admin/"} {
		if resp, _ := get(t, c, "http://"+addr+path); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404 with moved prefixes", path, resp.StatusCode)
		}
	}
}

func TestNilHandlersAre404(t *testing.T) {
	addr, _ := start(t, Options{Mode: ModePlain})
	c := client(false)
	for _, path := range []string{"/", "/api/v1/domain", "/admin", "/sso/login", "/mail/config-v1.1.xml", "/.well-known/acme-challenge/x"} {
		if resp, _ := get(t, c, "http://"+addr+path); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, "http://"+addr+"/health"); resp.StatusCode != 204 {
		t.Errorf("/health: %d, want 204", resp.StatusCode)
	}
	if _, err := New(Options{Mode: ModePlain, WebPrefix: "/"}); err == nil {
		t.Error("WEB_ADMIN=/ accepted")
	}
	if _, err := New(Options{Mode: ModePlain, Web: echo("w"), Extra: map[string]http.Handler{"/admin/": echo("x")}}); err == nil {
		t.Error("conflicting Extra route accepted")
	}
}

func TestRealIP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		header  []string
		want    string
	}{
		{"untrusted peer: header ignored", []string{"10.0.0.0/8"}, []string{"203.0.113.9"}, "127.0.0.1"},
		{"trusted peer", []string{"127.0.0.0/8"}, []string{"203.0.113.9"}, "203.0.113.9"},
		{"list: rightmost untrusted", []string{"127.0.0.0/8", "10.0.0.0/8"}, []string{"198.51.100.7, 203.0.113.9, 10.1.1.1"}, "203.0.113.9"},
		{"two header lines", []string{"127.0.0.0/8"}, []string{"198.51.100.7", "203.0.113.9"}, "203.0.113.9"},
		{"ipv6 with port", []string{"127.0.0.0/8"}, []string{"[2001:db8::5]:443"}, "2001:db8::5"},
		{"garbage keeps the peer", []string{"127.0.0.0/8"}, []string{"not-an-ip"}, "127.0.0.1"},
		{"no header", []string{"127.0.0.0/8"}, nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Mode: ModePlain, API: echo("api"), RealIPHeader: "X-Forwarded-For"}
			for _, p := range tc.trusted {
				o.RealIPFrom = append(o.RealIPFrom, netip.MustParsePrefix(p))
			}
			addr, _ := start(t, o)
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/x", nil)
			for _, h := range tc.header {
				req.Header.Add("X-Forwarded-For", h)
			}
			resp, err := client(false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			host, _, _ := net.SplitHostPort(strings.Fields(string(b))[2])
			if host != tc.want {
				t.Errorf("handler saw %s, want %s", host, tc.want)
			}
		})
	}
}

func TestBodyLimitAndDeadline(t *testing.T) {
	var deadlineLeft time.Duration
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, ok := r.Context().Deadline(); ok {
			deadlineLeft = time.Until(d)
		}
		_, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	addr, _ := start(t, Options{Mode: ModePlain, API: h, MaxBodyBytes: 1000, HandlerTimeout: 5 * time.Second})
	c := client(false)
	for size, want := range map[int]int{1000: 200, 1001: 413} {
		resp, err := c.Post("http://"+addr+"/api/v1/x", "application/json", bytes.NewReader(make([]byte, size)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("body of %d bytes: %d, want %d", size, resp.StatusCode, want)
		}
	}
	if deadlineLeft <= 0 || deadlineLeft > 5*time.Second {
		t.Errorf("handler deadline %v, want within 5s", deadlineLeft)
	}
}

func TestGracefulShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	s, err := New(Options{Mode: ModePlain, API: h})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	got := make(chan string, 1)
	go func() {
		resp, err := client(false).Get("http://" + ln.Addr().String() + "/api/v1/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// New connections are refused while the request in progress finishes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if b := <-got; b != "finished" {
		t.Errorf("request in progress got %q, want finished", b)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{ModeTLS: "https", ModeRedirect: "redirect", ModePlain: "plain", Mode(9): "mode(" + strconv.Itoa(9) + ")"} {
		if m.String() != want {
			t.Errorf("%d: %q", m, m.String())
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	addr, _ := start(t, Options{Mode: ModePlain, MaxConnsPerIP: 2, MaxConns: 3})
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// refused reports whether the server closed c at once.
	refused := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	a, b := dial(), dial()
	c := dial()
	if refused(a) || refused(b) {
		t.Fatal("connections within the per-IP limit were closed")
	}
	if !refused(c) {
		t.Fatal("a third connection from one address was kept (limit 2)")
	}
	a.Close()
	time.Sleep(100 * time.Millisecond)
	d := dial()
	if refused(d) {
		t.Fatal("a slot freed by Close was not given back")
	}
	// The address itself still gets answers on a kept connection.
	if _, err := b.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(b).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 204") {
		t.Errorf("health on a kept connection: %q", line)
	}
	b.Close()
	d.Close()
	c.Close()
}

func TestConnectionLimitExemptsProxies(t *testing.T) {
	addr, _ := start(t, Options{Mode: ModePlain, MaxConnsPerIP: 1, RealIPHeader: "X-Real-IP", RealIPFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection %d from the trusted proxy was closed: %v", i, err)
		}
		c.Close()
	}
}
