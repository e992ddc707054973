package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
)

// memStore is an in-memory MessageStore: all-or-nothing groups, a per-user
// quota, a gate that holds commits, and a record of every call.
type memStore struct {
	mu      sync.Mutex
	msgs    map[string][]*store.NewMessage // user -> messages
	remote  []string
	used    map[string]int64
	quota   map[string]int64
	batches []int // size of every CommitMessages call
	delay   time.Duration
	gate    chan struct{} // when set, every commit waits for a receive from it
	entered chan int      // when set, gets the batch size as a commit starts
}

func newMemStore() *memStore {
	return &memStore{msgs: map[string][]*store.NewMessage{}, used: map[string]int64{}, quota: map[string]int64{}}
}

func (s *memStore) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	if s.entered != nil {
		s.entered <- len(msgs)
	}
	if s.gate != nil {
		<-s.gate
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(msgs))
	add := map[string]int64{}
	for _, m := range msgs {
		for _, t := range m.Targets {
			add[t.User] += m.Size
			if q := s.quota[t.User]; q > 0 && s.used[t.User]+add[t.User] > q {
				return fmt.Errorf("memstore: %s: %w", t.User, &store.QuotaError{User: t.User})
			}
		}
	}
	for _, m := range msgs {
		for _, t := range m.Targets {
			s.msgs[t.User] = append(s.msgs[t.User], m)
			s.used[t.User] += m.Size
		}
		s.remote = append(s.remote, m.Remote...)
	}
	return nil
}

func (s *memStore) count(user, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs[user] {
		if m.ID == id {
			n++
		}
	}
	return n
}

func (s *memStore) calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

// logSink collects log records.
type logSink struct {
	mu       sync.Mutex
	recs     []slog.Record
	warnOnly bool // as LOG_LEVEL=WARNING
}

func (l *logSink) Enabled(_ context.Context, lv slog.Level) bool {
	return !l.warnOnly || lv >= slog.LevelWarn
}
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }

// find returns the records with message msg and msgid id.
func (l *logSink) find(msg, id string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "msgid" && a.Value.String() == id {
				out = append(out, r)
				return false
			}
			return true
		})
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

type harness struct {
	d     *Deliverer
	st    *memStore
	blobs *blob.Dir
	logs  *logSink
}

func newHarness(t *testing.T, st *memStore, opts DelivererOptions) *harness {
	t.Helper()
	blobs, err := blob.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logSink{}
	opts.Store = st
	opts.Blobs = blobs
	opts.Logger = slog.New(logs)
	d := NewDeliverer(opts)
	d.Start(context.Background())
	t.Cleanup(func() { d.Close() })
	return &harness{d: d, st: st, blobs: blobs, logs: logs}
}

// rpSender is the Return-Path field local delivery puts in front of
// env's messages.
const rpSender = "Return-Path: <sender@remote.test>\r\n"

func env(id string, routes ...Route) *Envelope {
	return &Envelope{ID: id, Sender: "sender@remote.test", Routes: routes, ReceivedAt: time.Unix(1700000000, 0)}
}

func toBox(users ...string) Route {
	return Route{Kind: RouteLocal, Rcpt: users[0], Mailboxes: users}
}

func (h *harness) deliver(ctx context.Context, e *Envelope, body []byte) error {
	sp, err := h.d.NewSpool()
	if err != nil {
		return err
	}
	if _, err := sp.Write(body); err != nil {
		return err
	}
	return h.d.Deliver(ctx, e, sp)
}

