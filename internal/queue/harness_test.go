package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// fakeClock is the worker's clock in tests; it starts just after the wall
// clock, since the store stamps new entries with the real time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now().Add(time.Second).UTC()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// notBefore moves the clock to just after t if it is behind: entries the
// store stamped with the real time must be due.
func (c *fakeClock) notBefore(t time.Time) {
	c.mu.Lock()
	if !c.t.After(t) {
		c.t = t.Add(time.Second).UTC()
	}
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeTransport records every attempt and answers as its script says.
type fakeTransport struct {
	mu sync.Mutex
	// answer gives the result for rcpt on its n-th attempt (1-based); nil
	// accepts. Nil answer accepts everything.
	answer func(m *Message, rcpt string, n int) error
	// groupErr, when set, fails the whole attempt.
	groupErr func(m *Message) error
	gate     chan struct{} // when set, each Deliver waits for it (or ctx)
	delay    time.Duration
	noDSN    bool // the "server" does not offer DSN (RecipientResult.NoDSN)

	calls     []Message
	bodies    []string
	tries     map[string]int // rcpt -> attempts
	delivered map[string]int // msgid/rcpt -> acceptances
	inflight  map[string]int // domain -> attempts in progress
	maxFlight map[string]int
}

func newTransport() *fakeTransport {
	return &fakeTransport{tries: map[string]int{}, delivered: map[string]int{},
		inflight: map[string]int{}, maxFlight: map[string]int{}}
}

func (f *fakeTransport) Deliver(ctx context.Context, m *Message) ([]RecipientResult, error) {
	rc, err := m.Body()
	if err != nil {
		return nil, &DeliveryError{Message: "body: " + err.Error()}
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	dom := domainOf(m.Recipients[0])
	f.mu.Lock()
	f.calls = append(f.calls, *m)
	f.bodies = append(f.bodies, string(body))
	f.inflight[dom]++
	f.maxFlight[dom] = max(f.maxFlight[dom], f.inflight[dom])
	gate := f.gate
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[dom]--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.groupErr != nil {
		if err := f.groupErr(m); err != nil {
			for _, r := range m.Recipients {
				f.tries[r]++
			}
			return nil, err
		}
	}
	var res []RecipientResult
	for _, r := range m.Recipients {
		f.tries[r]++
		var err error
		if f.answer != nil {
			err = f.answer(m, r, f.tries[r])
		}
		if err == nil {
			f.delivered[m.ID+"/"+r]++
		}
		res = append(res, RecipientResult{Recipient: r, Err: err, Remote: "mx." + dom, Reply: "250 2.0.0 Ok", NoDSN: f.noDSN})
	}
	return res, nil
}

func (f *fakeTransport) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeTransport) inflightOf(dom string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inflight[dom]
}

func (f *fakeTransport) triesOf(rcpt string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[rcpt]
}

func temp(code int, enh, msg string) error {
	return &DeliveryError{Code: code, Enhanced: enh, Message: msg, Remote: "mx.remote.example"}
}

func perm(code int, enh, msg string) error {
	return &DeliveryError{Permanent: true, Code: code, Enhanced: enh, Message: msg, Remote: "mx.remote.example"}
}

type bounced struct {
	rcpt string
	msg  []byte
}

type fakeBouncer struct {
	mu   sync.Mutex
	got  []bounced
	fail error
}

func (b *fakeBouncer) Bounce(ctx context.Context, rcpt string, msg []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.got = append(b.got, bounced{rcpt, append([]byte(nil), msg...)})
	return nil
}

func (b *fakeBouncer) all() []bounced {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bounced(nil), b.got...)
}

// syncBuffer collects log records from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the JSON log records with the given msg.
func (s *syncBuffer) records(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(s.b.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

type harness struct {
	t     *testing.T
	opt   sqlstore.Options
	st    *sqlstore.Store
	clock *fakeClock
	tr    *fakeTransport
	bo    *fakeBouncer
	logs  *syncBuffer
	w     *Worker
	stop  func()
}

func newHarness(t *testing.T) *harness {
	dir := t.TempDir()
	h := &harness{t: t, clock: newClock(), tr: newTransport(), bo: &fakeBouncer{}, logs: &syncBuffer{},
		opt: sqlstore.Options{Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs"), InlineMax: 4096}}
	h.reopen()
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
		h.st.Close()
	})
	return h
}

func (h *harness) reopen() {
	st, err := sqlstore.Open(context.Background(), h.opt)
	if err != nil {
		h.t.Fatal(err)
	}
	h.st = st
}

func (h *harness) options() Options {
	return Options{Store: h.st, Transport: h.tr, Bouncer: h.bo, Hostname: "mail.example.com",
		Lifetime: 5 * 24 * time.Hour, DelayWarning: 0, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Now: h.clock.Now,
		NewID: func() string { return "dsnid" }}
}

// start runs a worker with h.options() changed by edit.
func (h *harness) start(edit func(*Options)) *Worker {
	h.t.Helper()
	o := h.options()
	if edit != nil {
		edit(&o)
	}
	w, err := New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	h.w = w
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			h.t.Fatal("Run did not return after cancel")
		}
		h.stop = nil
	}
	return w
}

// submit queues a message from sender to rcpts and returns its id.
func (h *harness) submit(id, sender string, rcpts ...string) string {
	h.t.Helper()
	body := []byte("From: <" + sender + ">\r\nSubject: test " + id + "\r\nMessage-ID: <" + id + "@example.com>\r\n\r\nbody of " + id + "\r\n")
	m := &store.NewMessage{ID: id, Sender: sender, Body: body, Size: int64(len(body)), Remote: rcpts}
	if err := h.st.CommitMessages(context.Background(), []*store.NewMessage{m}); err != nil {
		h.t.Fatal(err)
	}
	h.clock.notBefore(time.Now())
	return id
}

func (h *harness) queue() []store.QueueItem {
	h.t.Helper()
	q, err := h.st.ListQueueEntries(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return q
}

func (h *harness) entry(rcpt string) store.QueueItem {
	h.t.Helper()
	for _, q := range h.queue() {
		if q.Recipient == rcpt {
			return q
		}
	}
	h.t.Fatalf("no queue entry for %s", rcpt)
	return store.QueueItem{}
}

// settle waits until w has run a claim that started after this call and
// found nothing due, with no attempt in progress: everything due at the
// current (fake) time has been tried and recorded.
func settle(t *testing.T, ws ...*Worker) {
	t.Helper()
	starts := make([]int64, len(ws))
	for i, w := range ws {
		starts[i] = w.claims.Load()
		w.Kick()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for i, w := range ws {
			if w.idleAt.Load() <= starts[i] || w.pending.Load() != 0 {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue worker did not settle")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) settle() { h.t.Helper(); settle(h.t, h.w) }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
