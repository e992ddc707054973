package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.Fetches = (*Store)(nil)

const fetchCols = `id, user_email, protocol, host, port, tls, username, password, keep, scan, folders, last_check, error, ` + metaCols

func scanFetch(sc interface{ Scan(...any) error }) (store.Fetch, error) {
	var f store.Fetch
	var folders string
	err := sc.Scan(append([]any{&f.ID, &f.UserEmail, &f.Protocol, &f.Host, &f.Port, &f.TLS, &f.Username, &f.Password,
		&f.Keep, &f.Scan, &folders, scanTime(&f.LastCheck), &f.Error}, scanMeta(&f.Meta)...)...)
	f.Folders = splitList(folders)
	return f, err
}

// CreateFetch implements store.Fetches.
func (s *Store) CreateFetch(ctx context.Context, f *store.Fetch) error {
	m := f.Meta
	created(&m)
	var id int64
	err := s.withTx(ctx, func(c conn) error {
		return mapErr(c.queryRow(ctx, `INSERT INTO "fetch" (user_email, protocol, host, port, tls, username, password, keep, scan, folders, `+metaCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			f.UserEmail, f.Protocol, f.Host, f.Port, f.TLS, f.Username, f.Password, f.Keep, f.Scan, joinList(f.Folders),
			c.d.ts(m.CreatedAt), nil, m.Comment).Scan(&id))
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create fetch for %q: %w", f.UserEmail, err)
	}
	f.ID, f.Meta = id, m
	return nil
}

// UpdateFetch implements store.Fetches.
func (s *Store) UpdateFetch(ctx context.Context, f *store.Fetch) error {
	ts := now()
	err := s.withTx(ctx, func(c conn) error {
		var host, proto, user string
		var port int
		if err := c.queryRow(ctx, `SELECT host, port, protocol, username FROM "fetch" WHERE id = ?`, f.ID).Scan(&host, &port, &proto, &user); err != nil {
			return mapErr(err)
		}
		if err := c.execOne(ctx, `UPDATE "fetch" SET protocol = ?, host = ?, port = ?, tls = ?, username = ?, password = ?, keep = ?, scan = ?,
folders = ?, updated_at = ?, comment = ? WHERE id = ?`,
			f.Protocol, f.Host, f.Port, f.TLS, f.Username, f.Password, f.Keep, f.Scan, joinList(f.Folders), c.d.ts(ts), f.Comment, f.ID); err != nil {
			return err
		}
		if host != f.Host || port != f.Port || proto != f.Protocol || user != f.Username {
			// Another mailbox: what was seen there says nothing here.
			_, err := c.exec(ctx, `DELETE FROM fetch_seen WHERE fetch_id = ?`, f.ID)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update fetch %d: %w", f.ID, err)
	}
	f.UpdatedAt = ts
	return nil
}

// DeleteFetch implements store.Fetches.
func (s *Store) DeleteFetch(ctx context.Context, id int64) error {
	err := s.withTx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `DELETE FROM fetch_seen WHERE fetch_id = ?`, id); err != nil {
			return err
		}
		return c.execOne(ctx, `DELETE FROM "fetch" WHERE id = ?`, id)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete fetch %d: %w", id, err)
	}
	return nil
}

// GetFetch implements store.Fetches.
func (s *Store) GetFetch(ctx context.Context, id int64) (*store.Fetch, error) {
	f, err := scanFetch(s.readConn().queryRow(ctx, `SELECT `+fetchCols+` FROM "fetch" WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get fetch %d: %w", id, mapErr(err))
	}
	return &f, nil
}

// ListFetches implements store.Fetches.
func (s *Store) ListFetches(ctx context.Context, user string) ([]store.Fetch, error) {
	if user == "" {
		return list(ctx, s.readConn(), "list fetches", scanFetch, `SELECT `+fetchCols+` FROM "fetch" ORDER BY id`)
	}
	return list(ctx, s.readConn(), "list fetches", scanFetch, `SELECT `+fetchCols+` FROM "fetch" WHERE user_email = ? ORDER BY id`, user)
}

// ClaimFetch implements store.Fetches: one conditional UPDATE, so of two
// nodes racing for the account exactly one changes the row.
func (s *Store) ClaimFetch(ctx context.Context, id int64, owner string, now, dueBefore, until time.Time) (bool, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `UPDATE "fetch" SET lease_owner = ?, lease_until = ?
WHERE id = ? AND (last_check IS NULL OR last_check < ?) AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)`,
			owner, c.d.ts(until), id, c.d.ts(dueBefore), c.d.ts(now), owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlstore: claim fetch %d: %w", id, err)
	}
	return n == 1, nil
}

// FinishFetch implements store.Fetches.
func (s *Store) FinishFetch(ctx context.Context, id int64, at time.Time, errText string) error {
	err := s.withTx(ctx, func(c conn) error {
		return c.execOne(ctx, `UPDATE "fetch" SET last_check = ?, error = ?, lease_owner = '', lease_until = NULL WHERE id = ?`,
			c.d.ts(at), errText, id)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: finish fetch %d: %w", id, err)
	}
	return nil
}

// FetchSeen implements store.Fetches.
func (s *Store) FetchSeen(ctx context.Context, id int64) ([]string, error) {
	return list(ctx, s.readConn(), "list fetched keys", scanString, `SELECT key FROM fetch_seen WHERE fetch_id = ? ORDER BY key`, id)
}

// AddFetchSeen implements store.Fetches.
func (s *Store) AddFetchSeen(ctx context.Context, id int64, key string) error {
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO fetch_seen (fetch_id, key) VALUES (?, ?) ON CONFLICT (fetch_id, key) DO NOTHING`, id, key)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: record fetched key of %d: %w", id, err)
	}
	return nil
}

// ForgetFetchSeen implements store.Fetches.
func (s *Store) ForgetFetchSeen(ctx context.Context, id int64, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.withTx(ctx, func(c conn) error {
		for _, k := range keys {
			if _, err := c.exec(ctx, `DELETE FROM fetch_seen WHERE fetch_id = ? AND key = ?`, id, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: forget fetched keys of %d: %w", id, err)
	}
	return nil
}
