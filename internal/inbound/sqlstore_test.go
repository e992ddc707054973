package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

func openSQLStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{
		Flavor:  "sqlite",
		Path:    filepath.Join(dir, "main.db"),
		BlobDir: filepath.Join(dir, "blobs"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (fx fixture) load(t testing.TB, st store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, d := range fx.domains {
		if err := st.CreateDomain(ctx, &store.Domain{Name: d, MaxUsers: -1, MaxAliases: -1}); err != nil {
			t.Fatalf("domain %s: %v", d, err)
		}
	}
	for _, a := range fx.alts {
		if err := st.CreateAlternative(ctx, &store.Alternative{Name: a[0], DomainName: a[1]}); err != nil {
			t.Fatalf("alternative %s: %v", a[0], err)
		}
	}
	for _, r := range fx.relays {
		if err := st.CreateRelay(ctx, &store.Relay{Name: r}); err != nil {
			t.Fatalf("relay %s: %v", r, err)
		}
	}
	for _, u := range fx.users {
		u := u
		if err := st.CreateUser(ctx, &u); err != nil {
			t.Fatalf("user %s: %v", u.Email, err)
		}
	}
	for _, a := range fx.aliases {
		a := a
		if err := st.CreateAlias(ctx, &a); err != nil {
			t.Fatalf("alias %s: %v", a.Email, err)
		}
	}
}

// TestRouterSQLStore runs the router tables against the real store, so the
// fake's behaviour (ErrNotFound, GetAlias returning wildcards, wildcard
// listing) cannot drift from sqlstore's.
func TestRouterSQLStore(t *testing.T) {
	st := openSQLStore(t)
	routerFixture().load(t, st)
	t.Run("Resolve", func(t *testing.T) { runResolveCases(t, st) })
	t.Run("SenderAllowed", func(t *testing.T) {
		runSenderCases(t, st, func(email string) *store.User {
			u, err := st.GetUser(context.Background(), email)
			if err != nil {
				t.Fatalf("user %s: %v", email, err)
			}
			return u
		})
	})
}

// countingStore counts CommitMessages calls.
type countingStore struct {
	*sqlstore.Store
	calls atomic.Int64
	msgs  atomic.Int64
}

func (c *countingStore) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	c.calls.Add(1)
	c.msgs.Add(int64(len(msgs)))
	return c.Store.CommitMessages(ctx, msgs)
}

func addUsers(t testing.TB, st store.Store, domain string, quota int64, locals ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.GetDomain(ctx, domain); errors.Is(err, store.ErrNotFound) {
		if err := st.CreateDomain(ctx, &store.Domain{Name: domain, MaxUsers: -1, MaxAliases: -1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range locals {
		u := store.NewUser(l, domain, quota, 80)
		if err := st.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
}

// bodies returns the bodies in user's INBOX.
func bodies(t testing.TB, st *sqlstore.Store, user string) []string {
	t.Helper()
	ctx := context.Background()
	infos, err := st.ListMessages(ctx, user, "INBOX")
	if errors.Is(err, store.ErrNotFound) {
		return nil // no delivery has created the mailbox yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mi := range infos {
		rc, err := st.OpenBody(ctx, mi.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != mi.Size {
			t.Fatalf("%s: body of %d bytes, Size %d", user, len(b), mi.Size)
		}
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

func newSQLDeliverer(t testing.TB, st MessageStore, sq *sqlstore.Store) *Deliverer {
	d := NewDeliverer(DelivererOptions{Store: st, Blobs: sq.Blobs(), InlineMax: sq.InlineMax(), Logger: slog.New(slog.DiscardHandler)})
	d.Start(context.Background())
	t.Cleanup(func() { d.Close() })
	return d
}

func deliverBody(ctx context.Context, d *Deliverer, e *Envelope, body []byte) error {
	sp, err := d.NewSpool()
	if err != nil {
		return err
	}
	defer sp.Abort()
	if _, err := sp.Write(body); err != nil {
		return err
	}
	return d.Deliver(ctx, e, sp)
}

func TestDeliverSQLStoreConcurrent(t *testing.T) {
	sq := openSQLStore(t)
	addUsers(t, sq, "example.com", 0, "u0", "u1", "u2", "u3")
	cs := &countingStore{Store: sq}
	d := newSQLDeliverer(t, cs, sq)

	const n = 120
	want := map[string][]string{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		a := fmt.Sprintf("u%d@example.com", i%4)
		b := fmt.Sprintf("u%d@example.com", (i+1)%4)
		body := fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)
		want[a] = append(want[a], rpSender+body)
		routes := []Route{toBox(a)}
		if i%3 == 0 {
			// two routes to the same mailbox and one more: one copy each
			routes = append(routes, toBox(a), toBox(b))
			want[b] = append(want[b], rpSender+body)
		}
		if i%5 == 0 {
			routes = append(routes, Route{Kind: RouteForeign, Rcpt: "x@remote.test", Remote: []string{"x@remote.test"}})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- deliverBody(context.Background(), d, env(fmt.Sprintf("m%d", i), routes...), []byte(body))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for user, w := range want {
		sort.Strings(w)
		got := bodies(t, sq, user)
		if strings.Join(got, "|") != strings.Join(w, "|") {
			t.Fatalf("%s: %d messages, want %d (each exactly once)", user, len(got), len(w))
		}
	}
	q, err := sq.ListQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != (n+4)/5 {
		t.Fatalf("queue holds %d items, want %d", len(q), (n+4)/5)
	}
	calls := cs.calls.Load()
	if calls >= n {
		t.Fatalf("%d CommitMessages calls for %d messages: no group commit", calls, n)
	}
	t.Logf("%d messages in %d group commits", n, calls)
}

func TestDeliverSQLStoreLargeBody(t *testing.T) {
	sq := openSQLStore(t)
	addUsers(t, sq, "example.com", 0, "big", "other")
	d := newSQLDeliverer(t, sq, sq)
	body := make([]byte, 3<<20+17)
	for i := range body {
		body[i] = byte(i*31 + i>>8)
	}
	sp, _ := d.NewSpool()
	for off := 0; off < len(body); off += 8191 {
		sp.Write(body[off:min(off+8191, len(body))])
	}
	if !sp.Spilled() {
		t.Fatal("a 3 MiB body should spill to a blob")
	}
	if err := d.Deliver(context.Background(), env("big", toBox("big@example.com", "other@example.com")), sp); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"big@example.com", "other@example.com"} {
		got := bodies(t, sq, u)
		if len(got) != 1 || !bytes.Equal([]byte(got[0]), append([]byte(rpSender), body...)) {
			t.Fatalf("%s: body not read back byte-identical", u)
		}
	}
	infos, _ := sq.ListMessages(context.Background(), "big@example.com", "INBOX")
	infos2, _ := sq.ListMessages(context.Background(), "other@example.com", "INBOX")
	if infos[0].BodyID != infos2[0].BodyID {
		t.Errorf("two recipients got two bodies (%d, %d); want one shared body", infos[0].BodyID, infos2[0].BodyID)
	}
}

func TestDeliverSQLStoreQuota(t *testing.T) {
	sq := openSQLStore(t)
	addUsers(t, sq, "example.com", 0, "a", "b")
	addUsers(t, sq, "example.com", 1000, "small")
	d := newSQLDeliverer(t, sq, sq)
	var wg sync.WaitGroup
	res := make([]error, 8)
	for i := range res {
		rcpt := "a@example.com"
		if i == 5 {
			rcpt = "small@example.com"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = deliverBody(context.Background(), d, env(fmt.Sprintf("q%d", i), toBox(rcpt, "b@example.com")), bytes.Repeat([]byte{'q', byte('0' + i)}, 1000))
		}()
	}
	wg.Wait()
	for i, err := range res {
		// q5: small is full, b still gets it (and the sender a DSN).
		if err != nil {
			t.Fatalf("q%d: %v", i, err)
		}
	}
	if n := len(bodies(t, sq, "a@example.com")); n != 7 {
		t.Errorf("a has %d messages, want 7", n)
	}
	if n := len(bodies(t, sq, "b@example.com")); n != 8 {
		t.Errorf("b has %d messages, want 8 (the full mailbox does not cost b the message)", n)
	}
	if n := len(bodies(t, sq, "small@example.com")); n != 0 {
		t.Errorf("small has %d messages, want 0", n)
	}
}

// BenchmarkDeliverParallel measures durable deliveries per second: 4 KiB
// messages to one of 8 mailboxes from many concurrent sessions, each
// waiting for its commit (SQLite, fsync on).
func BenchmarkDeliverParallel(b *testing.B) {
	sq := openSQLStore(b)
	var users []string
	for i := 0; i < 8; i++ {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	addUsers(b, sq, "example.com", 0, users...)
	cs := &countingStore{Store: sq}
	d := newSQLDeliverer(b, cs, sq)
	body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	var seq atomic.Int64
	b.SetParallelism(16) // SMTP sessions per core
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			e := env(fmt.Sprintf("b%d", i), toBox(fmt.Sprintf("u%d@example.com", i%8)))
			if err := deliverBody(context.Background(), d, e, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "msgs/s")
	}
	if c := cs.calls.Load(); c > 0 {
		b.ReportMetric(float64(cs.msgs.Load())/float64(c), "msgs/commit")
	}
}
