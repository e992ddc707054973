package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

func TestNewRequiresOptions(t *testing.T) {
	h := newHarness(t)
	for _, edit := range []func(*Options){
		func(o *Options) { o.Store = nil },
		func(o *Options) { o.Transport = nil },
		func(o *Options) { o.Bouncer = nil },
		func(o *Options) { o.Hostname = "" },
	} {
		o := h.options()
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
	w, err := New(h.options())
	if err != nil {
		t.Fatal(err)
	}
	if w.o.MaxConcurrent != 100 || w.o.MaxPerDestination != 20 || w.o.DelayWarning != 0 || w.o.Backoff == nil {
		t.Errorf("defaults: %+v", w.o)
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 70 * time.Minute, 70 * time.Minute, 70 * time.Minute}
	for i, d := range want {
		if got := DefaultBackoff(i + 1); got != d {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", i+1, got, d)
		}
	}
	if DefaultBackoff(1000) != 70*time.Minute || DefaultBackoff(0) != 5*time.Minute {
		t.Error("DefaultBackoff out of range")
	}
}

func TestDeliveryRemovesEntries(t *testing.T) {
	h := newHarness(t)
	h.submit("m1", "alice@example.com", "bob@remote.example")
	h.submit("m2", "alice@example.com", "carol@other.example", "dave@third.example")
	h.start(nil)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue after delivery: %+v", q)
	}
	want := []string{"m1/bob@remote.example", "m2/carol@other.example", "m2/dave@third.example"}
	for _, k := range want {
		if h.tr.delivered[k] != 1 {
			t.Errorf("%s delivered %d times, want once", k, h.tr.delivered[k])
		}
	}
	for i, c := range h.tr.calls {
		if !strings.Contains(h.tr.bodies[i], "body of "+c.ID) || c.Size != int64(len(h.tr.bodies[i])) || c.Sender != "alice@example.com" {
			t.Errorf("call %d: %+v with body %q", i, c, h.tr.bodies[i])
		}
	}
	recs := h.logs.records("delivered")
	if len(recs) != 3 {
		t.Fatalf("%d delivered records, want 3", len(recs))
	}
	for _, r := range recs {
		if r["msgid"] == "" || r["from"] != "alice@example.com" || r["rcpt"] == "" || r["attempts"] != 1.0 ||
			!strings.HasPrefix(r["remote"].(string), "mx.") || r["reply"] != "250 2.0.0 Ok" {
			t.Errorf("delivered record %v", r)
		}
	}
	if len(h.bo.all()) != 0 {
		t.Error("a DSN for delivered mail")
	}
}

func TestGroupsRecipientsPerDomain(t *testing.T) {
	h := newHarness(t)
	h.submit("m1", "alice@example.com", "a1@a.example", "b1@b.example", "a2@a.example", "A3@A.EXAMPLE")
	h.submit("m2", "alice@example.com", "a4@a.example")
	h.start(nil)
	h.settle()
	got := map[string]string{}
	for _, c := range h.tr.calls {
		got[c.ID+" "+domainOf(c.Recipients[0])] = strings.Join(c.Recipients, ",")
	}
	want := map[string]string{
		"m1 a.example": "a1@a.example,a2@a.example,A3@A.EXAMPLE",
		"m1 b.example": "b1@b.example",
		"m2 a.example": "a4@a.example",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attempts %v, want %v", got, want)
	}
}

func TestRetryBackoff(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		if n <= 6 {
			return temp(451, "4.7.1", "greylisted")
		}
		return nil
	}
	h.submit("m1", "alice@example.com", "bob@remote.example")
	h.start(nil)
	h.settle()
	for n := 1; n <= 6; n++ {
		if got := h.tr.triesOf("bob@remote.example"); got != n {
			t.Fatalf("attempt %d: transport saw %d attempts", n, got)
		}
		e := h.entry("bob@remote.example")
		wait := DefaultBackoff(n)
		if e.Attempts != n || !e.NextAttempt.Equal(h.clock.Now().Add(wait).Truncate(time.Microsecond)) ||
			e.LastCode != 451 || e.LastStatus != "4.7.1" || e.LastRemote != "mx.remote.example" ||
			!strings.Contains(e.LastError, "greylisted") || !e.LastAttempt.Equal(h.clock.Now().Truncate(time.Microsecond)) {
			t.Fatalf("after attempt %d (wait %v): %+v", n, wait, e)
		}
		// Not a moment early.
		h.clock.Advance(wait - time.Second)
		h.settle()
		if got := h.tr.triesOf("bob@remote.example"); got != n {
			t.Fatalf("retried %v after attempt %d, before the back-off of %v", wait-time.Second, n, wait)
		}
		h.clock.Advance(time.Second)
		h.settle()
	}
	if q := h.queue(); len(q) != 0 || h.tr.delivered["m1/bob@remote.example"] != 1 {
		t.Fatalf("after the 7th attempt: queue %+v, delivered %v", q, h.tr.delivered)
	}
	if n := len(h.logs.records("deferred")); n != 6 {
		t.Errorf("%d deferred records, want 6", n)
	}
	if r := h.logs.records("delivered"); len(r) != 1 || r[0]["attempts"] != 7.0 {
		t.Errorf("delivered record %v", r)
	}
	if len(h.bo.all()) != 0 {
		t.Error("DSN sent without delay warnings configured")
	}
}

