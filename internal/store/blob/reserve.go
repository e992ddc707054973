package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ReserveRecheck is how long a Reserve trusts one free-space reading
// while the disk is far from the floor, so that the check on every message
// costs an atomic load, not a statfs.
const ReserveRecheck = time.Second

// reserveNear is how far above the floor (besides the floor itself again)
// the free space must be for a reading to be trusted for ReserveRecheck:
// nearer, every check reads the filesystem (a statfs costs about a
// microsecond), so that a burst of mail cannot run through the reserve
// within one interval.
const reserveNear = 128 << 20

// Reserve is a free-space floor on the filesystem of a directory, like
// Postfix's queue_minfree: below it new mail is refused (SMTP 452 4.3.1,
// IMAP NO [OVERQUOTA]) so that what is left stays for deletions (SQLite
// needs room in its WAL to delete: at 0 bytes free even EXPUNGE fails with
// "database or disk is full"), the queue's bookkeeping and the database.
// Crossing the floor is logged once at ERROR and the recovery once at WARN.
// It is safe for concurrent use; a nil *Reserve is never low.
type Reserve struct {
	dir     string
	min     int64
	recover int64 // free space at which a low state ends (a little above min)
	log     *slog.Logger
	statfs  func(dir string) (free int64, err error)
	now     func() time.Time

	low     atomic.Bool
	near    atomic.Bool  // the last reading was within reach of the floor: read every time
	checked atomic.Int64 // UnixNano of the last reading
	mu      sync.Mutex   // one reader of the filesystem at a time
	failed  bool         // the last statfs failed (logged once); under mu

	// The ballast: a file of ballast bytes in dir, given up when the disk
	// is full all the same (filled by something else), so that deletions
	// find room; made again once the space is back. Under mu.
	ballast     int64
	ballastPath string
	ballastHeld bool
	ballastErr  bool // the last attempt to make it failed (logged once)
}

// BallastName is the ballast file's name inside the watched directory.
const BallastName = ".disk-reserve-ballast"

// ReserveOptions configures NewReserve.
type ReserveOptions struct {
	Dir string // a directory on the filesystem to watch (DATA_DIR)
	Min int64  // bytes that must stay free; <= 0 switches the check off
	// Ballast is the size of a file kept in Dir (BallastName) and deleted
	// when the disk is full anyway, so that EXPUNGE and other deletions
	// can still write SQLite's WAL; 0: none. Only used with Min > 0.
	Ballast int64
	Logger  *slog.Logger // nil: discard
	// StatFS and Now replace the filesystem and the clock in tests.
	StatFS func(dir string) (free int64, err error)
	Now    func() time.Time
}

// NewReserve returns the floor for opts.Dir. It reads the free space at
// once, so a start on a full disk is logged at start.
func NewReserve(opts ReserveOptions) *Reserve {
	r := &Reserve{dir: opts.Dir, min: opts.Min, log: opts.Logger, statfs: opts.StatFS, now: opts.Now}
	if opts.Ballast > 0 && opts.Min > 0 {
		r.ballast = opts.Ballast
		r.ballastPath = filepath.Join(opts.Dir, BallastName)
		if fi, err := os.Stat(r.ballastPath); err == nil && fi.Size() == r.ballast {
			r.ballastHeld = true
		}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.statfs == nil {
		r.statfs = freeSpace
	}
	if r.now == nil {
		r.now = time.Now
	}
	// Hysteresis: a disk hovering at the floor must not log every second.
	r.recover = r.min + min(r.min/8, 64<<20)
	if r.min > 0 {
		r.refresh()
	}
	return r
}

// Low reports whether the free space is below the reserve: read now when
// the disk is near the floor, otherwise as of at most ReserveRecheck ago.
// It never waits for another caller's reading.
func (r *Reserve) Low() bool {
	if r == nil || r.min <= 0 {
		return false
	}
	stale := r.near.Load() || r.now().UnixNano()-r.checked.Load() >= int64(ReserveRecheck)
	if stale && r.mu.TryLock() {
		r.refreshLocked()
		r.mu.Unlock()
	}
	return r.low.Load()
}

// Watch reads the free space every ReserveRecheck until ctx is done, so
// that crossing the reserve (and recovering) is noticed and logged even
// while no mail arrives. It returns at once when the reserve is off.
func (r *Reserve) Watch(ctx context.Context) {
	if r == nil || r.min <= 0 {
		return
	}
	t := time.NewTicker(ReserveRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.refresh()
		}
	}
}

// Min is the reserve in bytes (0: off).
func (r *Reserve) Min() int64 {
	if r == nil {
		return 0
	}
	return max(r.min, 0)
}

func (r *Reserve) refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshLocked()
}

// refreshLocked reads the free space and logs a change of state. Caller
// holds mu.
func (r *Reserve) refreshLocked() {
	r.checked.Store(r.now().UnixNano())
	free, err := r.statfs(r.dir)
	if err != nil {
		if !r.failed {
			r.failed = true
			r.log.Error("cannot read the free disk space; DISK_RESERVE is not enforced until it can", "dir", r.dir, "err", err)
		}
		r.low.Store(false)
		r.near.Store(false)
		return
	}
	r.failed = false
	free = r.tendBallast(free)
	r.near.Store(free < 2*r.min+reserveNear)
	wasLow := r.low.Load()
	switch {
	case !wasLow && free < r.min:
		r.low.Store(true)
		r.log.Error("free disk space below DISK_RESERVE: new mail is refused (SMTP 452 4.3.1, IMAP APPEND NO [OVERQUOTA]) "+
			"until space is freed; deletions, EXPUNGE and the queue go on",
			"dir", r.dir, "free", free, "reserve", r.min)
	case wasLow && free >= r.recover:
		r.low.Store(false)
		r.log.Warn("free disk space back above DISK_RESERVE: accepting new mail again",
			"dir", r.dir, "free", free, "reserve", r.min)
	}
}

// tendBallast gives the ballast up when almost nothing is free (the disk
// was filled past the reserve by something else, or by the database
// itself), and makes it when there is comfortably room for it. It returns
// the free space after the change. Caller holds mu.
func (r *Reserve) tendBallast(free int64) int64 {
	switch {
	case r.ballast <= 0:
	case r.ballastHeld && free < r.ballast/2:
		if err := os.Remove(r.ballastPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Error("disk full: cannot remove the ballast file", "file", r.ballastPath, "err", err)
			return free
		}
		r.ballastHeld = false
		r.log.Error("disk full: ballast file removed so that deletions (EXPUNGE) can still be written",
			"dir", r.dir, "free_before", free, "ballast", r.ballast)
		return free + r.ballast
	case !r.ballastHeld && free >= r.recover+r.ballast:
		if err := makeBallast(r.ballastPath, r.ballast); err != nil {
			if !r.ballastErr {
				r.ballastErr = true
				r.log.Warn("cannot make the disk-reserve ballast file", "file", r.ballastPath, "err", err)
			}
			return free
		}
		r.ballastHeld, r.ballastErr = true, false
		return free - r.ballast
	}
	return free
}

// makeBallast writes a file of size bytes that really occupies them
// (allocated, not sparse) and syncs it.
func makeBallast(path string, size int64) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("blob: ballast: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("blob: ballast: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if err := allocate(f, size); err != nil {
		return fmt.Errorf("blob: ballast: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: ballast: %w", err)
	}
	return nil
}

// String describes the reserve for a log line.
func (r *Reserve) String() string {
	if r == nil || r.min <= 0 {
		return "off"
	}
	return fmt.Sprintf("%d bytes free on %s", r.min, r.dir)
}
