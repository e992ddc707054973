package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
	"github.com/petrelmail/petrel/internal/testutil/pgproxy"
)

// gateStore holds the first CommitMessages until release is closed, and
// makes the proxy drop the reply of the first multi-message group's
// COMMIT.
type gateStore struct {
	*sqlstore.Store
	proxy   *pgproxy.Proxy
	release chan struct{}
	mu      sync.Mutex
	calls   int
	dropped bool
}

func (g *gateStore) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	g.mu.Lock()
	g.calls++
	first := g.calls == 1
	if len(msgs) > 1 && !g.dropped {
		g.dropped = true
		g.proxy.DropNextCommits(1)
	}
	g.mu.Unlock()
	if first {
		<-g.release
	}
	return g.Store.CommitMessages(ctx, msgs)
}

// TestGroupCommitReplyLost: PostgreSQL commits a group of deliveries but
// the reply is lost. Every delivery must end stored exactly once, with
// its body readable and the quota counted once, even for a recipient
// whose quota the group fills exactly (retrying the group message by
// message used to store it twice or refuse it as over quota and delete
// its body).
func TestGroupCommitReplyLost(t *testing.T) {
	dsn := testutil.PGSchemaDSN(t)
	target, err := pgproxy.Target(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pgproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	blobs := filepath.Join(t.TempDir(), "blobs")
	opt := sqlstore.Options{Flavor: "postgresql", DSN: dsn, BlobDir: blobs, InlineMax: 1024}
	direct, err := sqlstore.Open(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	opt.DSN, err = p.DSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pq, err := sqlstore.Open(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer pq.Close()

	const n = 8
	body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("message %d\r\n", i)), 40*(i+1)) }
	var nearQuota int64
	for i := range n {
		// Stored as delivered: with local delivery's Return-Path on top.
		nearQuota += int64(len(ReturnPathField("sender@remote.test")) + len(body(i)))
	}
	addUsers(t, direct, "example.com", 0, "a", "first")
	addUsers(t, direct, "example.com", nearQuota, "near")

	g := &gateStore{Store: pq, proxy: p, release: make(chan struct{})}
	d := NewDeliverer(DelivererOptions{Store: g, Blobs: pq.Blobs(), InlineMax: pq.InlineMax(), Logger: slog.New(slog.DiscardHandler)})
	d.Start(context.Background())
	defer d.Close()

	errs := make(chan error, n+1)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(g.release) }) }
	defer release() // a failed test must not leave the committer stuck
	go func() {
		errs <- deliverBody(t.Context(), d, env("first", toBox("first@example.com")), []byte("first\r\n"))
	}()
	// The first delivery is held in the store before the others queue.
	for deadline := time.Now().Add(10 * time.Second); ; {
		g.mu.Lock()
		c := g.calls
		g.mu.Unlock()
		if c == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first delivery never reached the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range n {
		go func() {
			errs <- deliverBody(t.Context(), d, env(fmt.Sprint("m", i), toBox("a@example.com", "near@example.com")), body(i))
		}()
	}
	// Wait until the n deliveries queue behind the held first group.
	for deadline := time.Now().Add(10 * time.Second); ; {
		d.mu.Lock()
		k := len(d.pending)
		d.mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries pending, want %d", k, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Errorf("delivery: %v", err)
		}
	}
	if _, dropped, _ := p.Stats(); dropped != 1 {
		t.Fatalf("proxy dropped %d COMMIT replies, want 1", dropped)
	}
	for _, u := range []string{"a@example.com", "near@example.com"} {
		got := bodies(t, direct, u)
		if len(got) != n {
			t.Errorf("%s: %d messages, want %d (each exactly once)", u, len(got), n)
		}
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				t.Errorf("%s: a message is stored twice", u)
			}
		}
		used, _, err := direct.Quota(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		if used != nearQuota {
			t.Errorf("%s: quota_bytes_used %d, want %d", u, used, nearQuota)
		}
	}
}

// unknownStore never learns whether its commits went through.
type unknownStore struct {
	mu    sync.Mutex
	sizes []int
	gate  chan struct{} // the first call waits for it to close
}

func (u *unknownStore) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	u.mu.Lock()
	u.sizes = append(u.sizes, len(msgs))
	first := len(u.sizes) == 1
	u.mu.Unlock()
	if first {
		<-u.gate
	}
	return fmt.Errorf("unknownstore: %w", store.ErrCommitUnknown)
}

