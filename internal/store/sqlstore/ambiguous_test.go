package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/testutil/pgproxy"
)

// proxied opens two stores on one fresh PostgreSQL schema: s talks
// through a pgproxy.Proxy (returned), direct does not and sees what the
// server really holds.
func proxied(t *testing.T) (s, direct *Store, p *pgproxy.Proxy) {
	t.Helper()
	skipWithoutPG(t)
	opt := pgOptions(t)
	target, err := pgproxy.Target(opt.DSN)
	must(t, err)
	p, err = pgproxy.Start(target)
	must(t, err)
	t.Cleanup(func() { p.Close() })
	direct, err = Open(t.Context(), opt)
	must(t, err)
	t.Cleanup(func() { direct.Close() })
	popt := opt
	popt.DSN, err = p.DSN(opt.DSN)
	must(t, err)
	s, err = Open(t.Context(), popt)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s, direct, p
}

// ageBlobs makes every blob file look older than OrphanAge.
func ageBlobs(t *testing.T, s *Store) {
	t.Helper()
	old := time.Now().Add(-2 * OrphanAge)
	err := filepath.WalkDir(s.Blobs().Path(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(path, old, old)
	})
	must(t, err)
}

func readBody(t *testing.T, s *Store, id int64) []byte {
	t.Helper()
	r, err := s.OpenBody(t.Context(), id)
	if err != nil {
		t.Fatalf("open body %d: %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	must(t, err)
	return b
}

// checkStoredOnce asserts that user's INBOX holds exactly one message,
// with body want, and that the quota counts it once.
func checkStoredOnce(t *testing.T, s *Store, user string, want []byte) {
	t.Helper()
	l, err := s.ListMessages(t.Context(), user, "INBOX")
	must(t, err)
	if len(l) != 1 {
		t.Fatalf("%s: %d messages in INBOX, want 1", user, len(l))
	}
	if got := readBody(t, s, l[0].BodyID); !bytes.Equal(got, want) {
		t.Fatalf("%s: body of %d bytes, want %d", user, len(got), len(want))
	}
	if used := usedQuota(t, s, user); used != int64(len(want)) {
		t.Fatalf("%s: quota_bytes_used %d, want %d", user, used, len(want))
	}
}

// TestAppendCommitReplyLost: the server commits an APPEND but the reply is
// lost. AppendMessage runs again with its key, learns that the message is
// stored and answers with its UID: stored once, body readable. When every
// reply is lost it reports ErrCommitUnknown and keeps the blob, which the
// garbage sweep must leave alone (a body row names it), while it removes
// an unreferenced old blob.
func TestAppendCommitReplyLost(t *testing.T) {
	s, direct, p := proxied(t)
	ctx := t.Context()
	expungeFixture(t, direct, "alice", "bob")
	must(t, direct.EnsureMailboxes(ctx, imapUser, store.DefaultMailboxes))
	body := bytes.Repeat([]byte("appended line\r\n"), 600) // over InlineMax: a blob

	p.DropNextCommits(1)
	na := &store.NewAppend{User: imapUser, Mailbox: "INBOX", Body: body}
	uid, uv, err := s.AppendMessage(ctx, na)
	if _, dropped, _ := p.Stats(); dropped != 1 {
		t.Fatalf("proxy dropped %d COMMIT replies, want 1", dropped)
	}
	checkStoredOnce(t, direct, imapUser, body)
	if err != nil {
		t.Fatalf("append with one lost COMMIT reply = %v, want it settled by the re-run", err)
	}
	if mb := box(t, direct, "INBOX"); uid != 1 || uv != mb.UIDValidity {
		t.Fatalf("APPENDUID %d %d, want %d 1", uv, uid, mb.UIDValidity)
	}
	// The re-run also finds the stored body (for the spam learning).
	if l, err := direct.ListMessages(ctx, imapUser, "INBOX"); err != nil || len(l) != 1 || na.BodyID != l[0].BodyID {
		t.Fatalf("BodyID after the re-run = %d, stored %+v %v", na.BodyID, l, err)
	}

	// Every reply lost: the outcome stays unknown.
	const bob = "bob@example.test"
	must(t, direct.EnsureMailboxes(ctx, bob, store.DefaultMailboxes))
	p.DropNextCommits(100)
	_, _, err = s.AppendMessage(ctx, &store.NewAppend{User: bob, Mailbox: "INBOX", Body: body})
	p.DropNextCommits(0)
	checkStoredOnce(t, direct, bob, body)
	if !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("append with every COMMIT reply lost = %v, want ErrCommitUnknown", err)
	}
	orphan := writeBlob(t, direct, []byte("never committed"))
	ageBlobs(t, direct)
	must(t, direct.CollectGarbage(ctx))
	checkStoredOnce(t, direct, imapUser, body)
	checkStoredOnce(t, direct, bob, body)
	if _, err := direct.Blobs().Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unreferenced old blob survived the sweep: %v", err)
	}
}

func writeBlob(t *testing.T, s *Store, b []byte) string {
	t.Helper()
	w, err := s.Blobs().Create()
	must(t, err)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	n, err := w.Commit()
	must(t, err)
	return n
}

