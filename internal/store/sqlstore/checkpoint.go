package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"sync/atomic"
	"time"
)

// SQLite WAL checkpoints. SQLite's automatic checkpoint runs inside the
// COMMIT that finds the WAL over wal_autocheckpoint pages, so one group
// commit in every few dozen also copies megabytes into the main file and
// fsyncs it while every delivery in it waits for its 250. The
// checkpointer does that work on its own connection instead, after about
// ckptPages pages were committed, while the writer goes on. The writer's
// own checkpoint stays as a backstop at writerCkptPages. Durability does
// not change: commits are fsynced in the WAL either way, and a checkpoint
// fsyncs the WAL before and the database after copying.
const (
	ckptPages       = 1000 // SQLite's default wal_autocheckpoint
	writerCkptPages = 4 * ckptPages
	pageSize        = 4096 // SQLite's default page size
	// Page cache bounds (PRAGMA cache_size, KiB) of the readers and the
	// checkpointer (sqlstore.go); the writer keeps SQLite's 2,000 KiB.
	// modernc's SQLite is built with SQLITE_ENABLE_MEMORY_MANAGEMENT, so
	// all connections' caches are one pool (pcache1's global group): any
	// connection may fill the sum of every cache_size, and each 4 KiB
	// page costs 8 KiB of RSS (modernc.org/memory rounds its 4.4 KB slot
	// up to a power of two). Issue 19: 4 readers at 1 MiB let the pool
	// reach 6.2 MiB (some 12 MiB of RSS) during a large EXPUNGE; at 256
	// KiB it is 3.2 MiB. Readers lose their pages at every commit of
	// another connection (WAL) anyway.
	readerCacheKiB = 256
	ckptCacheKiB   = 256
	// ckptIdle: after this long without reaching ckptPages, whatever was
	// committed (IMAP flag changes, a trickle of mail) is checkpointed.
	ckptIdle = 2 * time.Second
)

type checkpointer struct {
	db    *sql.DB // one connection of its own
	log   *slog.Logger
	pages atomic.Int64  // estimated pages committed since the last checkpoint
	kick  chan struct{} // 1-buffered: "ckptPages reached"
	stop  chan struct{}
	done  chan struct{}
}

func newCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed records that a write transaction of about pages pages
// committed.
func (c *checkpointer) committed(pages int64) {
	if c == nil {
		return
	}
	if c.pages.Add(pages) >= ckptPages {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	idle := time.NewTimer(ckptIdle)
	defer idle.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-idle.C:
			if c.pages.Load() == 0 {
				idle.Reset(ckptIdle)
				continue
			}
		}
		c.pages.Store(0)
		// PASSIVE: never waits for readers or the writer; what it cannot
		// copy now is copied next time.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
			c.log.Warn("WAL checkpoint failed", "err", err)
		}
		cancel()
		idle.Reset(ckptIdle)
	}
}

// close stops the goroutine and closes the connection; the Store's
// Close checkpoints the rest.
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	close(c.stop)
	<-c.done
	return c.db.Close()
}
