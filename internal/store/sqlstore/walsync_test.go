package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// blockingDisk is a syncFile whose fsyncs wait until released, so a test
// can see what runs while one is in progress.
type blockingDisk struct {
	started chan struct{} // one value per fsync begun
	release chan struct{} // one value lets one fsync finish
}

func newBlockingDisk() *blockingDisk {
	return &blockingDisk{started: make(chan struct{}, 64), release: make(chan struct{}, 64)}
}

func (d *blockingDisk) sync(f *os.File) error {
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil // the directory sync of a newly opened WAL
	}
	d.started <- struct{}{}
	<-d.release
	return nil
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestWALFsyncLeavesWriterFree: an APPEND waiting for its WAL fsync does
// not hold the single writer: a flag change commits meanwhile, and the
// APPEND returns only once the fsync has finished.
func TestWALFsyncLeavesWriterFree(t *testing.T) {
	s := imapFixture(t, newOpener(sqliteOptions), 0)
	ctx := t.Context()
	inbox := box(t, s, "INBOX")
	uid := add(t, s, "INBOX", []byte("Subject: a\r\n\r\nA\r\n"))
	disk := newBlockingDisk()
	s.wal.setSyncFile(disk.sync)

	appended := make(chan error, 1)
	go func() {
		_, _, err := s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "INBOX", Body: []byte("Subject: b\r\n\r\nB\r\n")})
		appended <- err
	}()
	waitFor(t, disk.started, "the APPEND's fsync")
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.StoreFlags(sctx, &store.FlagUpdate{MailboxID: inbox.ID, UIDs: []uint32{uid}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
		t.Fatalf("STORE while an fsync is in progress: %v (the writer is held during the fsync?)", err)
	}
	select {
	case err := <-appended:
		t.Fatalf("APPEND returned (%v) before its fsync finished", err)
	default:
	}
	disk.release <- struct{}{}
	select {
	case err := <-appended:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("APPEND did not return after its fsync")
	}
}

// TestWALFsyncCoversOnlyEarlierCommits: a commit that finishes while an
// fsync is already running waits for the next one; commits waiting
// together share it.
func TestWALFsyncCoversOnlyEarlierCommits(t *testing.T) {
	s := imapFixture(t, newOpener(sqliteOptions), 0)
	ctx := t.Context()
	disk := newBlockingDisk()
	s.wal.setSyncFile(disk.sync)
	syncs0, calls0 := s.wal.stats()

	var wg sync.WaitGroup
	appendOne := func() {
		defer wg.Done()
		if _, _, err := s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "INBOX", Body: []byte("Subject: x\r\n\r\nX\r\n")}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go appendOne()
	waitFor(t, disk.started, "the first fsync")
	// Five more commits finish while the first fsync runs: it cannot
	// cover them.
	wg.Add(5)
	for range 5 {
		go appendOne()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, calls := s.wal.stats()
		if calls-calls0 >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 6 sync calls after 10 s", calls-calls0)
		}
		time.Sleep(time.Millisecond)
	}
	disk.release <- struct{}{} // the first fsync ends
	waitFor(t, disk.started, "a second fsync for the commits made during the first")
	disk.release <- struct{}{}
	wg.Wait()
	if syncs, _ := s.wal.stats(); syncs-syncs0 != 2 {
		t.Fatalf("%d fsyncs for 6 APPENDs (one during the other's fsync), want 2", syncs-syncs0)
	}
}

// TestWALFsyncFailureSticks: after a failed fsync the APPEND's outcome
// is unknown (its blob must stay) and every later write is refused, even
// if the disk would now answer: Linux may have dropped the pages it
// failed to write.
func TestWALFsyncFailureSticks(t *testing.T) {
	s := imapFixture(t, newOpener(sqliteOptions), 0)
	ctx := t.Context()
	inbox := box(t, s, "INBOX")
	s.wal.setSyncFile(func(*os.File) error { return syscall.EIO })
	_, _, err := s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "INBOX", Body: []byte("Subject: a\r\n\r\nA\r\n")})
	if !errors.Is(err, store.ErrCommitUnknown) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("APPEND with a failing fsync: %v, want ErrCommitUnknown wrapping EIO", err)
	}
	s.wal.setSyncFile((*os.File).Sync)
	if _, _, err := s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "INBOX", Body: []byte("Subject: b\r\n\r\nB\r\n")}); err == nil {
		t.Fatal("APPEND accepted after a failed fsync")
	}
	if _, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: inbox.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err == nil {
		t.Fatal("STORE accepted after a failed fsync")
	}
	msgs, err := s.ListMessagesByID(ctx, inbox.ID)
	must(t, err)
	if len(msgs) != 1 {
		t.Fatalf("INBOX holds %d messages, want 1 (the first APPEND committed, the second was refused)", len(msgs))
	}
}

// TestWALSyncerFollowsReplacedFile: when the WAL file is deleted and
// made again (the last connection closed, another process opened the
// database), the next fsync opens the new file instead of flushing the
// old one.
func TestWALSyncerFollowsReplacedFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "main.db")
	w := newWALSyncer(db, nil)
	defer w.close()
	must(t, w.sync()) // no WAL yet: nothing to flush
	must(t, os.WriteFile(db+"-wal", []byte("one"), 0o600))
	must(t, w.sync())
	first, err := w.f.Stat()
	must(t, err)
	must(t, os.Remove(db+"-wal"))
	must(t, os.WriteFile(db+"-wal", []byte("two"), 0o600))
	must(t, w.sync())
	cur, err := os.Stat(db + "-wal")
	must(t, err)
	held, err := w.f.Stat()
	must(t, err)
	if os.SameFile(held, first) || !os.SameFile(held, cur) {
		t.Fatal("the syncer still holds the deleted WAL file")
	}
	if syncs, calls := w.stats(); syncs != 3 || calls != 3 {
		t.Fatalf("stats: %d flushes of %d calls, want 3 of 3 (each call came after the last flush)", syncs, calls)
	}
}
