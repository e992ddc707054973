package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

func TestPayloadRoundTrip(t *testing.T) {
	w := &wakeSet{users: []string{"B@x.example", "a@x.example", "b@x.example"},
		config: []configEvent{{TopicUser, "a@x.example"}, {TopicSieve, "b@x.example"}, {TopicUser, "a@x.example"}}}
	w.normalize()
	node, got, all := parsePayload(w.payload("n1"))
	if node != "n1" || all {
		t.Fatalf("node %q all %v", node, all)
	}
	if strings.Join(got.users, ",") != "a@x.example,b@x.example" {
		t.Errorf("users %q", got.users)
	}
	if len(got.config) != 2 || got.config[0] != (configEvent{TopicSieve, "b@x.example"}) || got.config[1] != (configEvent{TopicUser, "a@x.example"}) {
		t.Errorf("config %q", got.config)
	}

	// A change list over the NOTIFY limit becomes "everything".
	big := &wakeSet{}
	for i := range 1000 {
		big.users = append(big.users, strings.Repeat("u", 20)+string(rune('a'+i%26))+"@example.com")
	}
	p := big.payload("n2")
	if len(p) > maxPayload {
		t.Fatalf("payload of %d bytes", len(p))
	}
	if _, _, all := parsePayload(p); !all {
		t.Error("oversized change list not sent as *")
	}
}

// pgPair opens two Stores on one fresh schema: two nodes.
func pgPair(t *testing.T) (a, b *Store) {
	t.Helper()
	skipWithoutPG(t)
	o := newOpener(pgOptions)
	a, b = o.openStore(t), o.openStore(t)
	t.Cleanup(func() { a.Close(); b.Close() })
	waitRealtime(t, b)
	return a, b
}

