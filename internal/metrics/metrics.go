// Package metrics exposes Petrel's counters in the Prometheus text format
// (client_golang with a registry of its own, so nothing a library
// registers globally leaks in). Mailu has no metrics at all (its issue
// #1059); the families here answer what its users ask: is mail coming in,
// going out, piling up, and are people failing to log in.
//
// Message events are counted from the log records the house rules already
// require (one INFO record per received, rejected, delivered, queued,
// deferred and bounced message, and per refused login): Observe wraps the
// slog handler, so a count and its log line can never disagree and no
// protocol package grows a second reporting path. Connections are counted
// at the listener, commands through the servers' OnCommand hooks, and the
// queue is read from the store at scrape time.
package metrics

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/petrelmail/petrel/internal/store"
)

// QueueLister is what the queue gauges read at scrape time.
type QueueLister interface {
	ListQueueEntries(ctx context.Context) ([]store.QueueItem, error)
}

// Metrics holds every family on a private registry.
type Metrics struct {
	reg *prometheus.Registry

	conns       *prometheus.CounterVec
	active      *prometheus.GaugeVec
	messages    *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	local       *prometheus.CounterVec
	queueEvents *prometheus.CounterVec
	authFail    *prometheus.CounterVec
	verdicts    *prometheus.CounterVec
	commands    *prometheus.CounterVec
	storeTime   *prometheus.HistogramVec
	fetchRuns   *prometheus.CounterVec
	fetched     prometheus.Counter
}

// New builds the metrics and registers the Go runtime and process
// collectors with them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_connections_total", Help: "Connections accepted, by listening port (25, 465, 587, 993, 143, 995, 110, 443, 80).",
		}, []string{"port"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "petrel_connections_active", Help: "Connections open now, by listening port.",
		}, []string{"port"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_smtp_messages_total", Help: "Messages at the end of DATA, by SMTP role (smtp = 25, submissions = 465, submission = 587) and result (accepted, rejected).",
		}, []string{"proto", "result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_smtp_rejections_total", Help: "SMTP refusals by role, stage (helo, mail, rcpt, data, checks...) and reply code.",
		}, []string{"proto", "stage", "code"}),
		local: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_local_deliveries_total", Help: "Messages stored in local mailboxes (result ok) or refused at commit, by result.",
		}, []string{"result"}),
		queueEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_queue_events_total", Help: "Outbound queue events: queued, delivered, deferred, bounced, expired.",
		}, []string{"event"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_auth_failures_total", Help: "Refused logins by protocol (smtp, imap, pop3, sieve, web...) and reason (the auth core's reason words).",
		}, []string{"protocol", "reason"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_filter_verdicts_total", Help: "Inbound content checks on port 25 by action (accept, quarantine, reject, tempfail).",
		}, []string{"action"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_commands_total", Help: "IMAP and POP3 commands by protocol and command name.",
		}, []string{"proto", "command"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "petrel_store_seconds", Help: "Store operation latency by operation (commit_messages: one group commit of deliveries).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
		fetchRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_fetch_runs_total", Help: "Polls of fetched accounts (Mailu's fetchmail) by result (ok, error).",
		}, []string{"result"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "petrel_fetch_messages_total", Help: "Messages fetched from remote accounts and delivered.",
		}),
	}
	reg.MustRegister(m.fetchRuns, m.fetched)
	reg.MustRegister(m.conns, m.active, m.messages, m.rejections, m.local, m.queueEvents,
		m.authFail, m.verdicts, m.commands, m.storeTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchQueue adds the queue gauges, read from q at every scrape. now nil
// is time.Now.
func (m *Metrics) WatchQueue(q QueueLister, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	m.reg.MustRegister(&queueCollector{q: q, now: now, timing: m.storeTime.WithLabelValues("list_queue")})
}

// WatchCertificate adds petrel_cert_expiry_timestamp_seconds, read from
// notAfter at every scrape (ok false: no certificate, TLS_FLAVOR=notls).
func (m *Metrics) WatchCertificate(notAfter func() (time.Time, bool)) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "petrel_cert_expiry_timestamp_seconds", Help: "When the certificate in service expires (Unix time); 0 without TLS.",
	}, func() float64 {
		t, ok := notAfter()
		if !ok {
			return 0
		}
		return float64(t.Unix())
	}))
}

// Registry is the private registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Command counts one IMAP or POP3 command; proto is "imap" or "pop3".
// Only names the server knows reach here, so the label stays bounded.
func (m *Metrics) Command(proto, name string) {
	m.commands.WithLabelValues(proto, name).Inc()
}

// StoreTime records how long one store operation took.
func (m *Metrics) StoreTime(op string, d time.Duration) {
	m.storeTime.WithLabelValues(op).Observe(d.Seconds())
}

// Listener counts the connections ln accepts under port.
func (m *Metrics) Listener(ln net.Listener, port int) net.Listener {
	p := strconv.Itoa(port)
	return &countingListener{Listener: ln, total: m.conns.WithLabelValues(p), active: m.active.WithLabelValues(p)}
}

type countingListener struct {
	net.Listener
	total  prometheus.Counter
	active prometheus.Gauge
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	l.total.Inc()
	l.active.Inc()
	return &countedConn{Conn: c, active: l.active}, nil
}

type countedConn struct {
	net.Conn
	active prometheus.Gauge
	closed atomic.Bool
}

// Close decrements the gauge once, however often it is called.
func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.active.Dec()
	}
	return c.Conn.Close()
}

// CloseWrite passes the half-close through (connlimit's Linger uses it).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// queueCollector reads the outbound queue at scrape time, so the gauges
// are right on every node sharing the database.
type queueCollector struct {
	q      QueueLister
	now    func() time.Time
	timing prometheus.Observer
}

