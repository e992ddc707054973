package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// accounts implements store.Accounts either on the Store (tx == nil: reads
// from the read pool, each write in its own transaction) or inside one
// transaction (InTx: everything on tx).
type accounts struct {
	s       *Store
	tx      *conn
	trashed *bool // InTx: set when a delete may have freed blob files
}

// reader is where this Accounts reads: its transaction, or the read pool.
func (a *accounts) reader() conn {
	if a.tx != nil {
		return *a.tx
	}
	return a.s.readConn()
}

// write runs fn in this Accounts' transaction, or in a new one.
func (a *accounts) write(ctx context.Context, fn func(c conn) error) error {
	if a.tx != nil {
		return fn(*a.tx)
	}
	return a.s.withTx(ctx, fn)
}

// freedBlobs is called after deletes that can cascade to message bodies.
func (a *accounts) freedBlobs(ctx context.Context) {
	if a.tx != nil {
		*a.trashed = true
		return
	}
	a.s.releaseNow(ctx)
}

// metaCols are the columns every Mailu table ends with.
const metaCols = `created_at, updated_at, comment`

func scanMeta(m *store.Meta) []any {
	return []any{scanTime(&m.CreatedAt), scanTime(&m.UpdatedAt), &m.Comment}
}

// created sets CreatedAt (unless the caller brought one, as an import
// does) and clears UpdatedAt: Mailu leaves updated_at empty until the
// first update.
func created(m *store.Meta) {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now()
	} else {
		m.CreatedAt = roundTS(m.CreatedAt)
	}
	m.UpdatedAt = time.Time{}
}

// checkNameFree fails with store.ErrNameInUse when name is already a
// domain, an alternative or a relay (Mailu: common.fqdn_in_use). It first
// locks the 'fqdn' row, so two PostgreSQL transactions cannot both pass
// the check for the same name.
func checkNameFree(ctx context.Context, c conn, name string) error {
	var lock string
	if err := c.queryRow(ctx, `SELECT name FROM store_lock WHERE name = 'fqdn'`+c.d.forUpdate()).Scan(&lock); err != nil {
		return fmt.Errorf("lock names: %w", err)
	}
	var n int
	err := c.queryRow(ctx, `SELECT
  (SELECT COUNT(*) FROM domain WHERE name = ?) +
  (SELECT COUNT(*) FROM alternative WHERE name = ?) +
  (SELECT COUNT(*) FROM relay WHERE name = ?)`, name, name, name).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return store.ErrNameInUse
	}
	return nil
}

const domainCols = `name, max_users, max_aliases, max_quota_bytes, signup_enabled, ` + metaCols

func scanDomain(sc interface{ Scan(...any) error }) (store.Domain, error) {
	var d store.Domain
	err := sc.Scan(append([]any{&d.Name, &d.MaxUsers, &d.MaxAliases, &d.MaxQuotaBytes, &d.SignupEnabled}, scanMeta(&d.Meta)...)...)
	return d, err
}

func (a *accounts) GetDomain(ctx context.Context, name string) (*store.Domain, error) {
	d, err := scanDomain(a.reader().queryRow(ctx, sqlGetDomain, name))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get domain %q: %w", name, mapErr(err))
	}
	return &d, nil
}

func (a *accounts) ListDomains(ctx context.Context) ([]store.Domain, error) {
	return list(ctx, a.reader(), "list domains", scanDomain, `SELECT `+domainCols+` FROM domain ORDER BY name`)
}

func (a *accounts) CreateDomain(ctx context.Context, d *store.Domain) error {
	m := d.Meta
	created(&m)
	err := a.write(ctx, func(c conn) error {
		if err := checkNameFree(ctx, c, d.Name); err != nil {
			return err
		}
		c.configChanged(TopicDomain, d.Name)
		_, err := c.exec(ctx, `INSERT INTO domain (`+domainCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			d.Name, d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes, d.SignupEnabled,
			c.d.ts(m.CreatedAt), nil, m.Comment)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create domain %q: %w", d.Name, err)
	}
	d.Meta = m
	return nil
}

func (a *accounts) UpdateDomain(ctx context.Context, d *store.Domain) error {
	t := now()
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicDomain, d.Name)
		return c.execOne(ctx, `UPDATE domain SET max_users = ?, max_aliases = ?, max_quota_bytes = ?,
  signup_enabled = ?, updated_at = ?, comment = ? WHERE name = ?`,
			d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes, d.SignupEnabled, c.d.ts(t), d.Comment, d.Name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update domain %q: %w", d.Name, err)
	}
	d.UpdatedAt = t
	return nil
}

// DeleteDomain deletes the domain and, by ON DELETE CASCADE, its users
// (with their tokens, mailboxes and messages), aliases, alternatives and
// managers.
func (a *accounts) DeleteDomain(ctx context.Context, name string) error {
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicDomain, name)
		return c.execOne(ctx, `DELETE FROM domain WHERE name = ?`, name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete domain %q: %w", name, err)
	}
	a.freedBlobs(ctx)
	return nil
}

