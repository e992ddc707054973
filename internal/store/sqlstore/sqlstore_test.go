package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/storetest"
)

// opener hands out one database per test, and the same one again when a
// test re-opens (storetest.Open's contract).
type opener struct {
	mu   sync.Mutex
	opts map[*testing.T]Options
	mk   func(tb testing.TB) Options
}

func newOpener(mk func(tb testing.TB) Options) *opener {
	return &opener{opts: map[*testing.T]Options{}, mk: mk}
}

func (o *opener) open(t *testing.T) store.Store {
	return o.openStore(t)
}

func (o *opener) openStore(t *testing.T) *Store {
	t.Helper()
	o.mu.Lock()
	opt, ok := o.opts[t]
	if !ok {
		opt = o.mk(t)
		o.opts[t] = opt
	}
	o.mu.Unlock()
	s, err := Open(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sqliteOptions(t testing.TB) Options {
	dir := t.TempDir()
	return Options{Flavor: "sqlite", Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs"),
		InlineMax: 4096, ReleaseGrace: testReleaseGrace}
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, newOpener(sqliteOptions).open)
}

// pgOptions gives each test its own schema in the database named by
// PETREL_TEST_PG_DSN (see testdata/pg-start.sh) and drops it afterwards.
func pgOptions(t testing.TB) Options {
	base := os.Getenv("PETREL_TEST_PG_DSN")
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return Options{Flavor: "postgresql", DSN: withSearchPath(t, base, schema),
		BlobDir: filepath.Join(t.TempDir(), "blobs"), InlineMax: 4096, MaxOpenConns: 8, ReleaseGrace: testReleaseGrace}
}

// testReleaseGrace: the tests that are not about the release grace
// (TestReleaseGrace is) see bodies released at once, as before it.
const testReleaseGrace = -1

// withSearchPath adds search_path to a URL or key=value DSN; pgx passes
// unknown settings to the server as run-time parameters.
func withSearchPath(t testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func skipWithoutPG(t *testing.T) {
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		t.Skip("PETREL_TEST_PG_DSN not set (start a server with testdata/pg-start.sh)")
	}
}

func TestPostgresConformance(t *testing.T) {
	skipWithoutPG(t)
	storetest.Run(t, newOpener(pgOptions).open)
}

// flavors runs fn against SQLite, and PostgreSQL when configured.
func flavors(t *testing.T, fn func(t *testing.T, o *opener)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newOpener(sqliteOptions)) })
	t.Run("postgresql", func(t *testing.T) {
		skipWithoutPG(t)
		fn(t, newOpener(pgOptions))
	})
}

func TestMigrationsIdempotent(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		ms, err := loadMigrations(s.Flavor())
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.SchemaVersion(t.Context())
		if err != nil || v != ms[len(ms)-1].version {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, ms[len(ms)-1].version)
		}
		must(t, s.CreateDomain(t.Context(), &store.Domain{Name: "keep.example"}))
		must(t, s.Close())
		for range 2 {
			s = o.openStore(t)
			var n int
			if err := s.readConn().queryRow(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
				t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(ms))
			}
			if _, err := s.GetDomain(t.Context(), "keep.example"); err != nil {
				t.Fatalf("data lost on reopen: %v", err)
			}
			must(t, s.Close())
		}
	})
}

func TestMigrationsWellFormed(t *testing.T) {
	for _, f := range []string{FlavorSQLite, FlavorPostgreSQL} {
		ms, err := loadMigrations(f)
		if err != nil {
			t.Fatal(err)
		}
		// Numbers are unique and increasing. Gaps are allowed: parallel
		// branches are given ranges of numbers (HELPERS.md), and migrate
		// applies every version not yet recorded, whatever its place.
		for i, m := range ms {
			if m.version < 1 || i > 0 && m.version <= ms[i-1].version {
				t.Fatalf("%s: migration %s is number %d after %d", f, m.name, m.version, ms[max(i-1, 0)].version)
			}
		}
	}
	a, _ := loadMigrations(FlavorSQLite)
	b, _ := loadMigrations(FlavorPostgreSQL)
	if len(a) != len(b) {
		t.Fatalf("sqlite has %d migrations, postgresql %d", len(a), len(b))
	}
	for i := range a {
		if a[i].name != b[i].name || a[i].version != b[i].version {
			t.Fatalf("migration %d: sqlite %s, postgresql %s", i+1, a[i].name, b[i].name)
		}
	}
}

