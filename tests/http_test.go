package tests

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRESTAPIWithPython drives the real binary's REST API with Python's
// urllib (an independent client, as Mailu's users script it): create a
// domain, a user and an alias, read them back, check the errors Mailu
// gives, then log in over IMAP as the user the API created.
func TestRESTAPIWithPython(t *testing.T) {
	s := newServer(t, map[string]string{"API": "true", "API_TOKEN": "Api-Token-For-Tests-42"})
	s.start()
	script := `
import json, os, ssl, sys, urllib.request, urllib.error, imaplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
base = "https://" + os.environ["A443"] + "/api/v1"
def call(method, path, body=None, token="Api-Token-For-Tests-42"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token: req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)
def check(got, status, message):
    code, body, _ = got
    assert code == status and body.get("message") == message, (code, body, status, message)
check(call("POST", "/domain", {"name": "api.test", "max_users": 5, "alternatives": ["alt.test"]}), 200, "Domain api.test has been created")
check(call("POST", "/domain", {"name": "alt.test"}), 409, "Duplicate domain name alt.test")
check(call("POST", "/user", {"email": "carol@api.test", "raw_password": "Carol-Pw-1", "displayed_name": "Carol"}), 200, "User carol@api.test has been created")
check(call("POST", "/alias", {"email": "team@api.test", "destination": ["carol@api.test"]}), 200, "Alias team@api.test to destination(s) ['carol@api.test'] has been created")
check(call("GET", "/domain", token=None), 401, "A valid Authorization header is mandatory")
check(call("GET", "/domain", token="wrong"), 403, "Invalid API token")
code, body, headers = call("POST", "/domain", {"name": "x.test", "max_users": "many"})
assert code == 400 and body == {"errors": {"max_users": "'many' is not of type 'integer'"}, "message": "Input payload validation failed"}, body
code, d, headers = call("GET", "/domain/api.test")
assert code == 200 and d["alternatives"] == ["alt.test"] and d["dns_mx"] == "api.test. 600 IN MX 10 mail.example.test.", d
assert "Strict-Transport-Security" in headers and "frame-ancestors 'none'" in headers["Content-Security-Policy"], headers
code, u, _ = call("GET", "/user/carol@api.test")
assert code == 200 and u["displayed_name"] == "Carol" and u["enable_imap"] is True, u
code, spec, _ = call("GET", "/swagger.json", token=None)
assert code == 200 and spec["swagger"] == "2.0" and "/tokenuser/{email}" in spec["paths"], spec.keys()
code, tok, _ = call("POST", "/tokenuser/carol@api.test", {"comment": "script"})
assert code == 200 and len(tok["token"]) == 32, tok
host, port = os.environ["A993"].rsplit(":", 1)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("carol@api.test", "Carol-Pw-1"); m.logout()
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("carol@api.test", tok["token"]); m.logout()
print("OK")
`
	out, err := runPython(t, script, map[string]string{"A443": s.addr[443], "A993": s.addr[993]})
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("python: %v\n%s\n%s", err, out, s.logs())
	}
	if strings.Contains(s.logs(), "Carol-Pw-1") || strings.Contains(s.logs(), "Api-Token-For-Tests-42") {
		t.Error("a password or the API token reached the log")
	}
}