// TestDeliverCommitUnknownKeepsBodies: while the outcome stays unknown the
// group is run again whole (never message by message, which could store
// a message twice), then fails for every member, and the blobs stay for
// the store's sweep.
func TestDeliverCommitUnknownKeepsBodies(t *testing.T) {
	st := &unknownStore{gate: make(chan struct{})}
	blobs, err := blobDir(t)
	if err != nil {
		t.Fatal(err)
	}
	// 60: the held message stays inline with its Return-Path, the others spill.
	d := NewDeliverer(DelivererOptions{Store: st, Blobs: blobs, InlineMax: 60})
	d.Start(context.Background())
	defer d.Close()
	const n = 3
	errs := make(chan error, n+1)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(st.gate) }) }
	defer release()
	go func() { errs <- deliverBody(t.Context(), d, env("hold", toBox("a@example.com")), []byte("x")) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		st.mu.Lock()
		c := len(st.sizes)
		st.mu.Unlock()
		if c == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first delivery never reached the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range n {
		go func() {
			errs <- deliverBody(t.Context(), d, env(fmt.Sprint("m", i), toBox("a@example.com")), bytes.Repeat([]byte("y"), 100+i))
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		d.mu.Lock()
		k := len(d.pending)
		d.mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries pending, want %d", k, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	for range n + 1 {
		if err := <-errs; !errors.Is(err, store.ErrCommitUnknown) {
			t.Errorf("delivery = %v, want ErrCommitUnknown", err)
		}
	}
	st.mu.Lock()
	sizes := append([]int(nil), st.sizes...)
	st.mu.Unlock()
	want := 2 * (1 + len(settleDelays))
	if len(sizes) != want {
		t.Errorf("CommitMessages calls %v, want %d", sizes, want)
	}
	for _, s := range sizes[min(len(sizes), 1+len(settleDelays)):] {
		if s != n {
			t.Errorf("CommitMessages calls %v: the group of %d was split", sizes, n)
			break
		}
	}
	k := 0
	if err := blobs.Names(context.Background(), func(string, time.Time) error { k++; return nil }); err != nil {
		t.Fatal(err)
	}
	if k != n {
		t.Fatalf("%d blobs left, want all %d (the outcome is unknown)", k, n)
	}
}

func blobDir(t *testing.T) (*blob.Dir, error) {
	return blob.New(filepath.Join(t.TempDir(), "blobs"))
}

// TestDeliverQuotaPartial: one message to three mailboxes, one of them
// over quota: the other two get it, Deliver succeeds, and the sender gets
// a DSN naming the full mailbox only. The null sender gets none.
func TestDeliverQuotaPartial(t *testing.T) {
	st := newMemStore()
	st.quota["full@example.com"] = 10
	type bounce struct {
		sender  string
		full    []string
		headers string
	}
	bounces := make(chan bounce, 2)
	h := newHarness(t, st, DelivererOptions{QuotaBounce: func(ctx context.Context, env *Envelope, full []string, headers []byte) error {
		bounces <- bounce{env.Sender, full, string(headers)}
		return nil
	}})
	body := []byte("Subject: partial\r\nMessage-ID: <p@x>\r\n\r\n" + string(bytes.Repeat([]byte("y"), 100)))
	err := h.deliver(context.Background(), env("p1", toBox("a@example.com", "full@example.com", "b@example.com")), body)
	if err != nil {
		t.Fatalf("deliver with one full mailbox: %v", err)
	}
	for _, u := range []string{"a@example.com", "b@example.com"} {
		if c := st.count(u, "p1"); c != 1 {
			t.Errorf("%s has %d copies, want 1", u, c)
		}
	}
	if c := st.count("full@example.com", "p1"); c != 0 {
		t.Errorf("the full mailbox got %d copies", c)
	}
	select {
	case b := <-bounces:
		if b.sender != "sender@remote.test" || len(b.full) != 1 || b.full[0] != "full@example.com" ||
			b.headers != rpSender+"Subject: partial\r\nMessage-ID: <p@x>\r\n" {
			t.Errorf("bounce %+v", b)
		}
	default:
		t.Fatal("no DSN for the full mailbox")
	}

	// The only mailbox full: the message is refused as before, no DSN.
	err = h.deliver(context.Background(), env("p2", toBox("full@example.com")), body)
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("deliver to a full mailbox only: %v", err)
	}
	// Null sender: delivered to the others, no DSN.
	e := env("p3", toBox("a@example.com", "full@example.com"))
	e.Sender = ""
	if err := h.deliver(context.Background(), e, body); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-bounces:
		t.Fatalf("unexpected DSN %+v", b)
	default:
	}
}
