package metrics

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestAccess: the network list and the bearer token each let a scraper
// in; anything else gets 403, and the body names the settings.
func TestAccess(t *testing.T) {
	m := New()
	h := m.Handler(Access{Token: "tok-0123456789abcdef", Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	cases := []struct {
		remote, auth string
		want         int
	}{
		{"10.1.2.3:5000", "", 200},
		{"[::ffff:10.1.2.3]:5000", "", 200},
		{"192.0.2.1:5000", "", 403},
		{"192.0.2.1:5000", "Bearer tok-0123456789abcdef", 200},
		{"192.0.2.1:5000", "Bearer tok-0123456789abcdeX", 403},
		{"192.0.2.1:5000", "tok-0123456789abcdef", 403},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = c.remote
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s %q: %d, want %d", c.remote, c.auth, w.Code, c.want)
		}
		if w.Code == 200 && !strings.Contains(w.Body.String(), "go_goroutines") {
			t.Errorf("%s: body lacks the runtime metrics", c.remote)
		}
		if w.Code == 403 && !strings.Contains(w.Body.String(), "METRICS_TOKEN") {
			t.Errorf("403 body does not name the setting: %q", w.Body.String())
		}
	}
	if (Access{}).allows(&http.Request{RemoteAddr: "127.0.0.1:1"}) {
		t.Error("an empty Access let a client in")
	}
}