func TestSQLitePragmas(t *testing.T) {
	s := newOpener(sqliteOptions).openStore(t)
	defer s.Close()
	ctx := t.Context()
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.write, "journal_mode", "wal"},
		{s.write, "synchronous", "1"}, // NORMAL: runTx fsyncs the WAL (walsync.go)
		{s.write, "foreign_keys", "1"},
		{s.read, "foreign_keys", "1"},
		{s.read, "query_only", "1"},
		{s.write, "busy_timeout", "10000"},
	} {
		var got string
		if err := tc.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
	// The read pool cannot write.
	if _, err := s.read.ExecContext(ctx, `INSERT INTO relay (name, created_at) VALUES ('x', '2024-01-01')`); err == nil {
		t.Fatal("read pool accepted a write")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	for _, opt := range []Options{
		{Flavor: "mysql", Path: filepath.Join(t.TempDir(), "x.db")},
		{Flavor: "sqlite"},
		{Flavor: "postgresql", BlobDir: t.TempDir()},
		{Flavor: "postgresql", DSN: "postgres://127.0.0.1:1/x"},
	} {
		if s, err := Open(ctx, opt); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", opt)
		}
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), Options{Path: filepath.Join(dir, "sub", "main.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Flavor() != FlavorSQLite || s.InlineMax() != DefaultInlineMax {
		t.Fatalf("flavor %s, inline max %d", s.Flavor(), s.InlineMax())
	}
	if s.Blobs().Path() != filepath.Join(dir, "sub", "blobs") {
		t.Fatalf("blob dir %s", s.Blobs().Path())
	}
	must(t, s.Ping(t.Context()))
	fi, err := os.Stat(filepath.Join(dir, "sub", "main.db"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v (%v), want 0600: it holds password hashes", fi.Mode(), err)
	}
	must(t, s.CreateRelay(t.Context(), &store.Relay{Name: "r.example"}))
	must(t, s.Close())
	must(t, s.Close()) // idempotent
	// Close checkpointed the WAL: everything is in the main file.
	if fi, err := os.Stat(filepath.Join(dir, "sub", "main.db-wal")); err == nil && fi.Size() > 0 {
		t.Fatalf("WAL still holds %d bytes after Close", fi.Size())
	}
}

func TestRebind(t *testing.T) {
	d := newPostgresDialect()
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`a = ? AND b = ?`, `a = $1 AND b = $2`},
		{`x = '?' AND y = ? AND "q?" = ?`, `x = '?' AND y = $1 AND "q?" = $2`},
		{`(?, ?, ?)`, `($1, $2, $3)`},
	} {
		if got := d.rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := d.rebind(tc.in); got != tc.want { // cached
			t.Errorf("cached rebind(%q) = %q", tc.in, got)
		}
	}
	if got := (sqliteDialect{}).rebind(`a = ?`); got != `a = ?` {
		t.Errorf("sqlite rebind changed the query: %q", got)
	}
}

func FuzzRebind(f *testing.F) {
	for _, s := range []string{"", "?", "'?'", `"?"?`, "a=? and b='x''?' and c=?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		d := newPostgresDialect()
		out := d.rebind(q)
		if strings.Count(q, "?") == 0 && out != q {
			t.Fatalf("rebind changed %q to %q", q, out)
		}
		if strings.Count(out, "?") > strings.Count(q, "?") {
			t.Fatalf("rebind added placeholders: %q -> %q", q, out)
		}
	})
}

func TestTimeScanner(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"2024-05-06 07:08:09.123456", "2024-05-06T07:08:09.123456Z"},
		{"2024-05-06 07:08:09.123456Z", "2024-05-06T07:08:09.123456Z"},
		{[]byte("2999-12-31"), "2999-12-31T00:00:00Z"},
		{"2024-05-06T07:08:09+02:00", "2024-05-06T05:08:09Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), "2024-01-02T02:04:05Z"},
		{nil, "0001-01-01T00:00:00Z"},
	} {
		tm := time.Now()
		if err := scanTime(&tm).Scan(tc.in); err != nil {
			t.Fatalf("Scan(%v): %v", tc.in, err)
		}
		if s := tm.Format("2006-01-02T15:04:05.999999Z07:00"); s != tc.want {
			t.Errorf("Scan(%v) = %s, want %s", tc.in, s, tc.want)
		}
	}
	var tm time.Time
	if err := scanTime(&tm).Scan("yesterday"); err == nil {
		t.Fatal("Scan accepted garbage")
	}
	if err := scanTime(&tm).Scan(3.5); err == nil {
		t.Fatal("Scan accepted a float")
	}
}

func TestMapErr(t *testing.T) {
	for _, tc := range []struct {
		err       error
		want      error
		retryable bool
	}{
		{sql.ErrNoRows, store.ErrNotFound, false},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "23505"}), store.ErrExists, false},
		{&pgconn.PgError{Code: "23503"}, store.ErrNotFound, false},
		{&pgconn.PgError{Code: "40P01"}, nil, true},
		{&pgconn.PgError{Code: "40001"}, nil, true},
		{errors.New("other"), nil, false},
	} {
		got := mapErr(tc.err)
		if tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("mapErr(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if !errors.Is(got, tc.err) && tc.err != sql.ErrNoRows {
			t.Errorf("mapErr(%v) lost the driver error", tc.err)
		}
		if retryable(tc.err) != tc.retryable {
			t.Errorf("retryable(%v) = %v", tc.err, !tc.retryable)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
