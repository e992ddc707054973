package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// page is what every template gets.
type page struct {
	Title    string
	Prefix   string
	SiteName string
	Website  string
	LogoURL  string
	LogoBG   string
	Session  *session
	CSRF     string
	Flash    string
	Announce bool
	Fetch    bool // the fetched accounts pages are on
	Data     map[string]any
}

var funcs = template.FuncMap{
	"bytes": humanBytes,
	"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"limit": func(n int) string {
		if n < 0 {
			return "∞"
		}
		return fmt.Sprint(n)
	},
	"quota": func(n int64) string {
		if n == 0 {
			return "∞"
		}
		return humanBytes(n)
	},
	"join":    strings.Join,
	"mb":      func(n int64) int64 { return n / 1000000 },
	"unicode": displayName,
}

// parseTemplates parses each page together with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

// render writes page name with status.
func (q *request) render(status int, name, title string, data map[string]any) {
	h := q.h
	t := h.pages[name]
	if t == nil {
		h.log.Error("web: missing template", "name", name)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	p := page{
		Title: title, Prefix: h.opt.Prefix, SiteName: h.opt.SiteName, Website: h.opt.Website,
		LogoURL: h.opt.LogoURL, LogoBG: h.opt.LogoBackground,
		Session: q.sess, CSRF: q.token(), Flash: q.flash, Announce: h.opt.Announce != nil, Fetch: h.opt.Fetches != nil,
		Data: data,
	}
	if p.Data == nil {
		p.Data = map[string]any{}
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		h.log.Error("web: template failed", "name", name, "err", err)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if h.opt.LogoURL != "" {
		h.allowLogo(q.w)
	}
	q.w.WriteHeader(status)
	q.w.Write(b.Bytes())
}

func humanBytes(n int64) string {
	const unit = 1000 // Mailu shows quotas in decimal units
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
