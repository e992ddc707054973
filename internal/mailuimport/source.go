package mailuimport

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" (Mailu on PostgreSQL)
	_ "modernc.org/sqlite"             // database/sql driver "sqlite" (Mailu's main.db)
)

// row is one row of a Mailu table by column name. Mailu's schema grew
// over the years (alembic migrations, master-only columns), so rows are
// read with SELECT * and every field is looked up by name with a default.
type row map[string]any

// mailuDB is Mailu's admin database (core/admin/mailu/models.py), read only.
type mailuDB struct {
	db     *sql.DB
	flavor string // "sqlite" or "postgresql"
}

// openMailuDB opens a main.db path (or sqlite:// URL) read-only, or a
// postgresql:// URL as Mailu's SQLALCHEMY_DATABASE_URI gives it.
func openMailuDB(ctx context.Context, src string) (*mailuDB, error) {
	var m mailuDB
	var err error
	switch {
	case strings.HasPrefix(src, "postgresql://"), strings.HasPrefix(src, "postgres://"),
		strings.HasPrefix(src, "postgresql+psycopg2://"):
		// SQLAlchemy's driver suffix means nothing to pgx.
		src = "postgresql://" + src[strings.Index(src, "://")+3:]
		m.flavor = "postgresql"
		m.db, err = sql.Open("pgx", src)
	default:
		path := strings.TrimPrefix(src, "sqlite:///")
		if path != src {
			path = "/" + path // SQLAlchemy: sqlite:////data/main.db
		}
		m.flavor = "sqlite"
		u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
		m.db, err = sql.Open("sqlite", u.String())
	}
	if err != nil {
		return nil, fmt.Errorf("open Mailu database: %w", err)
	}
	if err := m.db.PingContext(ctx); err != nil {
		m.db.Close()
		return nil, fmt.Errorf("open Mailu database: %w", err)
	}
	// The tables every Mailu since 1.x has; a wrong file fails here.
	if _, err := m.rows(ctx, "domain"); err != nil {
		m.db.Close()
		return nil, fmt.Errorf("%s is not a Mailu database: %w", redactURL(src), err)
	}
	return &m, nil
}

func (m *mailuDB) Close() error { return m.db.Close() }

// redactURL hides a password in a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// hasTable reports whether Mailu's database has table (fetch is optional
// in old schemas, manager too).
func (m *mailuDB) hasTable(ctx context.Context, table string) bool {
	q, arg := `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`, table
	if m.flavor == "postgresql" {
		// to_regclass follows search_path, as the queries do.
		q, arg = `SELECT 1 WHERE to_regclass($1) IS NOT NULL`, `"`+table+`"`
	}
	var one int
	return m.db.QueryRowContext(ctx, q, arg).Scan(&one) == nil
}

// rows reads a whole table. Table names are constants of this package.
func (m *mailuDB) rows(ctx context.Context, table string) ([]row, error) {
	rs, err := m.db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return nil, err
	}
	var out []row
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		r := make(row, len(cols))
		for i, c := range cols {
			r[strings.ToLower(c)] = vals[i]
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return out, nil
}

func (r row) str(col string) string {
	switch v := r[col].(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case time.Time:
		return v.Format("2006-01-02")
	default:
		return fmt.Sprint(v)
	}
}

// boolean reads SQLAlchemy's Boolean: 0/1 on SQLite, a bool on PostgreSQL.
func (r row) boolean(col string, def bool) bool {
	switch v := r[col].(type) {
	case bool:
		return v
	case int64:
		return v != 0
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return def
		}
		return b
	case []byte:
		b, err := strconv.ParseBool(string(v))
		if err != nil {
			return def
		}
		return b
	}
	return def
}

func (r row) int64(col string, def int64) int64 {
	switch v := r[col].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case float64:
		return int64(v)
	case string, []byte:
		n, err := strconv.ParseInt(strings.TrimSpace(r.str(col)), 10, 64)
		if err != nil {
			return def
		}
		return n
	}
	return def
}

// date reads a Date or DateTime column; zero when empty or unreadable.
func (r row) date(col string) time.Time {
	if t, ok := r[col].(time.Time); ok {
		return t.UTC()
	}
	s := strings.TrimSpace(r.str(col))
	for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// list reads Mailu's CommaSeparatedList columns.
func (r row) list(col string) []string {
	var out []string
	for _, p := range strings.Split(r.str(col), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
