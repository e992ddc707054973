package sqlstore

import (
	"bytes"
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
