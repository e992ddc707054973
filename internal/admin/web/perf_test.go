package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

// bigDomain adds n users and n/10 aliases to example.com in one
// transaction (with one precomputed hash: bcrypt per user would take
// minutes and test nothing here).
func (e *env) bigDomain(n int) {
	e.t.Helper()
	ctx := context.Background()
	hash, err := auth.HashPassword("pw", 4)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.InTx(ctx, func(tx store.Accounts) error {
		for i := 0; i < n; i++ {
			u := store.NewUser(fmt.Sprintf("user%05d", i), "example.com", 1000000000, 80)
			u.Password = hash
			u.DisplayedName = fmt.Sprintf("User Number %d", i)
			if err := tx.CreateUser(ctx, &u); err != nil {
				return err
			}
			if i%10 == 0 {
				a := store.Alias{Localpart: fmt.Sprintf("alias%05d", i), DomainName: "example.com", Destination: []string{u.Email}}
				if err := tx.CreateAlias(ctx, &a); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// pages every role sees with a big domain.
var bigPages = []string{
	"/admin/user/list/example.com",
	"/admin/user/list/example.com?after=user05000@example.com",
	"/admin/user/list/example.com?q=user09",
	"/admin/alias/list/example.com",
	"/admin/domain",
	"/admin/domain/details/example.com",
	"/admin/admin/list",
	"/admin/status",
	"/admin/user/settings",
	"/admin/token/list",
	"/admin/user/edit/user01234@example.com",
}

// Issue 12: no page over 100 KB, also with 10,000 users (the lists are
// paged).
func TestPageSizesWithManyUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 10,000 users")
	}
	e := newEnv(t)
	e.seed()
	// Page sizes depend on the page length (50 rows), not on the number
	// of users behind it; under the race detector 10,000 inserts take a
	// minute, so it checks 2,000 there (BenchmarkPages uses 10,000).
	n := 10000
	if raceEnabled {
		n = 2000
	}
	e.bigDomain(n)
	c := e.client()
	c.mustLogin("admin@example.com", "adminpw")
	for _, p := range bigPages {
		r := c.get(p)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %.300s", p, r.status, r.body)
		}
		if len(r.body) > 100*1024 {
			t.Errorf("%s is %d bytes, over 100 KB", p, len(r.body))
		}
		t.Logf("%-60s %6d bytes", p, len(r.body))
	}
	r := c.get("/admin/user/list/example.com")
	if strings.Count(r.body, "/admin/user/edit/") != pageSize || !strings.Contains(r.body, "after=user00046%40example.com") || !strings.Contains(r.body, fmt.Sprintf("%d users", n+3)) {
		i := strings.Index(r.body, "users.</p>")
		j := strings.Index(r.body, "after=")
		t.Fatalf("first page: %d rows; %q; %q", strings.Count(r.body, "/admin/user/edit/"), r.body[max(i-20, 0):i+10], r.body[max(j, 0):max(j, 0)+40])
	}
	r = c.get("/admin/user/list/example.com?q=user0199")
	if n := strings.Count(r.body, "/admin/user/edit/"); n != 10 {
		t.Fatalf("prefix search user0199: %d rows", n)
	}
}

// BenchmarkPages measures server time per page (the handler alone, no
// network) with 10,000 users; issue 12 asks for under 20 ms.
func BenchmarkPages(b *testing.B) {
	e := newEnv(b)
	e.seed()
	e.bigDomain(10000)
	// Sign in once through the real form.
	c := e.client()
	c.e.t = b
	c.mustLogin("admin@example.com", "adminpw")
	var cookie string
	for _, ck := range c.c.Jar.Cookies(mustURL(e.srv.URL)) {
		if ck.Name == sessionCookie {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	for _, p := range bigPages {
		b.Run(strings.NewReplacer("/", "_", "?", "_", "=", "_", "@", "_").Replace(strings.TrimPrefix(p, "/admin/")), func(b *testing.B) {
			var worst time.Duration
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest("GET", p, nil)
				req.Header.Set("Cookie", cookie)
				rec := httptest.NewRecorder()
				start := time.Now()
				e.h.ServeHTTP(rec, req)
				if d := time.Since(start); d > worst {
					worst = d
				}
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", p, rec.Code)
				}
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}