// dateRe matches the RFC 5322 dates of a DSN; the store stamps entries
// with the real time, so worker-level golden files blank them.
var dateRe = regexp.MustCompile(`(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}`)

// dsnOf parses a DSN the worker produced, with the checks every DSN gets.
func dsnOf(t *testing.T, b bounced, sender string, delayed bool, rcpts ...string) parsedDSN {
	t.Helper()
	if b.rcpt != sender {
		t.Fatalf("DSN went to %s, want %s", b.rcpt, sender)
	}
	p := parseDSN(t, b.msg)
	if len(p.perRcpt) != len(rcpts) {
		t.Fatalf("DSN lists %d recipients, want %v:\n%s", len(p.perRcpt), rcpts, b.msg)
	}
	action := "failed"
	if delayed {
		action = "delayed"
	}
	for i, r := range rcpts {
		f := p.perRcpt[i]
		if f.Get("Final-Recipient") != "rfc822; "+r || f.Get("Action") != action {
			t.Errorf("recipient %d: %v, want %s %s", i, f, r, action)
		}
	}
	if p.header.Get("To") != "<"+sender+">" || p.header.Get("From") != "Mail Delivery System <MAILER-DAEMON@mail.example.com>" {
		t.Errorf("DSN header %v", p.header)
	}
	return p
}

func TestBounceAfter5xx(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		switch rcpt {
		case "bob@remote.example":
			return perm(550, "5.1.1", "<bob@remote.example>: Recipient address rejected: User unknown")
		case "carol@remote.example":
			return perm(552, "5.2.2", "Mailbox full")
		}
		return nil
	}
	h.submit("m1", "alice@example.com", "bob@remote.example", "ok@remote.example", "carol@remote.example")
	body := h.entry("bob@remote.example").BodyID
	h.start(nil)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue after bounce: %+v", q)
	}
	if _, err := h.st.OpenBody(context.Background(), body); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body after the last entry went: %v", err)
	}
	bs := h.bo.all()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs, want one for both failed recipients", len(bs))
	}
	p := dsnOf(t, bs[0], "alice@example.com", false, "bob@remote.example", "carol@remote.example")
	golden(t, "worker-bounce.golden", dateRe.ReplaceAll(bs[0].msg, []byte("DATE")))
	if p.header.Get("Subject") != "Undelivered Mail Returned to Sender" {
		t.Errorf("Subject %q", p.header.Get("Subject"))
	}
	f := p.perRcpt[0]
	if f.Get("Status") != "5.1.1" || f.Get("Remote-MTA") != "dns; mx.remote.example" ||
		f.Get("Diagnostic-Code") != "smtp; 550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown" {
		t.Errorf("bob's fields: %v", f)
	}
	if p.perRcpt[1].Get("Status") != "5.2.2" {
		t.Errorf("carol's fields: %v", p.perRcpt[1])
	}
	if !strings.Contains(p.headers, "Subject: test m1\r\n") || strings.Contains(p.headers, "body of") {
		t.Errorf("returned headers %q", p.headers)
	}
	if !strings.Contains(p.text, "<bob@remote.example>") || !strings.Contains(p.text, "User unknown") {
		t.Errorf("text:\n%s", p.text)
	}
	recs := h.logs.records("bounced")
	if len(recs) != 2 || recs[0]["reply"] == "" || recs[0]["remote"] != "mx.remote.example" || recs[0]["dsn"] != "sent to alice@example.com" {
		t.Errorf("bounced records %v", recs)
	}
	if h.tr.delivered["m1/ok@remote.example"] != 1 {
		t.Error("the accepted recipient was not delivered")
	}
}