// TestCommitMessagesReplyLost: the same for a delivery group whose body
// CommitMessages spilled to a blob itself.
func TestCommitMessagesReplyLost(t *testing.T) {
	s, direct, p := proxied(t)
	ctx := t.Context()
	expungeFixture(t, direct, "alice", "bob")
	body := bytes.Repeat([]byte("delivered line\r\n"), 600)
	m := &store.NewMessage{ID: "lost-reply", Sender: "s@remote.test", Body: body,
		Targets: []store.MailboxTarget{{User: "alice@example.test"}, {User: "bob@example.test"}}}

	p.DropNextCommits(1)
	err := s.CommitMessages(ctx, []*store.NewMessage{m})
	ageBlobs(t, direct)
	must(t, direct.CollectGarbage(ctx))
	checkStoredOnce(t, direct, "alice@example.test", body)
	checkStoredOnce(t, direct, "bob@example.test", body)
	if !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("commit with a lost COMMIT reply = %v, want ErrCommitUnknown", err)
	}

	// The store keeps working through the proxy afterwards.
	deliver(t, s, "after", []byte("small"), "alice")
}

// logBuf is a slog handler target safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCommitMessagesRetriesDeadlock builds a lock cycle on PostgreSQL: a
// transaction holds bob's user row while CommitMessages, having locked
// alice's, waits for it; then the transaction asks for alice's. The
// server aborts CommitMessages (it waited first, so its deadlock check
// runs first), which must run the group again and succeed.
func TestCommitMessagesRetriesDeadlock(t *testing.T) {
	skipWithoutPG(t)
	opt := pgOptions(t)
	logs := &logBuf{}
	opt.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(t.Context(), opt)
	must(t, err)
	defer s.Close()
	ctx := t.Context()
	expungeFixture(t, s, "alice", "bob")

	db, err := sql.Open("pgx", opt.DSN)
	must(t, err)
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	must(t, err)
	defer tx.Rollback()
	// This side must never be the one the server aborts.
	_, err = tx.ExecContext(ctx, `SET LOCAL deadlock_timeout = '30s'`)
	must(t, err)
	_, err = tx.ExecContext(ctx, `SELECT email FROM "user" WHERE email = 'bob@example.test' FOR UPDATE`)
	must(t, err)

	done := make(chan error, 1)
	go func() {
		done <- s.CommitMessages(ctx, []*store.NewMessage{{ID: "cycle", Sender: "s@remote.test", Body: []byte("hello"),
			Targets: []store.MailboxTarget{{User: "alice@example.test"}, {User: "bob@example.test"}}}})
	}()
	waitLockWaiters(t, db, 1)
	// Completes the cycle; returns once the server has aborted the other
	// side and released alice's row.
	_, err = tx.ExecContext(ctx, `SELECT email FROM "user" WHERE email = 'alice@example.test' FOR UPDATE`)
	must(t, err)
	must(t, tx.Rollback())

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("CommitMessages after a deadlock = %v, want it retried", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("CommitMessages did not return")
	}
	if !strings.Contains(logs.String(), "40P01") {
		t.Fatalf("no deadlock happened (log: %s)", logs.String())
	}
	checkStoredOnce(t, s, "alice@example.test", []byte("hello"))
	checkStoredOnce(t, s, "bob@example.test", []byte("hello"))
}

// waitLockWaiters waits until n sessions of this database wait for a lock.
func waitLockWaiters(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		var got int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got)
		must(t, err)
		if got >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d sessions wait for a lock, want %d", got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestExpungeDeletedTwoStores: two stores (two nodes) on one database. A
// \Deleted cleared by one after the other looked keeps the message: the
// expunge checks the flag inside its own transaction (RFC 4315 2.1).
func TestExpungeDeletedTwoStores(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s1 := imapFixture(t, o, 0)
		s2 := o.openStore(t)
		defer s2.Close()
		ctx := t.Context()
		for _, b := range []string{"one", "two", "three", "four"} {
			add(t, s1, "INBOX", []byte(b))
		}
		id := box(t, s1, "INBOX").ID
		_, err := s1.StoreFlags(ctx, &store.FlagUpdate{MailboxID: id, UIDs: []uint32{1, 2, 3}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}})
		must(t, err)
		_, err = s2.StoreFlags(ctx, &store.FlagUpdate{MailboxID: id, UIDs: []uint32{2}, Op: store.FlagsRemove, Flags: []string{`\Deleted`}})
		must(t, err)
		gone, err := s1.ExpungeDeleted(ctx, id, []uint32{1, 2, 3, 4})
		must(t, err)
		if len(gone) != 2 || gone[0] != 1 || gone[1] != 3 {
			t.Fatalf("expunged %v, want [1 3]", gone)
		}
		if got := uidsOf(listMsgs(t, s2, id)); len(got) != 2 || got[0] != 2 || got[1] != 4 {
			t.Fatalf("left %v, want [2 4]", got)
		}
	})
}
