package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.CertStorage = (*Store)(nil)

// PutCert implements store.CertStorage.
func (s *Store) PutCert(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO cert_kv (key, value, modified) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`, key, value, s.d.ts(now()))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: put certificate key %q: %w", key, err)
	}
	return nil
}

// GetCert implements store.CertStorage.
func (s *Store) GetCert(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	if err := s.readConn().queryRow(ctx, `SELECT value FROM cert_kv WHERE key = ?`, key).Scan(&v); err != nil {
		return nil, fmt.Errorf("sqlstore: get certificate key %q: %w", key, mapErr(err))
	}
	return v, nil
}

// under is the WHERE clause for the keys below dir (dir + "/..."): a
// prefix compare with substr, since LIKE would need escaping and text
// order depends on PostgreSQL's collation.
const under = `substr(key, 1, ?) = ?`

func underArgs(dir string) []any {
	p := dir + "/"
	return []any{utf8.RuneCountInString(p), p}
}

// DeleteCert implements store.CertStorage.
func (s *Store) DeleteCert(ctx context.Context, key string) error {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM cert_kv WHERE key = ? OR `+under, append([]any{key}, underArgs(key)...)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("sqlstore: delete certificate key %q: %w", key, err)
	}
	return nil
}

// StatCert implements store.CertStorage.
func (s *Store) StatCert(ctx context.Context, key string) (store.CertEntry, error) {
	e := store.CertEntry{Key: key, Terminal: true}
	var size int64
	err := s.readConn().queryRow(ctx, `SELECT length(value), modified FROM cert_kv WHERE key = ?`, key).Scan(&size, scanTime(&e.Modified))
	if err == nil {
		e.Size = size
		return e, nil
	}
	if err = mapErr(err); !errors.Is(err, store.ErrNotFound) {
		return store.CertEntry{}, fmt.Errorf("sqlstore: stat certificate key %q: %w", key, err)
	}
	keys, err := s.certKeysUnder(ctx, key)
	if err != nil {
		return store.CertEntry{}, err
	}
	if len(keys) == 0 {
		return store.CertEntry{}, fmt.Errorf("sqlstore: stat certificate key %q: %w", key, store.ErrNotFound)
	}
	return store.CertEntry{Key: key}, nil
}

// ListCerts implements store.CertStorage.
func (s *Store) ListCerts(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	var keys []string
	var err error
	if prefix == "" {
		keys, err = s.certKeys(ctx, `SELECT key FROM cert_kv`)
	} else {
		keys, err = s.certKeysUnder(ctx, prefix)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sqlstore: list certificate keys under %q: %w", prefix, store.ErrNotFound)
	}
	if recursive {
		sort.Strings(keys)
		return keys, nil
	}
	// Direct children: the first path element after prefix.
	strip := 0
	if prefix != "" {
		strip = len(prefix) + 1
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		child, _, _ := strings.Cut(k[strip:], "/")
		child = k[:strip] + child
		if !seen[child] {
			seen[child] = true
			out = append(out, child)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Store) certKeysUnder(ctx context.Context, dir string) ([]string, error) {
	return s.certKeys(ctx, `SELECT key FROM cert_kv WHERE `+under, underArgs(dir)...)
}

func (s *Store) certKeys(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.readConn().query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list certificate keys: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("sqlstore: list certificate keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list certificate keys: %w", err)
	}
	return keys, nil
}

// TryCertLock implements store.CertStorage: one upsert that takes the row
// over only when it is owner's or has expired, so two nodes racing for a
// free lease cannot both win (the primary key decides).
func (s *Store) TryCertLock(ctx context.Context, name, owner string, until time.Time) (bool, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `INSERT INTO cert_lock (name, owner, expires) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
WHERE cert_lock.owner = excluded.owner OR cert_lock.expires < ?`, name, owner, s.d.ts(until), s.d.ts(now()))
		if err != nil {
			return mapErr(err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlstore: take certificate lock %q: %w", name, err)
	}
	return n > 0, nil
}

// UnlockCert implements store.CertStorage.
func (s *Store) UnlockCert(ctx context.Context, name, owner string) error {
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `DELETE FROM cert_lock WHERE name = ? AND owner = ?`, name, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: release certificate lock %q: %w", name, err)
	}
	return nil
}