func TestDeliverConcurrentGroups(t *testing.T) {
	st := newMemStore()
	st.delay = 2 * time.Millisecond // an fsync's worth, so deliveries pile up
	h := newHarness(t, st, DelivererOptions{})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.deliver(context.Background(), env(fmt.Sprintf("m%d", i), toBox("u@example.com")), []byte("hello\r\n"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if c := st.count("u@example.com", fmt.Sprintf("m%d", i)); c != 1 {
			t.Fatalf("m%d stored %d times", i, c)
		}
	}
	calls := st.calls()
	if len(calls) >= n {
		t.Fatalf("%d CommitMessages calls for %d messages: no grouping", len(calls), n)
	}
	for _, b := range calls {
		if b > DefaultMaxBatch {
			t.Fatalf("batch of %d exceeds MaxBatch", b)
		}
	}
	t.Logf("%d messages in %d commits", n, len(calls))
}

// gated starts one delivery that holds the committer in CommitMessages,
// so that everything delivered meanwhile forms the next group.
func gated(t *testing.T, h *harness) chan error {
	t.Helper()
	h.st.gate = make(chan struct{})
	h.st.entered = make(chan int, 100)
	first := make(chan error, 1)
	go func() { first <- h.deliver(context.Background(), env("first", toBox("u@example.com")), []byte("x")) }()
	if got := <-h.st.entered; got != 1 {
		t.Fatalf("first batch size %d", got)
	}
	return first
}

func waitPending(t *testing.T, d *Deliverer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		got := len(d.pending)
		d.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDeliverQuotaIsolated(t *testing.T) {
	st := newMemStore()
	st.quota["full@example.com"] = 10
	h := newHarness(t, st, DelivererOptions{})
	first := gated(t, h)

	const n = 6
	results := make([]chan error, n)
	for i := range results {
		results[i] = make(chan error, 1)
		rcpt := "u@example.com"
		if i == 3 {
			rcpt = "full@example.com"
		}
		go func() {
			results[i] <- h.deliver(context.Background(), env(fmt.Sprintf("q%d", i), toBox(rcpt)), bytes.Repeat([]byte("y"), 100))
		}()
	}
	waitPending(t, h.d, n)
	close(h.st.gate) // release: the group of 6 fails on quota, then each is retried alone

	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		err := <-ch
		if i == 3 {
			if !errors.Is(err, store.ErrQuotaExceeded) {
				t.Errorf("q3: err = %v, want ErrQuotaExceeded", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("q%d: %v", i, err)
		}
		if c := st.count("u@example.com", fmt.Sprintf("q%d", i)); c != 1 {
			t.Errorf("q%d stored %d times", i, c)
		}
	}
	calls := st.calls()
	// first alone, the failed group of 6, then 6 retries
	if len(calls) != 8 || calls[1] != n {
		t.Errorf("commit calls = %v, want [1 %d 1 1 1 1 1 1]", calls, n)
	}
	if recs := h.logs.find("delivery failed", "q3"); len(recs) != 1 || attr(recs[0], "result").String() != "quota" {
		t.Errorf("want one 'delivery failed' result=quota line for q3, got %d", len(recs))
	}
	if recs := h.logs.find("delivered", "q3"); len(recs) != 0 {
		t.Errorf("q3 logged as delivered")
	}
}

func TestDeliverCloseDrains(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, st, DelivererOptions{})
	first := gated(t, h)
	const n = 5
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			results <- h.deliver(context.Background(), env(fmt.Sprintf("c%d", i), toBox("u@example.com")), []byte("z"))
		}()
	}
	waitPending(t, h.d, n)
	closed := make(chan struct{})
	go func() { h.d.Close(); close(closed) }()
	// Close must not return while deliveries are pending.
	deadline := time.Now().Add(10 * time.Second)
	for h.d.running() {
		if time.Now().After(deadline) {
			t.Fatal("Close did not start closing")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-closed:
		t.Fatal("Close returned before pending deliveries were committed")
	default:
	}
	if err := h.deliver(context.Background(), env("late", toBox("u@example.com")), []byte("z")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Deliver after Close: %v, want ErrClosed", err)
	}
	close(h.st.gate)
	<-closed
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if c := st.count("u@example.com", fmt.Sprintf("c%d", i)); c != 1 {
			t.Fatalf("c%d stored %d times", i, c)
		}
	}
}

