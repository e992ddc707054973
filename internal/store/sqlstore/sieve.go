package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.SieveScripts = (*Store)(nil)

// SieveActiveScript implements store.SieveScripts.
func (s *Store) SieveActiveScript(ctx context.Context, email string) (string, []byte, error) {
	var name string
	var script []byte
	err := s.readConn().queryRow(ctx, `SELECT name, script FROM sieve_script WHERE user_email = ? AND active`, email).Scan(&name, &script)
	if err != nil {
		return "", nil, fmt.Errorf("sqlstore: active sieve script of %q: %w", email, mapErr(err))
	}
	return name, script, nil
}

// ListSieveScripts implements store.SieveScripts.
func (s *Store) ListSieveScripts(ctx context.Context, email string) ([]store.SieveScriptInfo, error) {
	rows, err := s.readConn().query(ctx, `SELECT name, active, LENGTH(script), updated_at FROM sieve_script WHERE user_email = ? ORDER BY name`, email)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list sieve scripts of %q: %w", email, err)
	}
	defer rows.Close()
	var out []store.SieveScriptInfo
	for rows.Next() {
		var i store.SieveScriptInfo
		if err := rows.Scan(&i.Name, &i.Active, &i.Size, scanTime(&i.UpdatedAt)); err != nil {
			return nil, fmt.Errorf("sqlstore: list sieve scripts of %q: %w", email, err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list sieve scripts of %q: %w", email, err)
	}
	return out, nil
}

// GetSieveScript implements store.SieveScripts.
func (s *Store) GetSieveScript(ctx context.Context, email, name string) ([]byte, error) {
	var script []byte
	err := s.readConn().queryRow(ctx, `SELECT script FROM sieve_script WHERE user_email = ? AND name = ?`, email, name).Scan(&script)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get sieve script %q of %q: %w", name, email, mapErr(err))
	}
	return script, nil
}

// sieveSpace checks lim for a script of size octets stored as name, with
// the user's row locked so that two concurrent PUTSCRIPTs cannot both
// pass the count (PostgreSQL; SQLite's writer is single anyway).
func sieveSpace(ctx context.Context, c conn, email, name string, size int64, lim store.SieveLimits) error {
	if lim.MaxSize > 0 && size > lim.MaxSize {
		return store.ErrSieveMaxSize
	}
	if err := lockUser(ctx, c, email); err != nil {
		return err
	}
	var others int
	var otherSize int64
	err := c.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(script)), 0) FROM sieve_script WHERE user_email = ? AND name <> ?`, email, name).
		Scan(&others, &otherSize)
	if err != nil {
		return err
	}
	switch {
	case lim.MaxScripts > 0 && others+1 > lim.MaxScripts:
		return store.ErrSieveMaxScripts
	case lim.MaxStorage > 0 && otherSize+size > lim.MaxStorage:
		return store.ErrSieveMaxStorage
	}
	return nil
}

// SieveHaveSpace implements store.SieveScripts.
func (s *Store) SieveHaveSpace(ctx context.Context, email, name string, size int64, lim store.SieveLimits) error {
	err := s.withTx(ctx, func(c conn) error { return sieveSpace(ctx, c, email, name, size, lim) })
	if err != nil {
		return fmt.Errorf("sqlstore: sieve space of %q: %w", email, err)
	}
	return nil
}

// PutSieveScript implements store.SieveScripts.
func (s *Store) PutSieveScript(ctx context.Context, email, name string, script []byte, lim store.SieveLimits) error {
	if name == "" {
		return errors.New("sqlstore: put sieve script: empty name")
	}
	if script == nil {
		script = []byte{} // NOT NULL: an empty script is a script
	}
	err := s.withTx(ctx, func(c conn) error {
		c.configChanged(TopicSieve, email)
		if err := sieveSpace(ctx, c, email, name, int64(len(script)), lim); err != nil {
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO sieve_script (user_email, name, script, active, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (user_email, name) DO UPDATE SET script = excluded.script, updated_at = excluded.updated_at`,
			email, name, script, false, s.d.ts(now()))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: put sieve script %q of %q: %w", name, email, err)
	}
	return nil
}

// DeleteSieveScript implements store.SieveScripts.
func (s *Store) DeleteSieveScript(ctx context.Context, email, name string) error {
	err := s.withTx(ctx, func(c conn) error {
		c.configChanged(TopicSieve, email)
		var active bool
		err := c.queryRow(ctx, `SELECT active FROM sieve_script WHERE user_email = ? AND name = ?`+c.d.forUpdate(), email, name).Scan(&active)
		if err != nil {
			return mapErr(err)
		}
		if active {
			return store.ErrSieveActive
		}
		return c.execOne(ctx, `DELETE FROM sieve_script WHERE user_email = ? AND name = ?`, email, name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete sieve script %q of %q: %w", name, email, err)
	}
	return nil
}

// RenameSieveScript implements store.SieveScripts. The primary key makes
// an existing newName store.ErrExists.
func (s *Store) RenameSieveScript(ctx context.Context, email, oldName, newName string) error {
	if newName == "" {
		return errors.New("sqlstore: rename sieve script: empty name")
	}
	err := s.withTx(ctx, func(c conn) error {
		c.configChanged(TopicSieve, email)
		if oldName == newName {
			var n string
			return mapErr(c.queryRow(ctx, `SELECT name FROM sieve_script WHERE user_email = ? AND name = ?`, email, oldName).Scan(&n))
		}
		return c.execOne(ctx, `UPDATE sieve_script SET name = ?, updated_at = ? WHERE user_email = ? AND name = ?`,
			newName, s.d.ts(now()), email, oldName)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: rename sieve script %q of %q: %w", oldName, email, err)
	}
	return nil
}

// SetActiveSieveScript implements store.SieveScripts: the old active
// script is switched off first, so the partial unique index never sees
// two; a missing name rolls both steps back.
func (s *Store) SetActiveSieveScript(ctx context.Context, email, name string) error {
	err := s.withTx(ctx, func(c conn) error {
		c.configChanged(TopicSieve, email)
		if err := lockUser(ctx, c, email); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `UPDATE sieve_script SET active = ? WHERE user_email = ? AND active AND name <> ?`, false, email, name); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		return c.execOne(ctx, `UPDATE sieve_script SET active = ? WHERE user_email = ? AND name = ?`, true, email, name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: set active sieve script %q of %q: %w", name, email, err)
	}
	return nil
}
