// Package sqlstore implements store.Store on SQLite (embedded default,
// modernc.org/sqlite) and PostgreSQL (pgx through database/sql). It is the
// only package that speaks SQL. Both dialects share the query text: `?`
// placeholders are rebound to `$n` for PostgreSQL, and only the DDL in
// migrations/<flavor>/ differs.
//
// SQLite runs in WAL mode. Every commit of new mail, accounts or the
// queue is fsynced before the call returns, outside the single writer
// (walsync.go); changes to stored mail commit without (withTxRelaxed).
// All writes go through one connection (a *sql.DB capped at one
// open connection) and so queue in Go instead of failing with SQLITE_BUSY;
// reads use a separate query_only pool that WAL lets run beside the
// writer. On PostgreSQL one pool serves both, and concurrent writers are
// ordered by row locks (UPDATE ... RETURNING, SELECT ... FOR UPDATE).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
	"github.com/petrelmail/petrel/internal/store/bucket"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Flavors accepted in Options.Flavor (Mailu's DB_FLAVOR values).
const (
	FlavorSQLite     = "sqlite"
	FlavorPostgreSQL = "postgresql"
)

// DefaultInlineMax is the largest body kept inside the database when
// Options.InlineMax is 0.
const DefaultInlineMax = 128 << 10

// Options configures Open.
type Options struct {
	Flavor string // "sqlite" (default) or "postgresql" ("postgres" is accepted too)
	Path   string // SQLite database file, e.g. DATA_DIR/main.db
	DSN    string // PostgreSQL connection string (URL or key=value)
	// BlobDir holds bodies larger than InlineMax. Default for SQLite:
	// "blobs" beside Path. Required for PostgreSQL; with several nodes it
	// must be shared storage (or InlineMax raised so all bodies are inline).
	BlobDir string
	// InlineMax: bodies up to this size are stored in the database, larger
	// ones in blob files. 0 means DefaultInlineMax.
	InlineMax int64
	// MaxOpenConns caps the read pool (SQLite) or the whole pool
	// (PostgreSQL). 0 picks a default.
	MaxOpenConns int
	// NoListen: on PostgreSQL, announce changes (NOTIFY) but hold no
	// LISTEN connection (one-shot commands such as the CLI).
	NoListen bool
	// Objects, when set (BLOB_S3_*), holds every body over InlineMax, on
	// both flavors, instead of blob files or body_chunk rows (objects.go).
	Objects *bucket.Bucket
	// ReleaseGrace is how long an expunged message's body stays readable
	// for sessions not yet told of the expunge (releaser). 0 means
	// DefaultReleaseGrace; negative releases at once.
	ReleaseGrace time.Duration
	Logger       *slog.Logger // nil discards
}

// Store is a store.Store backed by SQL. It is safe for concurrent use.
type Store struct {
	accounts // the Accounts methods, outside any transaction

	d      dialect
	write  *sql.DB // SQLite: one connection; PostgreSQL: same pool as read
	read   *sql.DB
	blobs  *blob.Dir
	objs   *bucket.Bucket // nil: no S3 bucket
	inline int64
	log    *slog.Logger
	// hot holds the delivery statements prepared on the SQLite write
	// connection; transactions reuse them instead of re-parsing. Written
	// only in Open.
	hot map[string]*sql.Stmt
	// readHot holds the routing look-ups prepared on the read pool (both
	// dialects; prepared.go). Written only in Open.
	readHot map[string]*sql.Stmt
	// writeStmts and readStmts prepare every other statement on first
	// sight (stmtcache.go); SQLite only, nil on PostgreSQL.
	writeStmts, readStmts *stmtCache
	// ckpt checkpoints the SQLite WAL off the commit path (checkpoint.go);
	// nil on PostgreSQL. Written only in Open.
	ckpt *checkpointer
	// wal fsyncs the SQLite WAL after durable commits, outside the writer
	// (walsync.go); nil on PostgreSQL. Written only in Open.
	wal    *walSyncer
	ckptDB *sql.DB // its connection until Open hands it over
	// bodies releases the bodies of deleted messages off the IMAP path
	// (bodyrelease.go). Written only in Open.
	bodies *releaser
	// releaseMu runs one releaseBodies at a time in this process, so that
	// releaseNow, after an admin delete, waits for a background run
	// holding rows (SKIP LOCKED) instead of returning before they are done.
	releaseMu sync.Mutex
	// claimLocks orders this process's \Recent claims per mailbox (by id
	// modulo their number): when a delivery wakes every session of a
	// mailbox, the first claims and the others find it done with a read,
	// instead of each queueing for the writer (mailboxes.go ClaimRecent).
	claimLocks [64]sync.Mutex
	// watchers wakes IMAP sessions after committed changes (watch.go).
	watchers hub
	// config holds OnConfigChange's subscribers (notify.go).
	config configSubs
	// ensured spares logins the read of a user's mailbox list
	// (ensured.go). Written only in Open.
	ensured *ensured
	// feed announces committed changes to other nodes and listen hears
	// theirs (PostgreSQL LISTEN/NOTIFY, notify.go); both nil on SQLite.
	// Written only in Open.
	feed   *feed
	listen *listener
	// queries counts statements (Queries), writeTxs write transactions
	// begun (tests: what needed the writer).
	queries  atomic.Uint64
	writeTxs atomic.Uint64
	// indexer computes the searchable header fields stored with each
	// new body (headersearch.go); nil stores none.
	indexer atomic.Pointer[store.HeaderIndexer]

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database, applies pending
// migrations and returns a ready Store.
func Open(ctx context.Context, opt Options) (*Store, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{inline: opt.InlineMax, log: log, objs: opt.Objects, ensured: newEnsured(time.Now)}
	s.config.add(s.ensured.configChanged)
	if s.inline <= 0 {
		s.inline = DefaultInlineMax
	}
	s.accounts = accounts{s: s}

	var err error
	switch strings.ToLower(opt.Flavor) {
	case "", FlavorSQLite:
		err = s.openSQLite(opt)
	case FlavorPostgreSQL, "postgres":
		err = s.openPostgres(opt)
	default:
		return nil, fmt.Errorf("sqlstore: unknown flavor %q", opt.Flavor)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if s.d.name() == FlavorSQLite {
		if s.hot, err = prepareAll(ctx, s.write, s.d, hotQueries()); err != nil {
			s.closeDBs()
			return nil, err
		}
		s.writeStmts, s.readStmts = newStmtCache(s.write, s.d), newStmtCache(s.read, s.d)
	}
	if s.readHot, err = prepareAll(ctx, s.read, s.d, readHotQueries(s.d)); err != nil {
		s.closeDBs()
		return nil, err
	}
	if s.ckptDB != nil {
		s.ckpt = newCheckpointer(s.ckptDB, s.log)
	}
	if s.d.name() == FlavorPostgreSQL {
		if s.feed, err = newFeed(ctx, s.write, s.log); err != nil {
			s.closeDBs()
			return nil, err
		}
		if s.feed.enabled && !opt.NoListen {
			s.listen = startListener(s, opt.DSN)
			// Realtime from the start: the first LISTEN's wake-up of
			// every watcher comes before there are any.
			s.listen.waitStarted(listenStartWait)
		}
	}
	grace := opt.ReleaseGrace
	if grace == 0 {
		grace = DefaultReleaseGrace
	}
	s.bodies = newReleaser(s, grace)
	return s, nil
}

func (s *Store) openSQLite(opt Options) error {
	if opt.Path == "" {
		return errors.New("sqlstore: sqlite needs Options.Path")
	}
	path, err := filepath.Abs(opt.Path)
	if err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	blobDir := opt.BlobDir
	if blobDir == "" {
		blobDir = filepath.Join(filepath.Dir(path), "blobs")
	}
	if s.blobs, err = blob.New(blobDir); err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	s.d = sqliteDialect{}
	// The database holds password hashes: create it private. SQLite gives
	// its -wal and -shm files the main file's mode.
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	} else {
		return fmt.Errorf("sqlstore: create %s: %w", path, err)
	}

	// busy_timeout only matters against other processes (the CLI next to
	// a running server); in-process writers queue on the single connection.
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	u := url.URL{Scheme: "file", Path: path}
	// synchronous=NORMAL: COMMIT does not fsync; runTx waits for the
	// shared fsync of the WAL after the writer is free (walsync.go).
	wdsn := u.String() + "?" + common +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate" +
		fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", writerCkptPages)
	// Page caches live outside the Go heap, 2 MB per connection by
	// default, and any connection may use the others' share (one pool:
	// see readerCacheKiB; issue 19: a 100,000-message mailbox fills it).
	// A reader's is dropped whenever another connection commits (WAL), and
	// scans read through the OS cache anyway: readerCacheKiB holds the
	// b-tree interiors. The checkpointer copies WAL frames without it. The
	// writer keeps the default: its large transactions spill beyond it.
	rdsn := u.String() + "?" + common + "&_pragma=query_only(1)" + fmt.Sprintf("&_pragma=cache_size(-%d)", readerCacheKiB)
	cdsn := u.String() + "?" + common + "&_pragma=synchronous(FULL)" + fmt.Sprintf("&_pragma=cache_size(-%d)", ckptCacheKiB)

	s.write, err = sql.Open("sqlite", wdsn)
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)
	// Open the writer first: it switches the file to WAL before readers come.
	if err := s.write.Ping(); err != nil {
		s.write.Close()
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	s.read, err = sql.Open("sqlite", rdsn)
	if err != nil {
		s.write.Close()
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	n := opt.MaxOpenConns
	if n <= 0 {
		n = max(4, runtime.NumCPU())
	}
	s.read.SetMaxOpenConns(n)
	s.read.SetMaxIdleConns(n)
	s.ckptDB, err = sql.Open("sqlite", cdsn)
	if err != nil {
		s.read.Close()
		s.write.Close()
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	s.ckptDB.SetMaxOpenConns(1)
	s.ckptDB.SetMaxIdleConns(1)
	s.ckptDB.SetConnMaxLifetime(0)
	s.ckptDB.SetConnMaxIdleTime(0)
	s.wal = newWALSyncer(path, s.log)
	return nil
}

func (s *Store) openPostgres(opt Options) error {
	if opt.DSN == "" {
		return errors.New("sqlstore: postgresql needs Options.DSN")
	}
	if opt.BlobDir == "" {
		return errors.New("sqlstore: postgresql needs Options.BlobDir")
	}
	var err error
	if s.blobs, err = blob.New(opt.BlobDir); err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	s.d = newPostgresDialect()
	db, err := sql.Open("pgx", opt.DSN)
	if err != nil {
		return fmt.Errorf("sqlstore: open postgresql: %w", err)
	}
	n := opt.MaxOpenConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	s.write, s.read = db, db
	return nil
}

// Flavor returns "sqlite" or "postgresql".
func (s *Store) Flavor() string { return s.d.name() }

// Blobs returns the blob directory bodies larger than InlineMax live in;
// callers write large bodies there and pass the name in
// store.NewMessage.BlobName.
func (s *Store) Blobs() *blob.Dir { return s.blobs }

// InlineMax is the largest body CommitMessages keeps inside the database.
func (s *Store) InlineMax() int64 { return s.inline }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if s.read != s.write {
		if err := s.read.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlstore: ping: %w", err)
		}
	}
	return nil
}

// Close checkpoints the SQLite WAL into the main file and closes the
// database. The Store must not be used afterwards; closing twice is a
// no-op.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	s.listen.close()
	s.bodies.close()
	errs := []error{s.ckpt.close(), closeStmts(s.hot), closeStmts(s.readHot), s.writeStmts.close(), s.readStmts.close()}
	if s.read != s.write {
		// Readers first, so the checkpoint is not held back by them.
		errs = append(errs, s.read.Close())
		if _, err := s.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			errs = append(errs, fmt.Errorf("sqlstore: checkpoint: %w", err))
		}
	}
	errs = append(errs, s.write.Close())
	s.wal.close()
	return errors.Join(errs...)
}