func waitRealtime(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !s.Realtime() {
		if time.Now().After(deadline) {
			t.Fatal("LISTEN connection not up after 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// woken waits (generously) for one wake-up and returns how long it took.
func woken(t *testing.T, ch <-chan struct{}, what string, since time.Time) time.Duration {
	t.Helper()
	select {
	case <-ch:
		return time.Since(since)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no wake-up on the other node within 20 s", what)
		return 0
	}
}

func TestNotifyReachesOtherNode(t *testing.T) {
	a, b := pgPair(t)
	ctx := t.Context()
	const alice = "alice@example.com"
	if err := a.CreateDomain(ctx, &store.Domain{Name: "example.com"}); err != nil {
		t.Fatal(err)
	}
	u := store.NewUser("alice", "example.com", 0, 0)
	if err := a.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	ch, stop := b.Watch(alice)
	defer stop()
	before := b.ChangeVersion(alice)

	start := time.Now()
	err := a.CommitMessages(ctx, []*store.NewMessage{{ID: "1", Sender: "s@remote.example", Size: 5, Body: []byte("hello"),
		Targets: []store.MailboxTarget{{User: alice}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delivery on node A woke node B after %v", woken(t, ch, "delivery", start))
	if b.ChangeVersion(alice) == before {
		t.Error("node B's change counter did not move")
	}

	box, err := b.GetMailbox(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := a.StoreFlags(ctx, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("flag change: %v", woken(t, ch, "flag change", start))
	start = time.Now()
	if err := a.ExpungeMessages(ctx, alice, "INBOX", []uint32{1}); err != nil {
		t.Fatal(err)
	}
	t.Logf("expunge: %v", woken(t, ch, "expunge", start))

	// A STORE that changes nothing announces nothing.
	if _, err := a.StoreFlags(ctx, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
		t.Fatal(err)
	}
	// The node's own commit wakes it once, not again when its own
	// notification comes back.
	own, stopOwn := a.Watch(alice)
	defer stopOwn()
	if _, err := a.CreateMailbox(ctx, alice, "Work", ""); err != nil {
		t.Fatal(err)
	}
	<-own // after the commit, before CreateMailbox returned
	woken(t, ch, "create mailbox", time.Now())
	// B has received A's notification by now (above), so A has its own.
	vA := a.ChangeVersion(alice)
	if err := a.DeleteMailbox(ctx, alice, "Work"); err != nil {
		t.Fatal(err)
	}
	woken(t, ch, "delete mailbox", time.Now())
	if got := a.ChangeVersion(alice); got != vA+1 {
		t.Errorf("node A counted %d changes for its own one commit", got-vA)
	}
}

func TestNotifyConfigChanges(t *testing.T) {
	a, b := pgPair(t)
	ctx := t.Context()
	var mu sync.Mutex
	var got []string
	seen := make(chan struct{}, 16)
	stop := b.OnConfigChange(func(topic, key string) {
		mu.Lock()
		got = append(got, topic+" "+key)
		mu.Unlock()
		seen <- struct{}{}
	})
	defer stop()
	if err := a.CreateDomain(ctx, &store.Domain{Name: "example.com"}); err != nil {
		t.Fatal(err)
	}
	u := store.NewUser("Bob", "example.com", 0, 0)
	if err := a.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	e := strings.ToLower(u.Email)
	want := []string{"domain example.com", "user " + e, "user " + e, "sieve " + e, "user " + e}
	if err := a.SetPasswordHash(ctx, u.Email, "{PLAIN}new"); err != nil {
		t.Fatal(err)
	}
	if err := a.PutSieveScript(ctx, u.Email, "s", []byte("keep;"), store.SieveLimits{}); err != nil {
		t.Fatal(err)
	}
	u.Enabled = false
	if err := a.UpdateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	for range want {
		woken(t, seen, "config change", time.Now())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("node B heard %q, want %q", got, want)
	}
}

// TestNotifyReconnects kills node B's LISTEN connection on the server:
// B wakes its watchers when it is back (changes may have been missed)
// and hears A's next delivery.
func TestNotifyReconnects(t *testing.T) {
	a, b := pgPair(t)
	ctx := t.Context()
	const alice = "alice@example.com"
	if err := a.CreateDomain(ctx, &store.Domain{Name: "example.com"}); err != nil {
		t.Fatal(err)
	}
	u := store.NewUser("alice", "example.com", 0, 0)
	if err := a.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	ch, stop := b.Watch(alice)
	defer stop()

	admin, err := sql.Open("pgx", os.Getenv("PETREL_TEST_PG_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	err = admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE query = $1`, "LISTEN "+`"`+b.feed.channel+`"`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("terminated %d LISTEN connections, want both nodes' 2", n)
	}
	woken(t, ch, "reconnect", time.Now())
	waitRealtime(t, b)
	waitRealtime(t, a)
	// Drain a second reconnect wake-up, if both came in one burst.
	select {
	case <-ch:
	default:
	}
	start := time.Now()
	err = a.CommitMessages(context.WithoutCancel(ctx), []*store.NewMessage{{ID: "1", Sender: "s@remote.example", Size: 5,
		Body: []byte("hello"), Targets: []store.MailboxTarget{{User: alice}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delivery after reconnect woke node B after %v", woken(t, ch, "delivery after reconnect", start))
}

// On SQLite (one node) a committed change is announced to this Store's
// subscribers; a failed one is not.
func TestConfigChangesSQLite(t *testing.T) {
	s := newOpener(sqliteOptions).openStore(t)
	defer s.Close()
	ctx := t.Context()
	var got []string
	stop := s.OnConfigChange(func(topic, key string) { got = append(got, topic+" "+key) })
	must(t, s.CreateDomain(ctx, &store.Domain{Name: "example.com"}))
	u := store.NewUser("carol", "example.com", 0, 0)
	must(t, s.CreateUser(ctx, &u))
	must(t, s.PutSieveScript(ctx, u.Email, "s", []byte("keep;"), store.SieveLimits{}))
	if err := s.SetPasswordHash(ctx, "nobody@example.com", "x"); err == nil {
		t.Fatal("password of a missing user set")
	}
	stop()
	must(t, s.SetPasswordHash(ctx, u.Email, "{PLAIN}x"))
	if strings.Join(got, "|") != "domain example.com|user carol@example.com|sieve carol@example.com" {
		t.Errorf("subscriber heard %q", got)
	}
	if s.feed != nil || !s.Realtime() {
		t.Error("SQLite store has a feed or is not realtime")
	}
}

// A LISTEN connection that hears nothing (PgBouncer in transaction
// pooling: LISTEN succeeds, notifications go elsewhere) never makes the
// Store Realtime, so IMAP sessions keep polling; the same listener on
// the right channel does.
func TestListenProbe(t *testing.T) {
	skipWithoutPG(t)
	o := newOpener(func(tb testing.TB) Options {
		opt := pgOptions(tb)
		opt.NoListen = true
		return opt
	})
	s := o.openStore(t)
	defer s.Close()
	if s.Realtime() {
		t.Fatal("Realtime without a LISTEN connection")
	}
	dsn := o.opts[t].DSN
	deaf := &listener{dsn: dsn, f: s.feed, s: s, log: s.log, done: make(chan struct{}),
		channel: s.feed.channel + "_elsewhere", probeWait: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	deaf.stop = cancel
	go deaf.run(ctx)
	s.listen = deaf
	// Several probe rounds: never up.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if s.Realtime() {
			t.Fatal("Realtime though the LISTEN connection hears nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if deaf.probes.Load() == 0 {
		t.Fatal("no probe sent")
	}
	deaf.close()

	good := startListener(s, dsn)
	s.listen = good
	defer good.close()
	waitRealtime(t, s)
}
