package tests

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsCountKnownTraffic: after two messages accepted on port 25,
// one recipient refused, one failed IMAP login and one IMAP session, a
// scrape of /metrics (with METRICS_TOKEN; 403 without it) shows exactly
// those counts, the queue gauges and the Go runtime.
func TestMetricsCountKnownTraffic(t *testing.T) {
	const token = "metrics-token-0123456789"
	s := withUsers(t, map[string]string{"METRICS": "true", "METRICS_TOKEN": token, "METRICS_NETWORKS": ""})

	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.example.org", "250")
	for i := range 2 {
		d.send("MAIL FROM:<bob@example.org>", "250")
		d.send("RCPT TO:<alice@example.test>", "250")
		if i == 0 {
			d.send("RCPT TO:<nobody@example.test>", "550")
		}
		d.send("DATA", "354")
		d.send("Subject: m\r\n\r\nhello\r\n.", "250")
	}
	d.send("QUIT", "221")

	script := `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
try:
    m.login("alice@example.test", "wrong-password")
except imaplib.IMAP4.error:
    print("refused")
m.logout()
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
m.select("INBOX")
m.logout()
`
	if out, err := runPython(t, script, map[string]string{"A993": s.addr[993]}); err != nil || !strings.Contains(out, "refused") {
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, s.logs())
	}

	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+s.addr[443]+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != http.StatusForbidden {
		t.Errorf("scrape without the token: %d, want 403", code)
	}
	if code, _ := scrape("wrong-token-0123456789"); code != http.StatusForbidden {
		t.Errorf("scrape with a wrong token: %d, want 403", code)
	}
	code, body := scrape(token)
	if code != 200 {
		t.Fatalf("scrape: %d\n%s", code, body)
	}
	value := func(series string) float64 {
		t.Helper()
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no series %s in:\n%s", series, body)
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	for series, want := range map[string]float64{
		`petrel_smtp_messages_total{proto="smtp",result="accepted"}`:         2,
		`petrel_smtp_rejections_total{code="550",proto="smtp",stage="rcpt"}`: 1,
		`petrel_local_deliveries_total{result="ok"}`:                         2,
		`petrel_auth_failures_total{protocol="imap",reason="badauth"}`:       1,
		`petrel_commands_total{command="LOGIN",proto="imap"}`:                2,
		`petrel_commands_total{command="SELECT",proto="imap"}`:               1,
		`petrel_connections_total{port="993"}`:                               2,
		`petrel_queue_messages{state="ready"}`:                               0,
		`petrel_queue_oldest_age_seconds`:                                    0,
		`petrel_queue_scrape_ok`:                                             1,
	} {
		if got := value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if n := value(`petrel_connections_total{port="25"}`); n < 1 {
		t.Errorf("no connection counted on port 25 (%v)", n)
	}
	if n := value(`petrel_store_seconds_count{op="commit_messages"}`); n < 1 {
		t.Errorf("no commit latency observed (%v)", n)
	}
	if !strings.Contains(body, "go_goroutines ") || !strings.Contains(body, "process_resident_memory_bytes ") {
		t.Error("the Go runtime and process collectors are missing")
	}
}

// TestMetricsOwnAddress: with METRICS_ADDRESS, /metrics is also served in
// plain HTTP on that address (to loopback without a token, by the default
// METRICS_NETWORKS) and counts the traffic of the mail ports; other paths
// there are not served, and the HTTP ports keep their /metrics.
func TestMetricsOwnAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := withUsers(t, map[string]string{"METRICS": "true", "METRICS_ADDRESS": addr})

	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.example.org", "250")
	for range 3 {
		d.send("MAIL FROM:<bob@example.org>", "250")
		d.send("RCPT TO:<alice@example.test>", "250")
		d.send("DATA", "354")
		d.send("Subject: m\r\n\r\nhello\r\n.", "250")
	}
	d.send("QUIT", "221")

	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, s.logs())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("http://" + addr + "/metrics")
	if code != 200 {
		t.Fatalf("scrape of METRICS_ADDRESS: %d\n%s", code, body)
	}
	for _, series := range []string{
		`petrel_smtp_messages_total{proto="smtp",result="accepted"} 3`,
		`petrel_local_deliveries_total{result="ok"} 3`,
	} {
		if !strings.Contains(body, "\n"+series+"\n") {
			t.Errorf("METRICS_ADDRESS scrape lacks %q:\n%s", series, body)
		}
	}
	if code, _ := get("http://" + addr + "/admin"); code != http.StatusNotFound {
		t.Errorf("METRICS_ADDRESS serves /admin: %d", code)
	}
	if code, body := get("https://" + s.addr[443] + "/metrics"); code != 200 || !strings.Contains(body, "petrel_smtp_messages_total") {
		t.Errorf("the HTTP port's /metrics: %d", code)
	}
	if !strings.Contains(s.logs(), "metrics: on at http://"+addr+"/metrics") {
		t.Errorf("start-up does not say where metrics are served:\n%s", s.logs())
	}
}