func (s *Store) closeDBs() {
	closeStmts(s.hot)
	closeStmts(s.readHot)
	s.writeStmts.close()
	s.readStmts.close()
	if s.ckptDB != nil {
		s.ckptDB.Close()
	}
	if s.read != nil && s.read != s.write {
		s.read.Close()
	}
	if s.write != nil {
		s.write.Close()
	}
	s.wal.close()
}

// InTx runs fn with Accounts bound to one transaction, committing when fn
// returns nil and rolling back otherwise. On SQLite the transaction holds
// the single write connection, so fn must not call the Store itself.
func (s *Store) InTx(ctx context.Context, fn func(store.Accounts) error) error {
	var trashed bool
	err := s.withTx(ctx, func(c conn) error {
		a := &accounts{s: s, tx: &c, trashed: &trashed}
		return fn(a)
	})
	if err == nil && trashed {
		s.releaseNow(ctx)
	}
	return err
}

// withTx runs fn in a write transaction that is durable when it returns
// nil: on SQLite the WAL is fsynced after the COMMIT (walsync.go).
func (s *Store) withTx(ctx context.Context, fn func(c conn) error) (err error) {
	return s.runTx(ctx, true, fn)
}

// runTx is withTx's body; durable waits for the WAL's fsync after the
// COMMIT (SQLite; PostgreSQL's COMMIT is durable by itself).
func (s *Store) runTx(ctx context.Context, durable bool, fn func(c conn) error) (err error) {
	if err := s.wal.broken(); err != nil {
		return err
	}
	s.writeTxs.Add(1)
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
	}()
	w := &wakeSet{}
	if err := fn(conn{q: tx, tx: tx, d: s.d, hot: s.hot, stmts: s.writeStmts, wake: w, count: &s.queries}); err != nil {
		tx.Rollback()
		return err
	}
	if !w.empty() {
		w.normalize()
		if w.mustAnnounceInTx() {
			if err := s.feed.announce(ctx, tx, w); err != nil {
				tx.Rollback()
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		if commitUnknown(err) {
			return fmt.Errorf("sqlstore: commit: %w: %w", store.ErrCommitUnknown, err)
		}
		return fmt.Errorf("sqlstore: commit: %w", mapErr(err))
	}
	s.ckpt.committed(txPages)
	var syncErr error
	if durable {
		// The writer is free again: other transactions commit while
		// this one waits for the disk. A failed fsync leaves the
		// change committed but maybe not on disk: the outcome is
		// unknown to the caller, which must not undo or repeat it.
		if err := s.wal.sync(); err != nil {
			syncErr = fmt.Errorf("sqlstore: commit: %w: %w", store.ErrCommitUnknown, err)
		}
	}
	if !w.empty() && !w.mustAnnounceInTx() {
		s.feed.announceAfter(ctx, s.write, w, s.log)
	}
	if !w.empty() {
		s.watchers.notify(w.users...)
		for _, e := range w.config {
			s.config.fire(e)
		}
	}
	return syncErr
}

// withTxRelaxed is withTx for a change to mail already stored (the
// \Recent claim, flags, expunge, copy and move): on SQLite it returns
// without waiting for the WAL's fsync (the next durable commit's fsync
// covers it); on PostgreSQL it commits with synchronous_commit off.
// Atomicity and isolation are unchanged, and a crash of Petrel loses
// nothing (the frames are in the kernel's page cache). A power failure or
// kernel crash may undo the last such transactions, but only a suffix of
// the commit order, never one before a durable commit: both logs are
// written in order, and an fsync flushes all that precedes it. So a copy
// is never lost while the expunge of its source survives, and blob files
// are removed only after the durable commit that released their bodies.
// This is Dovecot's contract for its index files (mail_fsync=optimized);
// new mail (delivery, APPEND, import) is always durable.
func (s *Store) withTxRelaxed(ctx context.Context, fn func(c conn) error) error {
	if s.d.name() != "sqlite" {
		return s.withTx(ctx, func(c conn) error {
			if _, err := c.exec(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
				return err
			}
			return fn(c)
		})
	}
	return s.runTx(ctx, false, fn)
}

// txPages is a guess at the pages a small write transaction changes.
const txPages = 4

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs shared SQL text on one querier, rebinding placeholders.
type conn struct {
	q   querier
	tx  *sql.Tx // set when q is a write transaction
	d   dialect
	hot map[string]*sql.Stmt // prepared on the write connection (used in tx)
	// readHot: prepared on the read pool (used when tx is nil).
	readHot map[string]*sql.Stmt
	// rtx is set when q is a read transaction (readTx).
	rtx *sql.Tx
	// stmts prepares the other statements of q's *sql.DB (stmtcache.go).
	stmts *stmtCache
	// wake collects what a write transaction changed (notify.go).
	wake *wakeSet
	// count is the Store's statement counter (Queries); nil counts nothing.
	count *atomic.Uint64
}

// stmt returns query as a prepared statement when it is a hot one: of
// the transaction, or of the read pool outside one; else nil.
func (c conn) stmt(ctx context.Context, query string) *sql.Stmt {
	switch {
	case c.tx != nil:
		if st := c.hot[query]; st != nil {
			return c.tx.StmtContext(ctx, st)
		}
		if st := c.stmts.get(query); st != nil {
			return c.tx.StmtContext(ctx, st)
		}
		return nil
	case c.rtx != nil:
		if st := c.stmts.get(query); st != nil {
			return c.rtx.StmtContext(ctx, st)
		}
		return nil
	}
	if st := c.readHot[query]; st != nil {
		return st
	}
	return c.stmts.get(query)
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.counted()
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.q.ExecContext(ctx, c.d.rebind(query), args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.counted()
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.q.QueryContext(ctx, c.d.rebind(query), args...)
}

func (c conn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	c.counted()
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.q.QueryRowContext(ctx, c.d.rebind(query), args...)
}

// execOne runs a statement that must change exactly one row; zero rows
// is store.ErrNotFound.
func (c conn) execOne(ctx context.Context, query string, args ...any) error {
	res, err := c.exec(ctx, query, args...)
	if err != nil {
		return mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// counted adds one statement to the Store's counter.
func (c conn) counted() {
	if c.count != nil {
		c.count.Add(1)
	}
}

// readConn is where reads outside a transaction go.
func (s *Store) readConn() conn {
	return conn{q: s.read, d: s.d, readHot: s.readHot, stmts: s.readStmts, count: &s.queries}
}

// Queries is the number of SQL statements this Store has run for its
// callers (reads and write transactions; not migrations, checkpoints or
// the LISTEN connection). Tests use it to show that an idle IMAP session
// costs nothing (issue 16); it only goes up.
func (s *Store) Queries() uint64 { return s.queries.Load() }
