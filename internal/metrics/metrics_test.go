package metrics

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// TestObserverCounts: each message event logged through the observed
// handler lands on its counter, with the labels taken from the logger's
// With attributes or the record's; DEBUG records and other messages do
// not count, and the inner handler still gets what its level allows.
func TestObserverCounts(t *testing.T) {
	m := New()
	var buf strings.Builder
	inner := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	log := slog.New(m.Observe(inner))
	smtp := log.With("proto", "smtp")
	smtp.Info("received", "msgid", "a", "action", "accept")
	smtp.Info("received", "msgid", "b", "action", "quarantine")
	smtp.Info("rejected", "stage", "rcpt", "code", 550)
	smtp.Info("rejected", "stage", "checks", "code", 554, "action", "reject")
	smtp.Debug("received", "msgid", "c")
	smtp.Info("something else")
	log.With("part", "delivery").Info("delivered", "result", "ok")
	log.With("part", "delivery").Info("queued", "result", "ok")
	q := log.With("part", "queue")
	q.Info("delivered")
	q.Warn("deferred")
	q.Warn("bounced")
	log.With("part", "auth").Warn("Login attempt for: x@y/imap/993 from: 192.0.2.1: failed: badauth", "protocol", "imap", "reason", "badauth")
	f := log.With("part", "fetch")
	f.Info("fetched", "fetched", 3)
	f.Warn("fetch failed", "fetched", 0, "err", "IMAP LOGIN: NO")
	m.WatchCertificate(func() (time.Time, bool) { return time.Unix(1900000000, 0), true })

	for series, want := range map[string]float64{
		`petrel_smtp_messages_total{proto="smtp",result="accepted"}`:         2,
		`petrel_smtp_messages_total{proto="smtp",result="rejected"}`:         1,
		`petrel_smtp_rejections_total{code="550",proto="smtp",stage="rcpt"}`: 1,
		`petrel_filter_verdicts_total{action="accept"}`:                      1,
		`petrel_filter_verdicts_total{action="quarantine"}`:                  1,
		`petrel_filter_verdicts_total{action="reject"}`:                      1,
		`petrel_local_deliveries_total{result="ok"}`:                         2,
		`petrel_queue_events_total{event="queued"}`:                          1,
		`petrel_queue_events_total{event="delivered"}`:                       1,
		`petrel_queue_events_total{event="deferred"}`:                        1,
		`petrel_queue_events_total{event="bounced"}`:                         1,
		`petrel_auth_failures_total{protocol="imap",reason="badauth"}`:       1,
		`petrel_fetch_runs_total{result="ok"}`:                               1,
		`petrel_fetch_runs_total{result="error"}`:                            1,
		`petrel_fetch_messages_total`:                                        3,
		`petrel_cert_expiry_timestamp_seconds`:                               1.9e9,
	} {
		if got := scrapeValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(buf.String(), "msg=received") || !strings.Contains(buf.String(), "msg=deferred") {
		t.Errorf("the inner handler's level was not respected:\n%s", buf.String())
	}
}

// scrapeValue reads one series from a scrape of m.
func scrapeValue(t *testing.T, m *Metrics, series string) float64 {
	t.Helper()
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.RemoteAddr = "127.0.0.1:1"
	w := httptest.NewRecorder()
	m.Handler(Access{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).ServeHTTP(w, r)
	for _, line := range strings.Split(w.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Errorf("no series %s", series)
	return -1
}

// TestDashboardUsesRealMetrics: every petrel_ metric the Grafana
// dashboard in docs/ queries is one this package exports.
func TestDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-petrel.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	m := New()
	m.WatchQueue(nil, nil)
	m.WatchCertificate(func() (time.Time, bool) { return time.Time{}, false })
	known := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	go func() { m.reg.Describe(descs); close(descs) }()
	re := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range descs {
		if mm := re.FindStringSubmatch(d.String()); mm != nil {
			known[mm[1]] = true
		}
	}
	name := regexp.MustCompile(`petrel_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, used := range name.FindAllString(tg.Expr, -1) {
				n++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(used, "_bucket"), "_count"), "_sum")
				if !known[base] {
					t.Errorf("panel %q queries %s, which Petrel does not export", p.Title, used)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d metric uses found in the dashboard", n)
	}
}
