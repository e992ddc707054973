package sqlstore

import (
	"context"
	"fmt"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.DKIMKeys = (*Store)(nil)

// GetDKIMKey implements store.DKIMKeys.
func (s *Store) GetDKIMKey(ctx context.Context, domain, selector string) (*store.DKIMKey, error) {
	k := store.DKIMKey{Domain: domain, Selector: selector}
	err := s.readConn().queryRow(ctx, `SELECT key_data, version, modified FROM dkim_key WHERE domain = ? AND selector = ?`,
		domain, selector).Scan(&k.Sealed, &k.Version, scanTime(&k.Modified))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get dkim key of %s: %w", domain, mapErr(err))
	}
	return &k, nil
}

// DKIMKeyVersion implements store.DKIMKeys.
func (s *Store) DKIMKeyVersion(ctx context.Context, domain, selector string) (int64, error) {
	var v int64
	err := s.readConn().queryRow(ctx, `SELECT version FROM dkim_key WHERE domain = ? AND selector = ?`,
		domain, selector).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: dkim key version of %s: %w", domain, mapErr(err))
	}
	return v, nil
}

// PutDKIMKey implements store.DKIMKeys: one upsert, so two nodes
// regenerating at once leave one of the keys and distinct versions.
func (s *Store) PutDKIMKey(ctx context.Context, domain, selector string, sealed []byte) (int64, error) {
	var v int64
	err := s.withTx(ctx, func(c conn) error {
		return mapErr(c.queryRow(ctx, `INSERT INTO dkim_key (domain, selector, key_data, version, modified) VALUES (?, ?, ?, 1, ?)
ON CONFLICT (domain, selector) DO UPDATE SET key_data = excluded.key_data, version = dkim_key.version + 1, modified = excluded.modified
RETURNING version`, domain, selector, sealed, s.d.ts(now())).Scan(&v))
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: put dkim key of %s: %w", domain, err)
	}
	return v, nil
}

// DeleteDKIMKey implements store.DKIMKeys.
func (s *Store) DeleteDKIMKey(ctx context.Context, domain, selector string) error {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM dkim_key WHERE domain = ? AND selector = ?`, domain, selector)
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
		return fmt.Errorf("sqlstore: delete dkim key of %s: %w", domain, err)
	}
	return nil
}
