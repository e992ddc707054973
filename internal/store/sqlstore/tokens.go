package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/petrelmail/petrel/internal/store"
)

const tokenCols = `id, user_email, password, ip, ` + metaCols

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var ip string
	err := sc.Scan(append([]any{&t.ID, &t.UserEmail, &t.Password, &ip}, scanMeta(&t.Meta)...)...)
	t.IP = splitList(ip)
	return t, err
}

func (a *accounts) GetToken(ctx context.Context, id int64) (*store.Token, error) {
	t, err := scanToken(a.reader().queryRow(ctx, `SELECT `+tokenCols+` FROM token WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get token %d: %w", id, mapErr(err))
	}
	return &t, nil
}

func (a *accounts) ListTokens(ctx context.Context, user string) ([]store.Token, error) {
	if user == "" {
		return list(ctx, a.reader(), "list tokens", scanToken, `SELECT `+tokenCols+` FROM token ORDER BY id`)
	}
	return list(ctx, a.reader(), "list tokens", scanToken,
		`SELECT `+tokenCols+` FROM token WHERE user_email = ? ORDER BY id`, user)
}

// CreateToken inserts t and sets t.ID (t.ID given by the caller is ignored).
func (a *accounts) CreateToken(ctx context.Context, t *store.Token) error {
	m := t.Meta
	created(&m)
	var id int64
	err := a.write(ctx, func(c conn) error {
		err := c.queryRow(ctx, `INSERT INTO token (user_email, password, ip, `+metaCols+`)
VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			t.UserEmail, t.Password, joinList(t.IP), c.d.ts(m.CreatedAt), nil, m.Comment).Scan(&id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create token for %q: %w", t.UserEmail, err)
	}
	t.ID, t.Meta = id, m
	return nil
}

// UpdateToken writes Password, IP and Comment of token t.ID.
func (a *accounts) UpdateToken(ctx context.Context, t *store.Token) error {
	ts := now()
	err := a.write(ctx, func(c conn) error {
		return c.execOne(ctx, `UPDATE token SET password = ?, ip = ?, updated_at = ?, comment = ? WHERE id = ?`,
			t.Password, joinList(t.IP), c.d.ts(ts), t.Comment, t.ID)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update token %d: %w", t.ID, err)
	}
	t.UpdatedAt = ts
	return nil
}

func (a *accounts) DeleteToken(ctx context.Context, id int64) error {
	err := a.write(ctx, func(c conn) error {
		return c.execOne(ctx, `DELETE FROM token WHERE id = ?`, id)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete token %d: %w", id, err)
	}
	return nil
}

func scanString(sc interface{ Scan(...any) error }) (string, error) {
	var s string
	err := sc.Scan(&s)
	return s, err
}

// ListManagers lists the emails of domain's managers.
func (a *accounts) ListManagers(ctx context.Context, domain string) ([]string, error) {
	return list(ctx, a.reader(), "list managers", scanString,
		`SELECT user_email FROM manager WHERE domain_name = ? ORDER BY user_email`, domain)
}

// ManagedDomains lists the domains user manages.
func (a *accounts) ManagedDomains(ctx context.Context, user string) ([]string, error) {
	return list(ctx, a.reader(), "list managed domains", scanString,
		`SELECT domain_name FROM manager WHERE user_email = ? ORDER BY domain_name`, user)
}

// AddManager makes user a manager of domain: store.ErrExists if it is one
// already, store.ErrNotFound if either does not exist.
func (a *accounts) AddManager(ctx context.Context, domain, user string) error {
	err := a.write(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO manager (domain_name, user_email, `+metaCols+`) VALUES (?, ?, ?, ?, ?)`,
			domain, user, c.d.ts(now()), nil, "")
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: add manager %q of %q: %w", user, domain, err)
	}
	return nil
}

func (a *accounts) RemoveManager(ctx context.Context, domain, user string) error {
	err := a.write(ctx, func(c conn) error {
		return c.execOne(ctx, `DELETE FROM manager WHERE domain_name = ? AND user_email = ?`, domain, user)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: remove manager %q of %q: %w", user, domain, err)
	}
	return nil
}

// GetConfig returns the JSON value stored under name, byte for byte.
func (a *accounts) GetConfig(ctx context.Context, name string) (json.RawMessage, error) {
	var v string
	if err := a.reader().queryRow(ctx, `SELECT value FROM config WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("sqlstore: get config %q: %w", name, mapErr(err))
	}
	return json.RawMessage(v), nil
}

// SetConfig stores value (which must be valid JSON) under name, replacing
// any previous value.
func (a *accounts) SetConfig(ctx context.Context, name string, value json.RawMessage) error {
	if !json.Valid(value) {
		return fmt.Errorf("sqlstore: set config %q: %w", name, errors.New("value is not valid JSON"))
	}
	t := now()
	err := a.write(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO config (name, value, `+metaCols+`) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.created_at`,
			name, string(value), c.d.ts(t), nil, "")
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: set config %q: %w", name, err)
	}
	return nil
}
