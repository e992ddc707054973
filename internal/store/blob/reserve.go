package blob

import (
	"context"
	"fmt"
	"log/slog"
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
}

// ReserveOptions configures NewReserve.
type ReserveOptions struct {
	Dir    string       // a directory on the filesystem to watch (DATA_DIR)
	Min    int64        // bytes that must stay free; <= 0 switches the check off
	Logger *slog.Logger // nil: discard
	// StatFS and Now replace the filesystem and the clock in tests.
	StatFS func(dir string) (free int64, err error)
	Now    func() time.Time
}

// NewReserve returns the floor for opts.Dir. It reads the free space at
// once, so a start on a full disk is logged at start.
func NewReserve(opts ReserveOptions) *Reserve {
	r := &Reserve{dir: opts.Dir, min: opts.Min, log: opts.Logger, statfs: opts.StatFS, now: opts.Now}
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

// String describes the reserve for a log line.
func (r *Reserve) String() string {
	if r == nil || r.min <= 0 {
		return "off"
	}
	return fmt.Sprintf("%d bytes free on %s", r.min, r.dir)
}