var (
	queueDesc  = prometheus.NewDesc("petrel_queue_messages", "Outbound queue entries by state (ready: waiting for its first attempt, deferred: failed at least once, held).", []string{"state"}, nil)
	oldestDesc = prometheus.NewDesc("petrel_queue_oldest_age_seconds", "Age of the oldest outbound queue entry; 0 when the queue is empty.", nil, nil)
	upDesc     = prometheus.NewDesc("petrel_queue_scrape_ok", "1 if the queue could be read at this scrape.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- oldestDesc
	ch <- upDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	items, err := c.q.ListQueueEntries(ctx)
	c.timing.Observe(time.Since(start).Seconds())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	var ready, deferred, held float64
	var oldest time.Time
	for _, it := range items {
		switch {
		case it.Held:
			held++
		case it.Attempts > 0:
			deferred++
		default:
			ready++
		}
		if oldest.IsZero() || it.CreatedAt.Before(oldest) {
			oldest = it.CreatedAt
		}
	}
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, ready, "ready")
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, deferred, "deferred")
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, held, "held")
	age := 0.0
	if !oldest.IsZero() {
		age = max(0, c.now().Sub(oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}

// Access says who may scrape: a client from one of Networks, or one that
// sends "Authorization: Bearer <Token>". Both empty: nobody.
type Access struct {
	Token    string
	Networks []netip.Prefix
}

// Handler serves the registry in the Prometheus text format to the
// clients acc allows and answers 403 to the others. The client address is
// r.RemoteAddr (httpd has already applied REAL_IP_HEADER from trusted
// proxies).
func (m *Metrics) Handler(acc Access) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acc.allows(r) {
			http.Error(w, "metrics: forbidden (METRICS_TOKEN or METRICS_NETWORKS)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a Access) allows(r *http.Request) bool {
	if a.Token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(tok), []byte(a.Token)) == 1 {
			return true
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, n := range a.Networks {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Observe wraps h so that the message and login events logged through it
// are counted. Records below INFO are not looked at; INFO records are
// counted even when the log level hides them.
func (m *Metrics) Observe(h slog.Handler) slog.Handler {
	return &observer{inner: h, m: m}
}

type observer struct {
	inner slog.Handler
	m     *Metrics
	proto string // from With("proto", ...)
	part  string // from With("part", ...)
}

func (o *observer) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || o.inner.Enabled(ctx, l)
}

func (o *observer) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		o.count(r)
	}
	if !o.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return o.inner.Handle(ctx, r)
}

func (o *observer) WithAttrs(as []slog.Attr) slog.Handler {
	c := *o
	c.inner = o.inner.WithAttrs(as)
	for _, a := range as {
		switch a.Key {
		case "proto":
			c.proto = a.Value.String()
		case "part":
			c.part = a.Value.String()
		}
	}
	return &c
}

func (o *observer) WithGroup(name string) slog.Handler {
	c := *o
	c.inner = o.inner.WithGroup(name)
	return &c
}

// count maps one record to its counters.
func (o *observer) count(r slog.Record) {
	login := strings.HasPrefix(r.Message, "Login attempt for: ") // the auth core's one line per attempt
	switch r.Message {
	case "received", "rejected", "delivered", "queued", "deferred", "bounced", "expired", "fetched", "fetch failed":
	default:
		if !login {
			return
		}
	}
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "proto", "part", "stage", "code", "action", "result", "protocol", "reason", "fetched":
			attrs[a.Key] = a.Value.String()
		}
		return true
	})
	proto, part := o.proto, o.part
	if v, ok := attrs["proto"]; ok {
		proto = v
	}
	if v, ok := attrs["part"]; ok {
		part = v
	}
	m := o.m
	if login {
		if r.Level >= slog.LevelWarn && attrs["reason"] != "" {
			m.authFail.WithLabelValues(attrs["protocol"], attrs["reason"]).Inc()
		}
		return
	}
	switch r.Message {
	case "fetched", "fetch failed":
		if part != "fetch" {
			return
		}
		result := "ok"
		if r.Message == "fetch failed" {
			result = "error"
		}
		m.fetchRuns.WithLabelValues(result).Inc()
		if n, err := strconv.Atoi(attrs["fetched"]); err == nil && n > 0 {
			m.fetched.Add(float64(n))
		}
	case "received":
		if proto == "" {
			return
		}
		m.messages.WithLabelValues(proto, "accepted").Inc()
		if a := attrs["action"]; a != "" {
			m.verdicts.WithLabelValues(a).Inc()
		}
	case "rejected":
		if proto == "" {
			return
		}
		stage := attrs["stage"]
		m.rejections.WithLabelValues(proto, stage, attrs["code"]).Inc()
		if stage == "data" || stage == "checks" {
			m.messages.WithLabelValues(proto, "rejected").Inc()
		}
		if stage == "checks" && attrs["action"] != "" {
			m.verdicts.WithLabelValues(attrs["action"]).Inc()
		}
	case "delivered":
		switch part {
		case "delivery":
			m.local.WithLabelValues(resultOr(attrs["result"])).Inc()
		case "queue":
			m.queueEvents.WithLabelValues("delivered").Inc()
		}
	case "queued":
		if part == "delivery" {
			m.local.WithLabelValues(resultOr(attrs["result"])).Inc()
		}
		m.queueEvents.WithLabelValues("queued").Inc()
	case "deferred", "bounced", "expired":
		if part == "queue" {
			m.queueEvents.WithLabelValues(r.Message).Inc()
		} else if part == "delivery" && r.Message == "bounced" {
			m.local.WithLabelValues("bounced_" + resultOr(attrs["result"])).Inc()
		}
	}
}

func resultOr(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}
