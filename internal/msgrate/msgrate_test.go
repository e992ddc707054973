package msgrate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for PGSchemaDSN

	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stores opens the store kinds the limiter runs on: SQLite always, and
// PostgreSQL when PETREL_TEST_PG_DSN is set (two Stores on one schema:
// two nodes).
func stores(t *testing.T) map[string][2]store.RateLimits {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	lite, err := sqlstore.Open(ctx, sqlstore.Options{Path: filepath.Join(dir, "main.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out := map[string][2]store.RateLimits{"sqlite": {lite, lite}}
	if os.Getenv("PETREL_TEST_PG_DSN") != "" {
		dsn := testutil.PGSchemaDSN(t)
		var nodes [2]store.RateLimits
		for i := range nodes {
			st, err := sqlstore.Open(ctx, sqlstore.Options{Flavor: "postgresql", DSN: dsn, BlobDir: t.TempDir(), NoListen: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			nodes[i] = st
		}
		out["postgresql"] = nodes
	}
	return out
}

// TestSharedLimit: messages counted through two nodes meet one limit, and
// users are counted apart.
func TestSharedLimit(t *testing.T) {
	for name, nodes := range stores(t) {
		t.Run(name, func(t *testing.T) {
			rate := ratelimit.Rate{Count: 5, Per: time.Hour}
			lims := []*Shared{New(nodes[0], rate, quiet), New(nodes[1], rate, quiet)}
			sent := 0
			for i := range 12 {
				l := lims[i%2]
				if !l.Test("alice@example.test") {
					continue
				}
				if !l.Hit("alice@example.test") {
					t.Fatalf("message %d: Hit over the limit after Test allowed it", i)
				}
				sent++
			}
			if sent != 5 {
				t.Fatalf("%d messages through two nodes, want 5", sent)
			}
			if !lims[1].Test("bob@example.test") {
				t.Fatal("bob limited by alice's messages")
			}
		})
	}
}

// TestSharedWindow: a message's row lives one window, then no longer
// counts.
func TestSharedWindow(t *testing.T) {
	for name, nodes := range stores(t) {
		t.Run(name, func(t *testing.T) {
			l := New(nodes[0], ratelimit.Rate{Count: 1, Per: time.Second}, quiet)
			l.Hit("carol@example.test")
			if l.Test("carol@example.test") {
				t.Fatal("second message allowed within the window")
			}
			time.Sleep(1100 * time.Millisecond)
			if !l.Test("carol@example.test") {
				t.Fatal("still limited after the window")
			}
		})
	}
}

// TestSharedConcurrentHits: concurrent hits from two nodes are each
// counted once: no lost update.
func TestSharedConcurrentHits(t *testing.T) {
	for name, nodes := range stores(t) {
		t.Run(name, func(t *testing.T) {
			rate := ratelimit.Rate{Count: 20, Per: time.Hour}
			lims := []*Shared{New(nodes[0], rate, quiet), New(nodes[1], rate, quiet)}
			var within atomic.Int64
			var wg sync.WaitGroup
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						if lims[g%2].Hit("dave@example.test") {
							within.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			// Within is what each hit saw; on PostgreSQL two hits at the
			// edge may both see themselves inside it.
			if got := within.Load(); got < 20 || got > 25 {
				t.Fatalf("%d of 30 concurrent hits within a limit of 20", got)
			}
			n, err := nodes[0].RateCount(context.Background(), key("dave@example.test"))
			if err != nil || n != 30 {
				t.Fatalf("rows %d (%v), want 30: every message counted", n, err)
			}
		})
	}
}

// failing is a store that cannot answer.
type failing struct{ store.RateLimits }

var errDown = errors.New("store down")

func (failing) RateCount(context.Context, string) (int, error) { return 0, errDown }
func (failing) RateHit(context.Context, string, string, time.Duration) (bool, int, error) {
	return false, 0, errDown
}
func (failing) PruneRates(context.Context) (int64, error) { return 0, errDown }

// TestStoreDown: an unreachable store neither blocks nor panics; the
// message goes on (its delivery meets the store's own error) and the
// reason is logged.
func TestStoreDown(t *testing.T) {
	var logs testutil.LogBuffer
	l := New(failing{}, ratelimit.Rate{Count: 1, Per: time.Hour}, slog.New(slog.NewTextHandler(&logs, nil)))
	if !l.Test("erin@example.test") || !l.Hit("erin@example.test") {
		t.Fatal("store error refused the message")
	}
	if got := logs.String(); !strings.Contains(got, "store unreachable") || !strings.Contains(got, "erin@example.test") {
		t.Fatalf("no log line naming the cause and the user:\n%s", got)
	}
}
