package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// The WAL is copied into the database file by the checkpointer, not by
// the committing writer, and Close stops it.
func TestCheckpointerCopiesWAL(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "main.db")
	s, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if s.ckpt == nil {
		t.Fatal("no checkpointer on SQLite")
	}
	must(t, s.CreateDomain(ctx, &store.Domain{Name: "example.test"}))
	u := store.NewUser("a", "example.test", 0, 80)
	must(t, s.CreateUser(ctx, &u))
	fi, err := os.Stat(path)
	must(t, err)
	before := fi.Size()

	// About 1,500 pages: over ckptPages, under the writer's own
	// wal_autocheckpoint, so only the checkpointer copies them.
	body := bytes.Repeat([]byte("x"), 60<<10)
	for i := range 100 {
		must(t, s.CommitMessages(ctx, []*store.NewMessage{{ID: fmt.Sprint(i), Sender: "s@remote.test",
			Body: body, Targets: []store.MailboxTarget{{User: u.Email}}}}))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(path)
		must(t, err)
		if fi.Size() > before+3<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes (%d before): the WAL was not checkpointed", fi.Size(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ck := s.ckpt
	must(t, s.Close())
	select {
	case <-ck.done:
	default:
		t.Fatal("checkpointer still running after Close")
	}
	// Everything is there after a reopen.
	s2, err := Open(ctx, Options{Path: path})
	must(t, err)
	defer s2.Close()
	msgs, err := s2.ListMessages(ctx, u.Email, "INBOX")
	must(t, err)
	if len(msgs) != 100 {
		t.Errorf("%d messages after reopen, want 100", len(msgs))
	}
}

// PostgreSQL has no WAL to checkpoint from here; a nil checkpointer is a
// no-op.
func TestCheckpointerNil(t *testing.T) {
	var c *checkpointer
	c.committed(1 << 20)
	if err := c.close(); err != nil {
		t.Error(err)
	}
}

// Every SQLite connection's page cache has its bound (issue 19: they
// are outside the Go heap): the readers' and the checkpointer's below
// SQLite's default, the writer's at it.
func TestSQLiteCacheSizes(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Path: filepath.Join(dir, "main.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name string
		db   interface {
			QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
		}
		want int
	}{
		{"writer", s.write, -2000},
		{"reader", s.read, -readerCacheKiB},
		{"checkpointer", s.ckpt.db, -ckptCacheKiB},
	} {
		var got int
		if err := tc.db.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: cache_size %d, want %d", tc.name, got, tc.want)
		}
	}
}
