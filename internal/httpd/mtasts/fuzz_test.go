package mtasts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandlerHost: any Host header gets 200 only for mta-sts.<a local
// domain>, 404 otherwise, and never a panic.
func FuzzHandlerHost(f *testing.F) {
	for _, s := range []string{"mta-sts.example.test", "MTA-STS.example.test.:443", "mta-sts.", "[::1]:443", "mta-sts.a/b", ""} {
		f.Add(s)
	}
	pol, err := New("testing", []string{"mail.example.test"}, 86400)
	if err != nil {
		f.Fatal(err)
	}
	h := Handler(Options{Policy: pol, IsLocal: func(_ context.Context, d string) (bool, error) { return d == "example.test", nil }})
	f.Fuzz(func(t *testing.T, host string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = Path
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		d, ok := PolicyDomain(host)
		want := http.StatusNotFound
		if ok && d == "example.test" {
			want = http.StatusOK
		}
		if w.Code != want {
			t.Fatalf("host %q: %d, want %d", host, w.Code, want)
		}
		if ok && (strings.HasPrefix(d, ".") || !strings.Contains(d, ".")) {
			t.Fatalf("host %q: odd domain %q", host, d)
		}
	})
}
