package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrations/<flavor>/NNNN_name.sql, applied in number order, each in its
// own transaction together with its schema_migrations row.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the numbered migrations of one flavor, sorted.
func loadMigrations(flavor string) ([]migration, error) {
	dir := path.Join("migrations", flavor)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqlstore: migration %s: name must be NNNN_what.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("sqlstore: migrations %s and %s share number %d", prev, name, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: migration %s: %w", name, err)
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrate brings the schema up to date. Re-opening an up-to-date database
// runs one SELECT. Two nodes starting together on PostgreSQL may race on
// a migration: the loser's transaction fails, and if the version is then
// recorded the loser moves on.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.d.name())
	if err != nil {
		return err
	}
	c := conn{q: s.write, d: s.d}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
)`
	ddl := create
	if s.d.name() == FlavorPostgreSQL {
		ddl = strings.Replace(create, "TIMESTAMP", "TIMESTAMPTZ", 1)
	}
	if _, err := c.exec(ctx, ddl); err != nil {
		// A concurrent creator on PostgreSQL can fail IF NOT EXISTS on
		// the catalog's unique index; the table exists either way.
		if _, err2 := s.appliedVersions(ctx); err2 != nil {
			return fmt.Errorf("sqlstore: create schema_migrations: %w", err)
		}
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		err := s.withTx(ctx, func(c conn) error {
			if _, err := c.exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := c.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.d.ts(now()))
			return err
		})
		if err != nil {
			again, err2 := s.appliedVersions(ctx)
			if err2 == nil && again[m.version] {
				continue // another node applied it
			}
			return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
		}
		s.log.Info("database migration applied", "flavor", s.d.name(), "migration", m.name)
	}
	return nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := conn{q: s.write, d: s.d}.query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("sqlstore: read schema_migrations: %w", err)
		}
		done[v] = true
	}
	return done, rows.Err()
}

// SchemaVersion returns the highest applied migration number.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	hi := 0
	for v := range done {
		hi = max(hi, v)
	}
	return hi, nil
}