// TestHTTPRoles checks the ports 80 and 443 of the real binary: the
// redirect, what stays on 80, health, autoconfig, headers, the start-up
// log, and that API=false serves no API.
func TestHTTPRoles(t *testing.T) {
	s := newServer(t, nil)
	s.start()
	c := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed test certificate
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, s.logs())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	_, port443, _ := strings.Cut(s.addr[443], ":")
	resp, _ := get("http://" + s.addr[80] + "/admin/")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://mail.example.test:"+port443+"/admin/" {
		t.Errorf("port 80: %d %q, want 301 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, url := range []string{"http://" + s.addr[80] + "/health", "https://" + s.addr[443] + "/health"} {
		if resp, _ := get(url); resp.StatusCode != 204 {
			t.Errorf("%s: %d, want 204", url, resp.StatusCode)
		}
	}
	resp, body := get("http://" + s.addr[80] + "/mail/config-v1.1.xml?emailaddress=a@example.test")
	if resp.StatusCode != 200 || !strings.Contains(body, `<emailProvider id="mail.example.test">`) || !strings.Contains(body, "<port>465</port>") {
		t.Errorf("autoconfig on 80: %d %s", resp.StatusCode, body)
	}
	resp, _ = get("https://" + s.addr[443] + "/api/v1/domain")
	if resp.StatusCode != 404 {
		t.Errorf("API=false: /api/v1/domain answered %d, want 404", resp.StatusCode)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("443 headers: %v", resp.Header)
	}
	conn, err := tls.Dial("tcp", s.addr[443], &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}) //nolint:gosec // test
	if err == nil {
		conn.Close()
		t.Error("443 accepted TLS 1.1")
	}
	if logs := s.logs(); !strings.Contains(logs, "port 443 (https): on at") || !strings.Contains(logs, "port 80 (http): on at") ||
		strings.Contains(logs, "(http): enabled in PORTS but not served yet") || strings.Contains(logs, "(https): enabled in PORTS but not served yet") {
		t.Errorf("start-up log does not report the HTTP roles as served:\n%s", logs)
	}
	if err := s.stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, s.logs())
	}
}

// TestHTTPPlainForProxy: TLS_FLAVOR=mail serves the site in plain HTTP on
// port 80 (for a TLS-terminating proxy), believes REAL_IP_HEADER only from
// REAL_IP_FROM, and keeps 443 closed.
func TestHTTPPlainForProxy(t *testing.T) {
	s := newServer(t, map[string]string{"TLS_FLAVOR": "mail", "API": "true", "API_TOKEN": "Api-Token-For-Tests-42",
		"REAL_IP_HEADER": "X-Forwarded-For", "REAL_IP_FROM": "127.0.0.1"})
	s.start()
	req, _ := http.NewRequest("GET", "http://"+s.addr[80]+"/api/v1/domain", nil)
	req.Header.Set("Authorization", "wrong-token")
	req.Header.Set("X-Forwarded-For", "203.0.113.77")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("plain API: %d %v", resp.StatusCode, resp.Header)
	}
	if !s.waitLog("invalid API token") || !strings.Contains(s.logs(), "203.0.113.77") {
		t.Errorf("the forwarded client address is not the one logged:\n%s", s.logs())
	}
	if c, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).Dial("tcp", s.addr[443]); err == nil { //nolint:gosec // test
		c.Close()
		t.Error("443 is open under TLS_FLAVOR=mail")
	}
}

// TestHTTPNoTLS: TLS_FLAVOR=notls serves the site in plain HTTP on 80, and
// autoconfig offers only what is open (IMAP 143 and submission 587 here),
// never port 25.
func TestHTTPNoTLS(t *testing.T) {
	s := newServer(t, map[string]string{"TLS_FLAVOR": "notls", "PORTS": "25,80,143,587"})
	s.start()
	resp, err := http.Get("http://" + s.addr[80] + "/mail/config-v1.1.xml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != 200 || !strings.Contains(body, "<port>143</port>") || !strings.Contains(body, "<port>587</port>") ||
		strings.Contains(body, "<port>25</port>") || strings.Contains(body, "<port>993</port>") {
		t.Errorf("notls autoconfig: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + s.addr[80] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("notls health: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestSwaggerValidates checks /api/v1/swagger.json of the real binary with
// an independent validator (Python's openapi-spec-validator, Swagger 2.0
// rules); skipped where that module is not installed.
func TestSwaggerValidates(t *testing.T) {
	if out, err := runPython(t, "import openapi_spec_validator", nil); err != nil {
		t.Skipf("openapi-spec-validator not installed: %s", out)
	}
	s := newServer(t, map[string]string{"API": "true", "API_TOKEN": "Api-Token-For-Tests-42"})
	s.start()
	script := `
import json, os, ssl, urllib.request
from openapi_spec_validator import validate
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
spec = json.load(urllib.request.urlopen("https://" + os.environ["A443"] + "/api/v1/swagger.json", context=ctx))
validate(spec)
print("VALID", len(spec["paths"]))
`
	out, err := runPython(t, script, map[string]string{"A443": s.addr[443]})
	if err != nil || !strings.Contains(out, "VALID 20") {
		t.Fatalf("swagger.json: %v\n%s", err, out)
	}
}
