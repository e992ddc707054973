package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

const testToken = "s3cr3t-api-token-0123456789"

// countLimiter locks an address out after max failures.
type countLimiter struct {
	mu    sync.Mutex
	max   int
	fails map[netip.Addr]int
}

func (l *countLimiter) Limited(_ context.Context, ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fails[ip] >= l.max
}

func (l *countLimiter) Failed(_ context.Context, ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails[ip]++
}

type env struct {
	t   *testing.T
	url string
	svc *admin.Service
	st  *sqlstore.Store
	lim *countLimiter
	api *API
}

// newEnv serves the API over a real store on a loopback socket.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: "sqlite", Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st, admin.Options{CredentialRounds: 4, DefaultQuota: 1000000000, DKIMPath: filepath.Join(dir, "dkim", "{domain}.{selector}.key")})
	lim := &countLimiter{max: 3, fails: map[netip.Addr]int{}}
	a, err := New(Options{Admin: svc, Token: testToken, Limiter: lim, DNS: admin.DNSOptions{
		Hostnames: []string{"mail.example.com"}, ServerDomain: "example.com", DMARCRUA: "admin", DMARCRUF: "admin",
		Ports: []int{25, 80, 443, 465, 993, 995}, TLS: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL + "/api/v1", svc: svc, st: st, lim: lim, api: a}
}

// call sends a request with the token (auth "" = none) and returns the
// status and the decoded JSON answer.
func (e *env) callAuth(auth, method, path, body string) (int, any) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("%s %s: Content-Type %q, body %q", method, path, ct, raw)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		e.t.Fatalf("%s %s: answer is not JSON: %v: %q", method, path, err, raw)
	}
	return resp.StatusCode, v
}

func (e *env) call(method, path, body string) (int, any) {
	e.t.Helper()
	return e.callAuth("Bearer "+testToken, method, path, body)
}

// want checks status and a Mailu answer {"code": status, "message": msg}.
func (e *env) want(method, path, body string, status int, msg string) {
	e.t.Helper()
	code, v := e.call(method, path, body)
	m, _ := v.(map[string]any)
	if code != status || m["message"] != msg || (m["code"] != nil && m["code"] != float64(status)) {
		e.t.Errorf("%s %s %s:\n got %d %v\nwant %d %q", method, path, body, code, v, status, msg)
	}
}

// obj returns a JSON object answer, failing on another status.
func (e *env) obj(method, path string, status int) map[string]any {
	e.t.Helper()
	code, v := e.call(method, path, "")
	m, ok := v.(map[string]any)
	if code != status || !ok {
		e.t.Fatalf("%s %s: %d %v, want %d and an object", method, path, code, v, status)
	}
	return m
}

func (e *env) list(path string) []any {
	e.t.Helper()
	code, v := e.call("GET", path, "")
	l, ok := v.([]any)
	if code != 200 || !ok {
		e.t.Fatalf("GET %s: %d %v, want 200 and a list", path, code, v)
	}
	return l
}

// seed creates example.com with alice and bob through the API.
func (e *env) seed() {
	e.t.Helper()
	e.want("POST", "/domain", `{"name": "example.com"}`, 200, "Domain example.com has been created")
	e.want("POST", "/user", `{"email": "alice@example.com", "raw_password": "pw-alice"}`, 200, "User alice@example.com has been created")
	e.want("POST", "/user", `{"email": "bob@example.com", "raw_password": "pw-bob"}`, 200, "User bob@example.com has been created")
}