func TestBounceAfterExpiry(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		return temp(421, "4.4.2", fmt.Sprintf("try %d: service not available", n))
	}
	h.submit("m1", "alice@example.com", "bob@remote.example")
	created := h.entry("bob@remote.example").CreatedAt
	h.start(func(o *Options) { o.Lifetime = time.Hour })
	h.settle()
	// Attempts at 0, 5m, 15m, 35m; the next back-off (40m) would pass
	// the lifetime, so the last attempt is at the expiry time.
	for _, step := range []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute} {
		h.clock.Advance(step)
		h.settle()
	}
	e := h.entry("bob@remote.example")
	if e.Attempts != 4 || !e.NextAttempt.Equal(created.Add(time.Hour)) {
		t.Fatalf("after 4 attempts: %+v (created %v)", e, created)
	}
	if len(h.bo.all()) != 0 {
		t.Fatal("DSN before expiry")
	}
	h.clock.Advance(created.Add(time.Hour).Sub(h.clock.Now()))
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("expired entry still queued: %+v", q)
	}
	bs := h.bo.all()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs after expiry, want 1", len(bs))
	}
	p := dsnOf(t, bs[0], "alice@example.com", false, "bob@remote.example")
	f := p.perRcpt[0]
	if f.Get("Status") != "4.4.7" || f.Get("Diagnostic-Code") != "smtp; 421 4.4.2 try 5: service not available" {
		t.Errorf("expired recipient fields: %v", f)
	}
	if !strings.Contains(p.text, "1 hour") {
		t.Errorf("the text does not say how long it was tried:\n%s", p.text)
	}
	if r := h.logs.records("expired"); len(r) != 1 || r[0]["attempts"] != 5.0 {
		t.Errorf("expired records %v", r)
	}
}

func TestDelayNoticeOnce(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		if rcpt == "bob@remote.example" {
			return temp(451, "4.3.0", "queue full")
		}
		return nil
	}
	h.submit("m1", "alice@example.com", "bob@remote.example", "ok@remote.example")
	h.submit("m2", "", "bob@remote.example") // null sender: never a notice
	h.start(func(o *Options) { o.DelayWarning = 5 * time.Minute })
	h.settle()
	if len(h.bo.all()) != 0 {
		t.Fatal("delay notice before DelayWarning")
	}
	for range 4 {
		h.clock.Advance(70 * time.Minute)
		h.settle()
	}
	bs := h.bo.all()
	if len(bs) != 1 {
		t.Fatalf("%d delay notices, want exactly 1", len(bs))
	}
	p := dsnOf(t, bs[0], "alice@example.com", true, "bob@remote.example")
	if p.header.Get("Subject") != "Delayed Mail (still being retried)" || p.perRcpt[0].Get("Status") != "4.3.0" ||
		p.perRcpt[0].Get("Will-Retry-Until") == "" {
		t.Errorf("delay notice: %v %v", p.header, p.perRcpt[0])
	}
	var e store.QueueItem
	for _, q := range h.queue() {
		if q.MessageID == "m1" {
			e = q
		}
	}
	if !e.DelayNotified || e.Attempts != 5 {
		t.Errorf("entry after the notice: %+v", e)
	}
	if r := h.logs.records("delayed notice"); len(r) != 1 || r[0]["msgid"] != "m1" {
		t.Errorf("delayed notice records %v", r)
	}
}

