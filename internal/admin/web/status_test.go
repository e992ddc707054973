package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/stats"
	"github.com/petrelmail/petrel/internal/store"
)

func TestBuildChart(t *testing.T) {
	now := time.Date(2026, 12, 4, 15, 40, 0, 0, time.UTC)
	c := buildChart("Deliveries", []store.StatPoint{
		{Hour: time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC), N: 99}, // 24 hours ago: outside
		{Hour: time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC), N: 10}, // first bar
		{Hour: time.Date(2026, 12, 4, 14, 0, 0, 0, time.UTC), N: 1},
		{Hour: time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC), N: 58}, // last bar
	}, now)
	if len(c.Bars) != 24 || c.Total != 69 || c.Max != 58 {
		t.Fatalf("chart %d bars, total %d, max %d", len(c.Bars), c.Total, c.Max)
	}
	if b := c.Bars[23]; b.H != chartHeight-2 || b.Y != 2 || b.Label != "15:00: 58" {
		t.Fatalf("last bar %+v", b)
	}
	if b := c.Bars[0]; b.H != 10*(chartHeight-2)/58 || b.X != 0 {
		t.Fatalf("first bar %+v", b)
	}
	if b := c.Bars[22]; b.H != 1 {
		t.Fatalf("a small non-zero hour must stay visible: %+v", b)
	}
	if b := c.Bars[5]; b.H != 0 || b.Y != chartHeight {
		t.Fatalf("empty hour %+v", b)
	}
}

func TestStatusPage(t *testing.T) {
	e := newEnv(t)
	e.seed()
	now := e.clock.Now().UTC().Truncate(time.Hour)
	if err := e.st.AddStats(context.Background(), []store.StatDelta{
		{Name: stats.Delivered, Hour: now, N: 40}, {Name: stats.Delivered, Hour: now.Add(-time.Hour), N: 2},
		{Name: stats.Rejected, Hour: now, N: 7}, {Name: stats.AuthFailed, Hour: now.Add(-3 * time.Hour), N: 5},
	}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.mustLogin("admin@example.com", "adminpw")
	r := c.get("/admin/status")
	wantStatus(t, r, http.StatusOK, "Deliveries: 42 (peak 40 per hour)")
	for _, want := range []string{"Rejections: 7", "Failed logins: 5", "0 entries", `<svg class="chart" role="img"`, `height="58"`} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("status page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<script") || strings.Contains(r.body, "style=") {
		t.Fatal("inline script or style on the status page")
	}
}

func FuzzCheckLocalpart(f *testing.F) {
	for _, s := range []string{"alice", "a.b", ".a", "a..b", "sp ace", "%", "ü", strings.Repeat("x", 81)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, l string) {
		if checkLocalpart(l) != "" {
			return
		}
		if l == "" || len(l) > 80 || strings.ContainsAny(l, " @\"\\<>()[],;:") || strings.Contains(l, "..") {
			t.Fatalf("%q accepted", l)
		}
	})
}
