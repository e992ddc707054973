package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMTASTSPolicyServed fetches the MTA-STS policy from the running
// binary as a sender does (RFC 8461 3.3): HTTPS with SNI
// mta-sts.example.test, certificate verified, and checks the start-up log
// names the domain whose policy host no certificate covers.
func TestMTASTSPolicyServed(t *testing.T) {
	s := newServer(t, map[string]string{
		"HOSTNAMES":       "mail.example.test,mta-sts.example.test",
		"MTA_STS_MODE":    "enforce",
		"MTA_STS_MAX_AGE": "86400",
	})
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("", "domain", "other.test")
	s.start()

	pemBytes, err := os.ReadFile(filepath.Join(s.dataDir, "certs", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in cert.pem")
	}
	c := &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, s.addr[443])
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Get("https://mta-sts.example.test/.well-known/mta-sts.txt")
	if err != nil {
		t.Fatalf("GET policy: %v\n%s", err, s.logs())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// mta-sts.example.test is in HOSTNAMES for its certificate, not as MX.
	want := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 86400\r\n"
	if resp.StatusCode != 200 || string(body) != want {
		t.Errorf("policy: %d %q, want 200 %q", resp.StatusCode, body, want)
	}
	if resp.TLS == nil || resp.TLS.ServerName != "mta-sts.example.test" {
		t.Errorf("no TLS with SNI: %+v", resp.TLS)
	}
	// A domain that is not ours gets nothing (the certificate check is
	// skipped: only the answer matters here).
	ic := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test: checking the status only
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, s.addr[443])
		},
	}}
	resp, err = ic.Get("https://mta-sts.stranger.test/.well-known/mta-sts.txt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("foreign domain: %d, want 404", resp.StatusCode)
	}
	if !s.waitLog("certificate does not cover mta-sts.other.test,") && !s.waitLog("certificate does not cover mta-sts.other.test;") {
		t.Errorf("no warning about mta-sts.other.test:\n%s", s.logs())
	}
	if strings.Contains(s.logs(), "cover mta-sts.example.test") {
		t.Errorf("warned about the covered mta-sts.example.test:\n%s", s.logs())
	}
	if strings.Contains(s.logs(), "the policy changed") {
		t.Errorf("first start reported a policy change:\n%s", s.logs())
	}
	if err := s.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	// Another mode is another policy: the restart says to publish the new id.
	s.env["MTA_STS_MODE"] = "testing"
	s.start()
	if !s.waitLog("MTA-STS: the policy changed") {
		t.Errorf("no note of the changed policy:\n%s", s.logs())
	}
	if err := s.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