func TestNoDSNForNullSenderOrDSN(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		if strings.HasPrefix(rcpt, "perm") {
			return perm(550, "5.1.1", "no such user")
		}
		return temp(451, "", "later")
	}
	h.submit("null-perm", "", "perm@remote.example")
	h.submit("null-exp", "", "temp@remote.example")
	// A DSN that some other system sent with a sender anyway.
	dsnBody := []byte("From: MAILER-DAEMON@elsewhere.example\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n boundary=x\r\n\r\n--x--\r\n")
	m := &store.NewMessage{ID: "is-dsn", Sender: "postmaster@elsewhere.example", Body: dsnBody, Size: int64(len(dsnBody)),
		Remote: []string{"perm2@remote.example"}}
	if err := h.st.CommitMessages(context.Background(), []*store.NewMessage{m}); err != nil {
		t.Fatal(err)
	}
	h.clock.notBefore(time.Now())
	h.start(func(o *Options) { o.Lifetime = time.Hour; o.DelayWarning = time.Minute })
	h.settle()
	for range 3 {
		h.clock.Advance(40 * time.Minute)
		h.settle()
	}
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
	if bs := h.bo.all(); len(bs) != 0 {
		t.Fatalf("%d DSNs for null-sender mail or a DSN:\n%s", len(bs), bs[0].msg)
	}
	recs := append(h.logs.records("bounced"), h.logs.records("expired")...)
	if len(recs) != 3 {
		t.Fatalf("%d bounced/expired records, want 3", len(recs))
	}
	for _, r := range recs {
		if !strings.HasPrefix(r["dsn"].(string), "none") {
			t.Errorf("record %v", r)
		}
	}
}

func TestPerDestinationLimit(t *testing.T) {
	h := newHarness(t)
	h.tr.gate = make(chan struct{})
	for i := range 10 {
		h.submit(fmt.Sprint("a", i), "alice@example.com", fmt.Sprintf("u%d@a.example", i))
	}
	for i := range 2 {
		h.submit(fmt.Sprint("b", i), "alice@example.com", fmt.Sprintf("u%d@b.example", i))
	}
	h.start(func(o *Options) { o.MaxPerDestination = 3 })
	waitUntil(t, "3 attempts to a.example and 2 to b.example", func() bool {
		return h.tr.inflightOf("a.example") == 3 && h.tr.inflightOf("b.example") == 2
	})
	time.Sleep(50 * time.Millisecond) // give a wrong worker time to start more
	if a, b := h.tr.inflightOf("a.example"), h.tr.inflightOf("b.example"); a != 3 || b != 2 {
		t.Fatalf("in flight: a.example %d, b.example %d; want 3 and 2", a, b)
	}
	close(h.tr.gate)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
	if h.tr.maxFlight["a.example"] != 3 || h.tr.maxFlight["b.example"] != 2 {
		t.Fatalf("max in flight %v", h.tr.maxFlight)
	}
}

func TestGlobalConcurrencyLimit(t *testing.T) {
	h := newHarness(t)
	h.tr.gate = make(chan struct{})
	for i := range 6 {
		h.submit(fmt.Sprint("m", i), "alice@example.com", fmt.Sprintf("u@d%d.example", i))
	}
	h.start(func(o *Options) { o.MaxConcurrent = 4 })
	total := func() int {
		h.tr.mu.Lock()
		defer h.tr.mu.Unlock()
		n := 0
		for _, v := range h.tr.inflight {
			n += v
		}
		return n
	}
	waitUntil(t, "4 attempts in flight", func() bool { return total() == 4 })
	time.Sleep(50 * time.Millisecond)
	if n := total(); n != 4 {
		t.Fatalf("%d attempts in flight, want MaxConcurrent = 4", n)
	}
	close(h.tr.gate)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
}