const alternativeCols = `name, domain_name, ` + metaCols

func scanAlternative(sc interface{ Scan(...any) error }) (store.Alternative, error) {
	var x store.Alternative
	err := sc.Scan(append([]any{&x.Name, &x.DomainName}, scanMeta(&x.Meta)...)...)
	return x, err
}

func (a *accounts) GetAlternative(ctx context.Context, name string) (*store.Alternative, error) {
	x, err := scanAlternative(a.reader().queryRow(ctx, sqlGetAlternative, name))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get alternative %q: %w", name, mapErr(err))
	}
	return &x, nil
}

func (a *accounts) ListAlternatives(ctx context.Context, domain string) ([]store.Alternative, error) {
	if domain == "" {
		return list(ctx, a.reader(), "list alternatives", scanAlternative,
			`SELECT `+alternativeCols+` FROM alternative ORDER BY name`)
	}
	return list(ctx, a.reader(), "list alternatives", scanAlternative,
		`SELECT `+alternativeCols+` FROM alternative WHERE domain_name = ? ORDER BY name`, domain)
}

func (a *accounts) CreateAlternative(ctx context.Context, x *store.Alternative) error {
	m := x.Meta
	created(&m)
	err := a.write(ctx, func(c conn) error {
		if err := checkNameFree(ctx, c, x.Name); err != nil {
			return err
		}
		c.configChanged(TopicDomain, x.Name)
		_, err := c.exec(ctx, `INSERT INTO alternative (`+alternativeCols+`) VALUES (?, ?, ?, ?, ?)`,
			x.Name, x.DomainName, c.d.ts(m.CreatedAt), nil, m.Comment)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create alternative %q: %w", x.Name, err)
	}
	x.Meta = m
	return nil
}

func (a *accounts) DeleteAlternative(ctx context.Context, name string) error {
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicDomain, name)
		return c.execOne(ctx, `DELETE FROM alternative WHERE name = ?`, name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete alternative %q: %w", name, err)
	}
	return nil
}

const relayCols = `name, smtp, ` + metaCols

func scanRelay(sc interface{ Scan(...any) error }) (store.Relay, error) {
	var r store.Relay
	err := sc.Scan(append([]any{&r.Name, &r.SMTP}, scanMeta(&r.Meta)...)...)
	return r, err
}

func (a *accounts) GetRelay(ctx context.Context, name string) (*store.Relay, error) {
	r, err := scanRelay(a.reader().queryRow(ctx, sqlGetRelay, name))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get relay %q: %w", name, mapErr(err))
	}
	return &r, nil
}

func (a *accounts) ListRelays(ctx context.Context) ([]store.Relay, error) {
	return list(ctx, a.reader(), "list relays", scanRelay, `SELECT `+relayCols+` FROM relay ORDER BY name`)
}

func (a *accounts) CreateRelay(ctx context.Context, r *store.Relay) error {
	m := r.Meta
	created(&m)
	err := a.write(ctx, func(c conn) error {
		if err := checkNameFree(ctx, c, r.Name); err != nil {
			return err
		}
		c.configChanged(TopicDomain, r.Name)
		_, err := c.exec(ctx, `INSERT INTO relay (`+relayCols+`) VALUES (?, ?, ?, ?, ?)`,
			r.Name, r.SMTP, c.d.ts(m.CreatedAt), nil, m.Comment)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create relay %q: %w", r.Name, err)
	}
	r.Meta = m
	return nil
}

func (a *accounts) UpdateRelay(ctx context.Context, r *store.Relay) error {
	t := now()
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicDomain, r.Name)
		return c.execOne(ctx, `UPDATE relay SET smtp = ?, updated_at = ?, comment = ? WHERE name = ?`,
			r.SMTP, c.d.ts(t), r.Comment, r.Name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update relay %q: %w", r.Name, err)
	}
	r.UpdatedAt = t
	return nil
}

func (a *accounts) DeleteRelay(ctx context.Context, name string) error {
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicDomain, name)
		return c.execOne(ctx, `DELETE FROM relay WHERE name = ?`, name)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete relay %q: %w", name, err)
	}
	return nil
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, c conn, what string, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	return out, nil
}

// count runs a COUNT query.
func count(ctx context.Context, c conn, what, query string, args ...any) (int, error) {
	var n int
	if err := c.queryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	return n, nil
}

// listInt64 runs q, whose rows are one integer each (ids).
func listInt64(ctx context.Context, c conn, q string, args ...any) ([]int64, error) {
	return list(ctx, c, "ids", scanInt64, q, args...)
}

// scanInt64 is list's scanner of a row of one integer.
func scanInt64(sc interface{ Scan(...any) error }) (int64, error) {
	var id int64
	err := sc.Scan(&id)
	return id, err
}
