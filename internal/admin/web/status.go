package web

import (
	"fmt"
	"net/http"
	"time"

	"github.com/petrelmail/petrel/internal/stats"
	"github.com/petrelmail/petrel/internal/store"
)

// bar is one hour of a chart, in SVG user units.
type bar struct {
	X, Y, W, H int
	Label      string
}

// chart is one small server-rendered SVG bar chart of the last 24 hours.
type chart struct {
	Title  string
	Total  int64
	Max    int64
	Bars   []bar
	Width  int
	Height int
}

const (
	chartHours  = 24
	chartBarW   = 10
	chartHeight = 60
)

// buildChart lays out points (oldest first) into 24 hourly bars ending
// with the current hour.
func buildChart(title string, points []store.StatPoint, now time.Time) chart {
	end := now.UTC().Truncate(time.Hour)
	start := end.Add(-(chartHours - 1) * time.Hour)
	vals := make([]int64, chartHours)
	c := chart{Title: title, Width: chartHours * chartBarW, Height: chartHeight}
	for _, p := range points {
		i := int(p.Hour.UTC().Sub(start) / time.Hour)
		if i >= 0 && i < chartHours {
			vals[i] += p.N
			c.Total += p.N
		}
	}
	for _, v := range vals {
		c.Max = max(c.Max, v)
	}
	for i, v := range vals {
		hgt := 0
		if c.Max > 0 {
			hgt = int(v * (chartHeight - 2) / c.Max)
		}
		if v > 0 && hgt == 0 {
			hgt = 1
		}
		c.Bars = append(c.Bars, bar{
			X: i * chartBarW, Y: chartHeight - hgt, W: chartBarW - 2, H: hgt,
			Label: fmt.Sprintf("%s: %d", start.Add(time.Duration(i)*time.Hour).Format("15:04"), v),
		})
	}
	return c
}

func (h *Handler) status(q *request) error {
	ctx := q.r.Context()
	now := h.now()
	qs, err := h.opt.Store.QueueSummary(ctx)
	if err != nil {
		return err
	}
	since := now.UTC().Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	var charts []chart
	for _, c := range []struct{ name, title string }{
		{stats.Delivered, "Deliveries"},
		{stats.Rejected, "Rejections"},
		{stats.AuthFailed, "Failed logins"},
	} {
		pts, err := h.opt.Store.Stats(ctx, c.name, since)
		if err != nil {
			return err
		}
		charts = append(charts, buildChart(c.title, pts, now))
	}
	age := ""
	if !qs.Oldest.IsZero() {
		age = now.Sub(qs.Oldest).Round(time.Second).String()
	}
	q.render(http.StatusOK, "status", "Status", map[string]any{"Queue": qs, "Age": age, "Charts": charts})
	return nil
}
