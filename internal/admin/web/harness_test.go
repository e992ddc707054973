package web

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// env is a real SQLite store, the real admin service and authenticator,
// and the UI behind an httptest server on 127.0.0.1.
type env struct {
	t     testing.TB
	st    *sqlstore.Store
	svc   *admin.Service
	h     *Handler
	srv   *httptest.Server
	clock *fakeClock
	ann   *fakeAnnouncer
	db    string // the SQLite file
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeAnnouncer struct {
	mu            sync.Mutex
	subject, body string
}

func (f *fakeAnnouncer) Announce(_ context.Context, subject, body string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subject, f.body = subject, body
	return 3, nil
}

type envOpt func(*Options, *auth.Options)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: "sqlite", Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st, admin.Options{CredentialRounds: 4, DKIMPath: filepath.Join(dir, "dkim", "{domain}.{selector}.key")})
	clock := &fakeClock{t: time.Now()}
	ao := auth.Options{Users: st, Rounds: 4, IPLimit: ratelimit.Rate{Count: 5, Per: time.Hour}, ExemptionLength: -1, CacheSize: -1}
	ann := &fakeAnnouncer{}
	o := Options{
		Admin: svc, Store: st, Prefix: "/admin", SiteName: "Petrel Test", Hostname: "mail.example.com", TLS: true,
		Announce: ann, Now: clock.Now,
		ClientIP: func(r *http.Request) netip.Addr {
			if a, err := netip.ParseAddr(r.Header.Get("X-Test-IP")); err == nil {
				return a
			}
			return netip.MustParseAddr("127.0.0.1")
		},
		Records: func(info admin.DKIMInfo) ([]msgauth.Record, error) {
			return msgauth.Records(msgauth.RecordsOptions{Domain: info.Domain, Hostnames: []string{"mail.example.com"}, ServerDomain: "example.com",
				DKIMSelector: info.Selector, DKIMRecord: info.Record, Ports: []int{25, 465, 587, 993}, TLS: true})
		},
	}
	for _, f := range opts {
		f(&o, &ao)
	}
	o.Auth = auth.New(ao)
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{db: filepath.Join(dir, "main.db"), t: t, st: st, svc: svc, h: h, srv: srv, clock: clock, ann: ann}
}

// seed makes example.com with a global admin, other.example, and users.
func (e *env) seed() {
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			e.t.Helper()
			e.t.Fatal(err)
		}
	}
	_, err := e.svc.CreateAdmin(ctx, "admin", "example.com", "adminpw", admin.ModeCreate)
	must(err)
	_, err = e.svc.CreateDomain(ctx, "other.example", admin.DefaultLimits())
	must(err)
	for _, u := range []string{"alice@example.com", "manager@example.com", "bob@other.example", "boss@other.example"} {
		l, d, _ := strings.Cut(u, "@")
		_, err = e.svc.CreateUser(ctx, l, d, "pw-"+l)
		must(err)
	}
	must(e.svc.SetManager(ctx, "example.com", "manager@example.com"))
	must(e.svc.SetManager(ctx, "other.example", "boss@other.example"))
}

// client is one browser: a cookie jar, no automatic redirects.
type client struct {
	e   *env
	c   *http.Client
	ip  string
	seq int
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type resp struct {
	status int
	body   string
	loc    string
	header http.Header
}

func (c *client) do(method, path string, form url.Values, hdr map[string]string) resp {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.ip != "" {
		req.Header.Set("X-Test-IP", c.ip)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(b), loc: res.Header.Get("Location"), header: res.Header}
}

func (c *client) get(path string) resp { return c.do("GET", path, nil, nil) }

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// token fetches page and returns the CSRF token its forms carry.
func (c *client) token(page string) string {
	c.e.t.Helper()
	r := c.get(page)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		c.e.t.Fatalf("no csrf token on %s (status %d): %.300s", page, r.status, r.body)
	}
	return m[1]
}

// post submits form from page (taking its CSRF token) to action.
func (c *client) post(page, action string, form url.Values) resp {
	c.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", c.token(page))
	return c.do("POST", action, form, nil)
}

func (c *client) login(email, pw string) resp {
	c.e.t.Helper()
	return c.post("/sso/login", "/sso/login", url.Values{"email": {email}, "pw": {pw}})
}

func (c *client) mustLogin(email, pw string) {
	c.e.t.Helper()
	r := c.login(email, pw)
	if r.status != http.StatusSeeOther || strings.Contains(r.loc, "/sso/login") {
		c.e.t.Fatalf("login %s: %d %s %.300s", email, r.status, r.loc, r.body)
	}
}

func wantStatus(t *testing.T, r resp, status int, contains string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %.600s", r.status, status, r.body)
	}
	if contains != "" && !strings.Contains(r.body, contains) {
		t.Fatalf("body lacks %q: %.1500s", contains, r.body)
	}
}

// setQuotaUsed writes quota_bytes_used as delivery would.
func (e *env) setQuotaUsed(email string, n int64) {
	e.t.Helper()
	db, err := sql.Open("sqlite", e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA busy_timeout = 5000; UPDATE "user" SET quota_bytes_used = ? WHERE email = ?`, n, email); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) user(email string) *store.User {
	e.t.Helper()
	u, err := e.st.GetUser(context.Background(), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