func TestHoldReleaseFlushDelete(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		if rcpt == "deferred@remote.example" && n == 1 {
			return temp(450, "4.2.1", "try later")
		}
		return nil
	}
	h.submit("held", "alice@example.com", "held@remote.example")
	h.submit("deferred", "alice@example.com", "deferred@remote.example")
	h.submit("deleted", "alice@example.com", "deleted@remote.example")
	c := context.Background()
	must(t, h.st.SetQueueHeld(c, h.entry("held@remote.example").ID, true))
	must(t, h.st.DeleteQueueItem(c, h.entry("deleted@remote.example").ID))
	h.start(nil)
	h.settle()
	if h.tr.triesOf("held@remote.example") != 0 || h.tr.triesOf("deleted@remote.example") != 0 {
		t.Fatalf("held or deleted entry attempted: %v", h.tr.tries)
	}
	if h.tr.triesOf("deferred@remote.example") != 1 {
		t.Fatal("deferred entry not attempted")
	}
	// Flush: the deferred entry goes now, long before its back-off; the
	// held one stays.
	n, err := h.st.FlushQueue(c, h.clock.Now())
	must(t, err)
	if n != 1 {
		t.Errorf("FlushQueue = %d, want 1", n)
	}
	h.settle()
	if h.tr.delivered["deferred/deferred@remote.example"] != 1 || h.tr.triesOf("held@remote.example") != 0 {
		t.Fatalf("after flush: delivered %v, tries %v", h.tr.delivered, h.tr.tries)
	}
	must(t, h.st.SetQueueHeld(c, h.entry("held@remote.example").ID, false))
	h.settle()
	if h.tr.delivered["held/held@remote.example"] != 1 {
		t.Fatalf("released entry not delivered: %v", h.tr.delivered)
	}
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestartWithFullQueue: a worker stops with entries deferred and
// others leased by a worker that crashed; after the store is closed and
// re-opened a new worker delivers every entry, and none twice.
func TestRestartWithFullQueue(t *testing.T) {
	h := newHarness(t)
	var rcpts []string
	for i := range 30 {
		r := fmt.Sprintf("u%d@d%d.example", i, i%5)
		rcpts = append(rcpts, r)
		h.submit(fmt.Sprint("m", i), "alice@example.com", r)
	}
	// A worker that crashed holds leases on 5 entries.
	// Leases run on the database's clock: this one ends in real time.
	const crashLease = 4 * time.Second
	crashedAt := time.Now()
	crashed, err := h.st.ClaimQueue(context.Background(), "crashed", h.clock.Now(), crashLease, 5)
	must(t, err)
	if len(crashed) != 5 {
		t.Fatalf("claimed %d", len(crashed))
	}
	// The first run delivers the even ones and defers the odd ones.
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		var i int
		fmt.Sscanf(rcpt, "u%d@", &i)
		if i%2 == 1 {
			return temp(421, "4.3.2", "shutting down")
		}
		return nil
	}
	h.start(nil)
	h.settle()
	h.stop()
	first := h.tr
	must(t, h.st.Close())

	h.reopen()
	h.tr = newTransport()
	h.start(nil)
	h.settle()
	if h.tr.callCount() != 0 {
		t.Fatalf("the new worker sent %d before anything was due", h.tr.callCount())
	}
	time.Sleep(time.Until(crashedAt.Add(crashLease))) // the crashed worker's lease ends
	h.clock.Advance(DefaultBackoff(1))                // past the back-off
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue after restart: %+v", q)
	}
	for i, r := range rcpts {
		k := fmt.Sprint("m", i, "/", r)
		if n := first.delivered[k] + h.tr.delivered[k]; n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	for _, c := range crashed {
		if first.triesOf(c.Recipient) != 0 || h.tr.delivered[c.MessageID+"/"+c.Recipient] != 1 {
			t.Errorf("crashed worker's entry %s: first run tried it %d times; second delivered %d",
				c.Recipient, first.triesOf(c.Recipient), h.tr.delivered[c.MessageID+"/"+c.Recipient])
		}
	}
}

// TestTwoWorkersNeverDuplicate: two workers on two store handles (two
// nodes on one database) drain one queue; every entry is sent once.
func TestTwoWorkersNeverDuplicate(t *testing.T) {
	h := newHarness(t)
	const n = 300
	for i := range n {
		h.submit(fmt.Sprint("m", i), "alice@example.com", fmt.Sprintf("u%d@d%d.example", i, i%7))
	}
	h.tr.delay = time.Millisecond
	st2, err := sqlstore.Open(context.Background(), h.opt)
	must(t, err)
	defer st2.Close()
	w1 := h.start(func(o *Options) { o.MaxConcurrent = 8 })
	stop1 := h.stop
	h.stop = nil
	w2 := h.start(func(o *Options) { o.Store = st2; o.MaxConcurrent = 8 })
	waitUntil(t, "an empty queue", func() bool { return len(h.queue()) == 0 })
	settle(t, w1, w2)
	stop1()
	h.tr.mu.Lock()
	defer h.tr.mu.Unlock()
	if len(h.tr.delivered) != n {
		t.Fatalf("%d entries delivered, want %d", len(h.tr.delivered), n)
	}
	for k, c := range h.tr.delivered {
		if c != 1 {
			t.Errorf("%s delivered %d times", k, c)
		}
	}
}

// TestShutdownReleasesLeases: attempts still running after the grace
// period are cancelled; their entries are due again at once, with no
// attempt counted.
func TestShutdownReleasesLeases(t *testing.T) {
	h := newHarness(t)
	h.tr.gate = make(chan struct{}) // never opened: attempts hang
	h.submit("m1", "alice@example.com", "a@one.example", "b@two.example")
	h.start(func(o *Options) { o.ShutdownGrace = 20 * time.Millisecond })
	waitUntil(t, "two attempts in flight", func() bool { return h.tr.callCount() == 2 })
	h.stop()
	for _, e := range h.queue() {
		if e.Attempts != 0 || !e.LeaseUntil.IsZero() {
			t.Errorf("after shutdown: %+v", e)
		}
	}
	h.tr.gate = nil
	h.start(nil)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
}

