package sqlstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// walSyncer makes SQLite commits durable outside the writer. The writer
// connection runs with synchronous=NORMAL, so COMMIT appends its frames
// to the WAL file without an fsync and frees the single writer at once;
// a transaction that must survive a power failure (new mail, accounts,
// the queue: everything but withTxRelaxed) then waits here for an fsync
// of the WAL file that started after its COMMIT returned. That is the
// same fsync synchronous=FULL makes inside COMMIT, but the next writer
// no longer waits for it, and commits that finish while one fsync runs
// share the next one (group commit at the disk, as PostgreSQL's WAL
// writer does). SQLite still syncs the WAL before each checkpoint, the
// main file after it, and the WAL header when the file is reused, so a
// commit that was checkpointed away before its fsync is durable in the
// main file.
//
// A failed fsync may have dropped the dirty pages it was flushing (Linux
// marks them clean), so a later fsync that succeeds proves nothing: the
// first failure sticks, and the store refuses every write from then on
// (as PostgreSQL panics) until Petrel is restarted.
type walSyncer struct {
	path string // the -wal file beside the database
	log  *slog.Logger
	// syncFile flushes a file: datasync outside tests.
	syncFile func(*os.File) error

	// requested counts the calls of sync. A call's ticket is taken after
	// its COMMIT, so an fsync that starts once the counter has reached
	// the ticket covers that COMMIT.
	requested atomic.Uint64
	failed    atomic.Bool   // err is set (readable without mu)
	syncs     atomic.Uint64 // fsyncs made (tests and benchmarks)

	mu      sync.Mutex // one fsync at a time; callers queue here
	covered uint64     // every ticket up to this was covered by an fsync
	f       *os.File   // the WAL file as last opened
	err     error      // the sticky failure
}

func newWALSyncer(dbPath string, log *slog.Logger) *walSyncer {
	return &walSyncer{path: dbPath + "-wal", log: log, syncFile: datasync}
}

// sync returns once an fsync of the WAL that began after the call has
// finished, or the sticky error. A nil syncer (PostgreSQL) has nothing
// to do.
func (w *walSyncer) sync() error {
	if w == nil {
		return nil
	}
	ticket := w.requested.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.covered >= ticket {
		return nil // an fsync that started after our COMMIT has finished
	}
	upto := w.requested.Load()
	if err := w.flush(); err != nil {
		w.err = fmt.Errorf("sqlstore: fsync of the WAL file failed, so committed changes may not be on disk; writes are refused until Petrel restarts: %w", err)
		w.failed.Store(true)
		w.log.Error("sqlstore: fsync of the WAL file failed; every write is refused until Petrel restarts", "file", w.path, "err", err)
		return w.err
	}
	w.syncs.Add(1)
	w.covered = upto
	return nil
}

// broken returns the sticky failure, if any, without waiting for an fsync
// in progress.
func (w *walSyncer) broken() error {
	if w == nil || !w.failed.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// flush fsyncs the WAL file, opening it again when SQLite has replaced it
// since (a WAL is deleted when the last connection closes, after a
// checkpoint that synced the main file). No WAL at all means every commit
// is in the main file already.
func (w *walSyncer) flush() error {
	fi, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if w.f != nil {
		if cur, err := w.f.Stat(); err != nil || !os.SameFile(cur, fi) {
			w.f.Close()
			w.f = nil
		}
	}
	if w.f == nil {
		f, err := os.Open(w.path)
		if err != nil {
			return err
		}
		// A WAL file SQLite has just created needs its directory entry on
		// disk as well (SQLite's FULL commit syncs the directory then).
		if err := w.syncDir(); err != nil {
			f.Close()
			return err
		}
		w.f = f
	}
	return w.syncFile(w.f)
}

func (w *walSyncer) syncDir() error {
	d, err := os.Open(filepath.Dir(w.path))
	if err != nil {
		return err
	}
	defer d.Close()
	return w.syncFile(d)
}

// setSyncFile replaces the flush function (tests: a slow or failing disk).
func (w *walSyncer) setSyncFile(fn func(*os.File) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncFile = fn
}

// stats returns the number of fsyncs made and of calls made, without
// waiting for an fsync in progress.
func (w *walSyncer) stats() (syncs, calls uint64) {
	if w == nil {
		return 0, 0
	}
	return w.syncs.Load(), w.requested.Load()
}

func (w *walSyncer) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