func TestDeliverStartContextDrains(t *testing.T) {
	st := newMemStore()
	d := NewDeliverer(DelivererOptions{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	h := &harness{d: d, st: st}
	if err := h.deliver(context.Background(), env("a", toBox("u@example.com")), []byte("1")); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-d.done // the committer exits by itself
	if err := h.deliver(context.Background(), env("b", toBox("u@example.com")), []byte("1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after ctx cancel: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverNotStarted(t *testing.T) {
	d := NewDeliverer(DelivererOptions{Store: newMemStore()})
	sp, _ := d.NewSpool()
	sp.Write([]byte("x"))
	if err := d.Deliver(context.Background(), env("a", toBox("u@example.com")), sp); !errors.Is(err, ErrClosed) {
		t.Fatalf("Deliver before Start: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverContextCancelStillCommits(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, st, DelivererOptions{})
	first := gated(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- h.deliver(ctx, env("cx", toBox("u@example.com")), []byte("z")) }()
	waitPending(t, h.d, 1)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(h.st.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	h.d.Close()
	if c := st.count("u@example.com", "cx"); c != 1 {
		t.Fatalf("cx stored %d times; the message should still commit", c)
	}
	if recs := h.logs.find("delivered", "cx"); len(recs) != 1 {
		t.Fatalf("cx logged %d times, want once", len(recs))
	}
}

func TestDeliverBuildsMessage(t *testing.T) {
	st := newMemStore()
	var got *store.NewMessage
	st.entered = make(chan int, 10)
	h := newHarness(t, st, DelivererOptions{})
	e := env("b1",
		Route{Kind: RouteLocal, Rcpt: "info@example.com", Mailboxes: []string{"a@example.com", "b@example.com"}, Remote: []string{"x@remote.test"}},
		Route{Kind: RouteLocal, Rcpt: "a@example.com", Mailboxes: []string{"a@example.com"}},
		Route{Kind: RouteForeign, Rcpt: "x@remote.test", Remote: []string{"x@remote.test"}},
		Route{Kind: RouteForeign, Rcpt: "y@remote.test", Remote: []string{"y@remote.test"}},
	)
	e.AuthUser = "a@example.com"
	if err := h.deliver(context.Background(), e, []byte("body")); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	got = st.msgs["a@example.com"][0]
	st.mu.Unlock()
	var users []string
	for _, tg := range got.Targets {
		if tg.Mailbox != "INBOX" {
			t.Errorf("target mailbox %q, want INBOX", tg.Mailbox)
		}
		users = append(users, tg.User)
	}
	if strings.Join(users, ",") != "a@example.com,b@example.com" {
		t.Errorf("targets = %v", users)
	}
	if strings.Join(got.Remote, ",") != "x@remote.test,y@remote.test" {
		t.Errorf("remote = %v", got.Remote)
	}
	if got.ID != "b1" || got.Sender != "sender@remote.test" || got.Size != int64(len(rpSender))+4 || string(got.Body) != rpSender+"body" || got.BlobName != "" || !got.ReceivedAt.Equal(e.ReceivedAt) {
		t.Errorf("message = %+v", got)
	}
	recs := h.logs.find("delivered", "b1")
	if len(recs) != 1 {
		t.Fatalf("%d 'delivered' lines, want 1", len(recs))
	}
	r := recs[0]
	if r.Level != slog.LevelInfo || attr(r, "nrcpt").Int64() != 4 || attr(r, "size").Int64() != int64(len(rpSender))+4 || attr(r, "from").String() != "sender@remote.test" || attr(r, "result").String() != "ok" || attr(r, "user").String() != "a@example.com" {
		t.Errorf("log line: %v", r)
	}

	// Remote only: "queued".
	if err := h.deliver(context.Background(), env("b2", Route{Kind: RouteForeign, Rcpt: "z@remote.test", Remote: []string{"z@remote.test"}}), []byte("b")); err != nil {
		t.Fatal(err)
	}
	if len(h.logs.find("queued", "b2")) != 1 || len(h.logs.find("delivered", "b2")) != 0 {
		t.Errorf("remote-only message should log one 'queued' line")
	}

	// No recipients at all.
	if err := h.deliver(context.Background(), env("b3", Route{Kind: RouteLocal, Rcpt: "n@example.com"}), []byte("b")); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("empty routes: %v, want ErrNoRecipients", err)
	}
}

func TestSpoolInlineAndSpill(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, st, DelivererOptions{InlineMax: 1000})

	// Exactly InlineMax stays inline.
	sp, _ := h.d.NewSpool()
	sp.Write(bytes.Repeat([]byte("a"), 600))
	sp.Write(bytes.Repeat([]byte("b"), 400))
	if sp.Spilled() || sp.Size() != 1000 {
		t.Fatalf("1000 bytes: spilled=%v size=%d", sp.Spilled(), sp.Size())
	}
	sp.Abort()

	// One more byte spills; the blob holds the whole body.
	body := make([]byte, 300_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	sp, _ = h.d.NewSpool()
	for off := 0; off < len(body); off += 777 {
		end := min(off+777, len(body))
		if _, err := sp.Write(body[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	if !sp.Spilled() || sp.Size() != int64(len(body)) {
		t.Fatalf("spilled=%v size=%d", sp.Spilled(), sp.Size())
	}
	if err := h.d.Deliver(context.Background(), env("big", toBox("u@example.com")), sp); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	m := st.msgs["u@example.com"][0]
	st.mu.Unlock()
	if m.Body != nil || m.BlobName == "" || m.Size != int64(len(rpSender)+len(body)) {
		t.Fatalf("big message: body=%d blob=%q size=%d", len(m.Body), m.BlobName, m.Size)
	}
	f, err := h.blobs.Open(m.BlobName)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, append([]byte(rpSender), body...)) {
		t.Fatal("blob content differs from Return-Path and the body written")
	}
	if _, err := sp.Write([]byte("x")); err == nil {
		t.Fatal("write after Deliver should fail")
	}
	sp.Abort() // no-op after Deliver
	if _, err := h.blobs.Stat(m.BlobName); err != nil {
		t.Fatalf("Abort after Deliver removed the committed blob: %v", err)
	}
}

func TestSpoolAbortRemovesTemp(t *testing.T) {
	h := newHarness(t, newMemStore(), DelivererOptions{InlineMax: 10})
	sp, _ := h.d.NewSpool()
	sp.Write(bytes.Repeat([]byte("x"), 100))
	if !sp.Spilled() {
		t.Fatal("not spilled")
	}
	sp.Abort()
	ents, err := os.ReadDir(filepath.Join(h.blobs.Path(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("tmp still holds %d files after Abort", len(ents))
	}
}

func TestDeliverFailedBlobRemoved(t *testing.T) {
	st := newMemStore()
	st.quota["full@example.com"] = 10
	h := newHarness(t, st, DelivererOptions{InlineMax: 10})
	err := h.deliver(context.Background(), env("f", toBox("full@example.com")), bytes.Repeat([]byte("x"), 100))
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("err = %v", err)
	}
	n := 0
	if err := h.blobs.Names(context.Background(), func(string, time.Time) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d blobs left after a failed delivery", n)
	}
}

// At LOG_LEVEL=WARNING a delivery logs nothing, and a failed one still
// logs its line with the result.
func TestDeliverLogLevel(t *testing.T) {
	st := newMemStore()
	st.quota["full@example.com"] = 10
	h := newHarness(t, st, DelivererOptions{})
	h.logs.warnOnly = true
	if err := h.deliver(context.Background(), env("ok1", toBox("u@example.com")), []byte("hello\r\n")); err != nil {
		t.Fatal(err)
	}
	err := h.deliver(context.Background(), env("q1", toBox("full@example.com")), bytes.Repeat([]byte("y"), 100))
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("over quota: %v", err)
	}
	if recs := h.logs.find("delivered", "ok1"); len(recs) != 0 {
		t.Errorf("a delivery was logged at warning level")
	}
	recs := h.logs.find("delivery failed", "q1")
	if len(recs) != 1 || attr(recs[0], "result").String() != "quota" {
		t.Fatalf("want one 'delivery failed' result=quota line, got %d", len(recs))
	}
	if rc := attr(recs[0], "rcpts"); rc.Kind() == slog.KindAny && fmt.Sprint(rc.Any()) != "[full@example.com]" {
		t.Errorf("rcpts = %v", rc)
	}
}
