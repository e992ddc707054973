package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCacheMax bounds the statements one cache prepares. The store's SQL
// is mostly constant text, but some of it is built per call (lists of
// columns or conditions); once the cache is full, further queries are
// parsed on every run, as without a cache.
const stmtCacheMax = 160

// stmtCache prepares, on SQLite, every statement the store runs on one
// *sql.DB the first time it is seen, so that later runs skip SQLite's
// parser (issue 14: under imaptest's stress load a fifth of Petrel's CPU
// went to parsing the same SQL again). It complements the fixed hot and
// readHot sets. The prepare happens in the background: the caller may be
// inside a transaction that holds the only writer connection (or one of
// the readers), and DB.PrepareContext waits for a free connection. So the
// first run of a query, and every run until its statement is ready, goes
// unprepared. database/sql prepares a cached statement on each pooled
// connection the first time it runs there; only query plans are kept,
// never data. PostgreSQL needs none of this (pgx caches statements).
type stmtCache struct {
	db     *sql.DB
	d      dialect
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	m      map[string]*sql.Stmt // nil: being prepared, or the prepare failed
	closed bool
}

func newStmtCache(db *sql.DB, d dialect) *stmtCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &stmtCache{db: db, d: d, ctx: ctx, cancel: cancel, m: make(map[string]*sql.Stmt)}
}

// get returns query's prepared statement, or nil when it is not ready (a
// first sight starts its prepare) or the cache is nil, closed or full.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	st, seen := c.m[query]
	if seen || c.closed || len(c.m) >= stmtCacheMax {
		c.mu.Unlock()
		return st
	}
	c.m[query] = nil
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		st, err := c.db.PrepareContext(c.ctx, c.d.rebind(query))
		if err != nil {
			return // stays nil: that query runs unprepared
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			st.Close()
			return
		}
		c.m[query] = st
	}()
	return nil
}

// close stops the prepares under way and closes every statement; get
// returns nil afterwards. Safe on a nil cache and twice.
func (c *stmtCache) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		if st != nil {
			errs = append(errs, st.Close())
		}
		delete(c.m, q)
	}
	return errors.Join(errs...)
}
