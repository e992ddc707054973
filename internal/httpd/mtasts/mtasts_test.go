package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/httpd"
	"github.com/petrelmail/petrel/internal/tlscfg"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

func TestPolicyTextAndID(t *testing.T) {
	p, err := New("enforce", []string{"Mail.Example.Test.", "mx2.example.test", "mail.example.test", "192.0.2.1",
		"mta-sts.example.test", "autoconfig.example.test"}, 86400)
	if err != nil {
		t.Fatal(err)
	}
	want := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: mx2.example.test\r\nmax_age: 86400\r\n"
	if p.Text() != want {
		t.Fatalf("text %q, want %q", p.Text(), want)
	}
	// Our outbound parser (RFC 8461 3.2) must accept what we serve.
	parsed, err := tlspolicy.ParsePolicy(p.Text())
	if err != nil {
		t.Fatalf("tlspolicy rejects our policy: %v", err)
	}
	if !parsed.MatchesMX("mx2.example.test") || parsed.MatchesMX("other.example.test") {
		t.Errorf("parsed policy MX matching wrong: %+v", parsed)
	}
	id, err := tlspolicy.ParseRecord([]string{p.TXT()})
	if err != nil || id != p.ID() {
		t.Fatalf("record %q parses to %q, %v; want id %q", p.TXT(), id, err, p.ID())
	}
	// The id changes with every part of the policy, and only then.
	same, _ := New("enforce", []string{"mail.example.test", "mx2.example.test"}, 86400)
	if same.ID() != p.ID() {
		t.Errorf("same policy, different id: %s %s", same.ID(), p.ID())
	}
	for _, other := range []struct {
		mode   string
		mx     []string
		maxAge int64
	}{
		{"testing", []string{"mail.example.test", "mx2.example.test"}, 86400},
		{"enforce", []string{"mail.example.test"}, 86400},
		{"enforce", []string{"mail.example.test", "mx2.example.test"}, 86401},
	} {
		q, err := New(other.mode, other.mx, other.maxAge)
		if err != nil {
			t.Fatal(err)
		}
		if q.ID() == p.ID() {
			t.Errorf("%+v: id did not change", other)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		mx     []string
		maxAge int64
	}{
		{"strict", []string{"mail.example.test"}, 60},
		{"testing", nil, 60},
		{"testing", []string{"192.0.2.1"}, 60},
		{"testing", []string{"mail.example.test"}, 31557601},
	} {
		if _, err := New(tc.mode, tc.mx, tc.maxAge); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
	if _, err := New("none", nil, 86400); err != nil {
		t.Errorf("mode none without MX (policy withdrawal) refused: %v", err)
	}
}

func TestPolicyDomain(t *testing.T) {
	for host, want := range map[string]string{
		"mta-sts.example.test":          "example.test",
		"MTA-STS.Example.Test.:443":     "example.test",
		"mta-sts.example.test:8443":     "example.test",
		"mail.example.test":             "",
		"mta-sts.":                      "",
		"mta-sts.localhost":             "",
		"[::1]:443":                     "",
		"MTA-STS..0":                    "",
		"mta-sts.a..b":                  "",
		"mta-sts.a/b.example":           "",
		"mta-sts.xn--bcher-kva.example": "xn--bcher-kva.example",
	} {
		got, ok := PolicyDomain(host)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", host, got, ok, want)
		}
	}
}

func TestUncovered(t *testing.T) {
	got := Uncovered([]string{"example.test", "Other.Test"}, []string{"mail.example.test", "MTA-STS.example.test"})
	if len(got) != 1 || got[0] != "mta-sts.other.test" {
		t.Errorf("got %v", got)
	}
}

// TestServedOverHTTPS fetches the policy the way a sender does (RFC 8461
// 3.3): HTTPS to mta-sts.<domain> with SNI, verifying the certificate,
// through the real HTTPS role on a loopback socket.
func TestServedOverHTTPS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	certs, err := tlscfg.New(tlscfg.Options{CertsDir: dir, Hostnames: []string{"mail.example.test", "mta-sts.example.test", "mta-sts.gone.test"}})
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, tlscfg.DefaultCertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in cert.pem")
	}
	pol, err := New("testing", []string{"mail.example.test"}, 604800)
	if err != nil {
		t.Fatal(err)
	}
	var failLookup atomic.Bool
	h := Handler(Options{Policy: pol, IsLocal: func(_ context.Context, d string) (bool, error) {
		if failLookup.Load() {
			return false, errors.New("database down")
		}
		return d == "example.test", nil
	}})
	srv, err := httpd.New(httpd.Options{
		Mode: httpd.ModeTLS, TLSConfig: certs.Intermediate(), Hostnames: []string{"mail.example.test"},
		Extra: map[string]http.Handler{"GET " + Path: h},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addr := ln.Addr().String()
	c := &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			// Every name resolves to the test server.
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	fetch := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := fetch("https://mta-sts.example.test" + Path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	if resp.TLS == nil || resp.TLS.ServerName != "mta-sts.example.test" {
		t.Errorf("not fetched over TLS with SNI mta-sts.example.test: %+v", resp.TLS)
	}
	if body != pol.Text() {
		t.Errorf("body %q, want %q", body, pol.Text())
	}
	if p, err := tlspolicy.ParsePolicy(body); err != nil || p.Mode != tlspolicy.Mode("testing") {
		t.Errorf("served policy parses to %+v, %v", p, err)
	}

	// A domain that is not ours, and a host that is no policy host.
	if resp, _ := fetch("https://mta-sts.gone.test" + Path); resp.StatusCode != http.StatusNotFound {
		t.Errorf("foreign domain: status %d, want 404", resp.StatusCode)
	}
	if resp, _ := fetch("https://mail.example.test" + Path); resp.StatusCode != http.StatusNotFound {
		t.Errorf("main host: status %d, want 404", resp.StatusCode)
	}
	failLookup.Store(true)
	if resp, _ := fetch("https://mta-sts.example.test" + Path); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("store failure: status %d, want 503", resp.StatusCode)
	}
}