func TestRewriteSender(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		if m.Sender != "SRS0=abc=XY=example.com=alice@example.com" && m.Sender != "" {
			return fmt.Errorf("sender %q was not rewritten", m.Sender)
		}
		return perm(550, "5.7.1", "rejected")
	}
	h.submit("m1", "alice@example.com", "bob@remote.example")
	h.submit("m2", "", "carol@remote.example")
	var seen []string
	var mu sync.Mutex
	h.start(func(o *Options) {
		o.RewriteSender = func(ctx context.Context, s string) (string, error) {
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
			return "SRS0=abc=XY=example.com=" + s, nil
		}
	})
	h.settle()
	if fmt.Sprint(seen) != "[alice@example.com]" {
		t.Errorf("RewriteSender saw %v; the null sender must not be rewritten", seen)
	}
	bs := h.bo.all()
	if len(bs) != 1 || bs[0].rcpt != "alice@example.com" {
		t.Fatalf("DSNs %v: want one to the original sender", bs)
	}
}

func TestBouncerFailureKeepsEntry(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error { return perm(550, "5.1.1", "unknown") }
	h.bo.fail = errors.New("disk full")
	h.submit("m1", "alice@example.com", "bob@remote.example")
	h.start(nil)
	h.settle()
	e := h.entry("bob@remote.example")
	if e.Attempts != 1 || e.LastCode != 550 {
		t.Fatalf("entry after a failed bounce: %+v", e)
	}
	h.bo.mu.Lock()
	h.bo.fail = nil
	h.bo.mu.Unlock()
	h.clock.Advance(DefaultBackoff(1))
	h.settle()
	if q := h.queue(); len(q) != 0 || len(h.bo.all()) != 1 {
		t.Fatalf("after the retry: queue %+v, %d DSNs", q, len(h.bo.all()))
	}
}

func TestGroupErrorAndMissingResults(t *testing.T) {
	h := newHarness(t)
	h.tr.groupErr = func(m *Message) error {
		if m.ID == "m1" {
			return &DeliveryError{Message: "no MX reachable", Remote: ""}
		}
		return nil
	}
	h.submit("m1", "alice@example.com", "a@one.example", "b@one.example")
	h.start(nil)
	h.settle()
	q := h.queue()
	sort.Slice(q, func(i, j int) bool { return q[i].Recipient < q[j].Recipient })
	if len(q) != 2 || q[0].Attempts != 1 || q[1].Attempts != 1 || !strings.Contains(q[0].LastError, "no MX reachable") {
		t.Fatalf("after a group failure: %+v", q)
	}
}

