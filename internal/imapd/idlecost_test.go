package imapd

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// notRealtime is a store that cannot tell about other nodes' changes
// (PostgreSQL with its LISTEN connection down): IDLE must poll.
type notRealtime struct{ *sqlstore.Store }

func (notRealtime) Realtime() bool { return false }

// queriesStay fails when st runs a statement during quiet, which spans
// many PollIntervals (a negative check: nothing is waited for).
func queriesStay(t *testing.T, st *sqlstore.Store, quiet time.Duration) {
	t.Helper()
	before := st.Queries()
	time.Sleep(quiet)
	if n := st.Queries() - before; n != 0 {
		t.Fatalf("%d store statements during %v of IDLE with nothing changing", n, quiet)
	}
}

// idle enters IDLE on a fresh session of alice with INBOX selected.
func idleSession(ts *testServer) *client {
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	if r := c.read(); r != "+ idling" {
		ts.t.Fatalf("IDLE: %q", r)
	}
	return c
}

// Issue 16: a session in IDLE on a realtime store (SQLite, one node)
// asks the store nothing until something changes, however short
// PollInterval is; a delivery still shows at once.
func TestIdleCostsNoQueries(t *testing.T) {
	const poll = 10 * time.Millisecond
	ts := startServer(t, func(_ *testServer, o *Options) { o.PollInterval = poll })
	deliver(t, ts.st, alice, "INBOX", testMessage("one"))
	c := idleSession(ts)
	queriesStay(t, ts.st, 30*poll)
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	c.waitFor("* 2 EXISTS", updateWait)
	queriesStay(t, ts.st, 30*poll)
	c.send("DONE\r\n")
	c.collect("i1")
}

// The same session on a store that is not realtime polls: the counter
// that shows the idle session's silence above does see polls.
func TestIdlePollsWhenNotRealtime(t *testing.T) {
	const poll = 10 * time.Millisecond
	ts := startServer(t, func(ts *testServer, o *Options) {
		o.PollInterval = poll
		o.Store = notRealtime{ts.st}
	})
	c := idleSession(ts)
	before := ts.st.Queries()
	deadline := time.Now().Add(20 * time.Second)
	for ts.st.Queries()-before < 3 {
		if time.Now().After(deadline) {
			t.Fatal("IDLE on a store that is not realtime never polled")
		}
		time.Sleep(poll)
	}
	c.send("DONE\r\n")
	c.collect("i1")
}

// ---- PostgreSQL: two nodes ----

// pgNodes opens two stores (nodes A and B) on a fresh schema of
// PETREL_TEST_PG_DSN, with alice and bob; it returns the schema too.
func pgNodes(t *testing.T) (a, b *sqlstore.Store, schema string) {
	t.Helper()
	base := os.Getenv("PETREL_TEST_PG_DSN")
	if base == "" {
		t.Skip("PETREL_TEST_PG_DSN not set (start a server with internal/store/sqlstore/testdata/pg-start.sh)")
	}
	var r [6]byte
	rand.Read(r[:])
	schema = "t_" + hex.EncodeToString(r[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	blobs := filepath.Join(t.TempDir(), "blobs")
	open := func() *sqlstore.Store {
		st, err := sqlstore.Open(t.Context(), sqlstore.Options{Flavor: "postgresql", DSN: u.String(), BlobDir: blobs, MaxOpenConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b = open(), open()
	ctx := t.Context()
	if err := a.CreateDomain(ctx, &store.Domain{Name: testDomain, MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"alice", "bob"} {
		u := store.NewUser(l, testDomain, 0, 80)
		if err := a.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
	return a, b, schema
}

// waitRealtime waits until st's LISTEN connection is up (want) or down.
func waitRealtime(t *testing.T, st *sqlstore.Store, want bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for st.Realtime() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Realtime not %v after 20 s", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Issue 16 on PostgreSQL: IDLE on node B hears node A's delivery through
// LISTEN/NOTIFY and asks the store nothing while nothing changes. While
// B's LISTEN connection keeps being killed (pg_terminate_backend) the
// session falls back to polling and still sees A's delivery; once the
// connection is back it stops polling and hears A's next delivery.
func TestIdleListenFallbackPG(t *testing.T) {
	a, b, schema := pgNodes(t)
	const poll = 20 * time.Millisecond
	ts := startServer(t, func(_ *testServer, o *Options) {
		o.PollInterval = poll
		o.Store = b
	})
	ts.st = b
	waitRealtime(t, b, true)
	c := idleSession(ts)
	queriesStay(t, b, 30*poll)
	start := time.Now()
	deliver(t, a, alice, "INBOX", testMessage("one"))
	c.waitFor("* 1 EXISTS", updateWait)
	t.Logf("A's delivery reached IDLE on B after %v", time.Since(start))
	queriesStay(t, b, 30*poll)

	// Kill every LISTEN connection on this schema's channel as soon as
	// it shows, until stop.
	admin, err := sql.Open("pgx", os.Getenv("PETREL_TEST_PG_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			admin.ExecContext(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE query = $1 AND pid <> pg_backend_pid()`, `LISTEN "petrel_`+schema+`"`)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	waitRealtime(t, b, false)
	// Down: the session polls (the counter moves by itself)...
	before := b.Queries()
	deadline := time.Now().Add(20 * time.Second)
	for b.Queries()-before < 3 {
		if time.Now().After(deadline) {
			t.Fatal("IDLE did not poll while LISTEN was down")
		}
		time.Sleep(poll)
	}
	// ...and sees A's delivery.
	deliver(t, a, alice, "INBOX", testMessage("two"))
	c.waitFor("* 2 EXISTS", updateWait)

	close(stop)
	wg.Wait()
	waitRealtime(t, b, true)
	// Back up: one resync, then silence again (a polling session is
	// never quiet for 30 polls), and A's next delivery.
	deadline = time.Now().Add(20 * time.Second)
	for {
		before := b.Queries()
		time.Sleep(30 * poll)
		if b.Queries() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("IDLE still polls after LISTEN is back")
		}
	}
	start = time.Now()
	deliver(t, a, alice, "INBOX", testMessage("three"))
	c.waitFor("* 3 EXISTS", updateWait)
	t.Logf("after reconnect, A's delivery reached IDLE on B after %v", time.Since(start))
	c.send("DONE\r\n")
	c.collect("i1")
}