// BenchmarkDrain measures how fast the worker empties a queue of 1000
// entries (single-recipient messages over 10 domains) into a transport
// that accepts everything, on SQLite.
func BenchmarkDrain(b *testing.B) {
	const n = 1000
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 64) // 4 KiB
	total := 0
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		st, err := sqlstore.Open(context.Background(), sqlstore.Options{Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")})
		if err != nil {
			b.Fatal(err)
		}
		var msgs []*store.NewMessage
		for i := range n {
			msgs = append(msgs, &store.NewMessage{ID: fmt.Sprint("m", i), Sender: "alice@example.com", Body: body,
				Size: int64(len(body)), Remote: []string{fmt.Sprintf("u%d@d%d.example", i, i%10)}})
		}
		for i := 0; i < n; i += 100 {
			if err := st.CommitMessages(context.Background(), msgs[i:i+100]); err != nil {
				b.Fatal(err)
			}
		}
		tr := newTransport()
		w, err := New(Options{Store: st, Transport: tr, Bouncer: &fakeBouncer{}, Hostname: "mail.example.com"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- w.Run(ctx) }()
		// Cheap polling first (listing the queue costs as much as draining it).
		for {
			tr.mu.Lock()
			got := len(tr.delivered)
			tr.mu.Unlock()
			if got == n {
				break
			}
			time.Sleep(time.Millisecond)
		}
		for {
			q, err := st.ListQueue(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if len(q) == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		<-done
		if len(tr.delivered) != n {
			b.Fatalf("%d delivered", len(tr.delivered))
		}
		total += n
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
}

func TestAsDeliveryError(t *testing.T) {
	tests := []struct {
		err  error
		want DeliveryError
	}{
		{&DeliveryError{Permanent: true, Code: 550, Enhanced: "5.1.1", Message: "x"}, DeliveryError{Permanent: true, Code: 550, Enhanced: "5.1.1", Message: "x"}},
		{fmt.Errorf("rcpt: %w", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}),
			DeliveryError{Permanent: true, Code: 554, Enhanced: "5.7.1", Message: "spam"}},
		{&smtp.SMTPError{Code: 421, EnhancedCode: smtp.NoEnhancedCode, Message: "bye"}, DeliveryError{Code: 421, Message: "bye"}},
		{context.DeadlineExceeded, DeliveryError{Message: "delivery attempt timed out"}},
		{errors.New("dial tcp: connection refused"), DeliveryError{Message: "dial tcp: connection refused"}},
	}
	for _, tc := range tests {
		if got := asDeliveryError(tc.err); *got != tc.want {
			t.Errorf("asDeliveryError(%v) = %+v, want %+v", tc.err, *got, tc.want)
		}
	}
}

// hopTransport sends every domain through one next hop (a RELAYHOST) and
// counts the closes of idle connections.
type hopTransport struct {
	*fakeTransport
	asked     atomic.Int32
	idleClose atomic.Int32
}

func (h *hopTransport) NextHop(_ context.Context, domain string) string {
	h.asked.Add(1)
	return "smtp:[relay.example]:587"
}

func (h *hopTransport) CloseIdleConnections() { h.idleClose.Add(1) }

func TestPerNextHopLimit(t *testing.T) {
	h := newHarness(t)
	h.tr.gate = make(chan struct{})
	for i := range 6 {
		h.submit(fmt.Sprint("a", i), "alice@example.com", fmt.Sprintf("u%d@a.example", i))
		h.submit(fmt.Sprint("b", i), "alice@example.com", fmt.Sprintf("u%d@b.example", i))
	}
	ht := &hopTransport{fakeTransport: h.tr}
	h.start(func(o *Options) { o.Transport = ht; o.MaxPerDestination = 3 })
	both := func() int { return h.tr.inflightOf("a.example") + h.tr.inflightOf("b.example") }
	waitUntil(t, "3 attempts through the relay", func() bool { return both() == 3 })
	time.Sleep(50 * time.Millisecond) // give a wrong worker time to start more
	if n := both(); n != 3 {
		t.Fatalf("%d attempts in flight through one next hop, want 3", n)
	}
	close(h.tr.gate)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
	if n := ht.asked.Load(); n < 2 || n > 12 {
		t.Errorf("NextHop asked %d times for 12 messages to 2 domains", n)
	}
	h.stop()
	if n := ht.idleClose.Load(); n != 1 {
		t.Errorf("CloseIdleConnections called %d times at the end of Run, want 1", n)
	}
}

// While a full round of claimed entries waits for delivery slots, a Kick
// does not claim the newcomer in a transaction of its own: it is claimed
// with the next bulk top-up, and delivered.
func TestKickDeferredWhileBacklogged(t *testing.T) {
	h := newHarness(t)
	h.tr.gate = make(chan struct{})
	for i := range 60 {
		h.submit(fmt.Sprint("m", i), "alice@example.com", fmt.Sprintf("u@d%d.example", i))
	}
	w := h.start(func(o *Options) { o.MaxConcurrent = 2; o.PollInterval = time.Hour })
	waitUntil(t, "60 entries claimed", func() bool { return w.pending.Load() == 60 })
	waitUntil(t, "2 attempts in flight", func() bool { return h.tr.callCount() == 2 })
	before := w.claims.Load()
	h.submit("late", "alice@example.com", "u@late.example")
	w.Kick()
	time.Sleep(50 * time.Millisecond) // give a wrong worker time to claim
	if n := w.claims.Load(); n != before {
		t.Errorf("%d claims after a Kick with 58 entries waiting for 2 slots, want none", n-before)
	}
	close(h.tr.gate)
	waitUntil(t, "the late message delivered", func() bool { return h.tr.triesOf("u@late.example") == 1 })
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("queue: %+v", q)
	}
}
