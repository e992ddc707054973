package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.Web = (*Store)(nil)

const webSessionCols = `id, user_email, csrf, stage, remember, created_at, seen_at, expires_at`

func scanWebSession(sc interface{ Scan(...any) error }) (store.WebSession, error) {
	var s store.WebSession
	err := sc.Scan(&s.ID, &s.UserEmail, &s.CSRF, &s.Stage, &s.Remember, scanTime(&s.CreatedAt), scanTime(&s.SeenAt), scanTime(&s.ExpiresAt))
	return s, err
}

// CreateWebSession implements store.Web. A user that does not exist gives
// store.ErrNotFound (the foreign key).
func (s *Store) CreateWebSession(ctx context.Context, ws *store.WebSession) error {
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO web_session (`+webSessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			ws.ID, ws.UserEmail, ws.CSRF, ws.Stage, ws.Remember, s.d.ts(ws.CreatedAt), s.d.ts(ws.SeenAt), s.d.ts(ws.ExpiresAt))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create web session for %q: %w", ws.UserEmail, err)
	}
	return nil
}

// GetWebSession implements store.Web.
func (s *Store) GetWebSession(ctx context.Context, id string) (*store.WebSession, error) {
	ws, err := scanWebSession(s.readConn().queryRow(ctx, `SELECT `+webSessionCols+` FROM web_session WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get web session: %w", mapErr(err))
	}
	return &ws, nil
}

// TouchWebSession implements store.Web.
func (s *Store) TouchWebSession(ctx context.Context, id string, seen time.Time) error {
	return s.execWeb(ctx, "touch web session", `UPDATE web_session SET seen_at = ? WHERE id = ?`, s.d.ts(seen), id)
}

// SetWebSessionStage implements store.Web.
func (s *Store) SetWebSessionStage(ctx context.Context, id, stage string) error {
	return s.execWeb(ctx, "set web session stage", `UPDATE web_session SET stage = ? WHERE id = ?`, stage, id)
}

// DeleteWebSession implements store.Web.
func (s *Store) DeleteWebSession(ctx context.Context, id string) error {
	return s.execWeb(ctx, "delete web session", `DELETE FROM web_session WHERE id = ?`, id)
}

// execWeb runs one statement that must change one row.
func (s *Store) execWeb(ctx context.Context, what, query string, args ...any) error {
	if err := s.withTx(ctx, func(c conn) error { return c.execOne(ctx, query, args...) }); err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	return nil
}

// DeleteUserWebSessions implements store.Web.
func (s *Store) DeleteUserWebSessions(ctx context.Context, user, except string) error {
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `DELETE FROM web_session WHERE user_email = ? AND id <> ?`, user, except)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete web sessions of %q: %w", user, err)
	}
	return nil
}

// PruneWebSessions implements store.Web.
func (s *Store) PruneWebSessions(ctx context.Context, now, idleBefore time.Time) (int64, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM web_session WHERE expires_at < ? OR (NOT remember AND seen_at < ?)`, s.d.ts(now), s.d.ts(idleBefore))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: prune web sessions: %w", err)
	}
	return n, nil
}

// GetTOTP implements store.Web.
func (s *Store) GetTOTP(ctx context.Context, user string) (*store.TOTP, error) {
	var t store.TOTP
	err := s.readConn().queryRow(ctx, `SELECT user_email, secret, enabled, last_step, failures, failed_at, created_at FROM user_totp WHERE user_email = ?`, user).
		Scan(&t.UserEmail, &t.Secret, &t.Enabled, &t.LastStep, &t.Failures, scanTime(&t.FailedAt), scanTime(&t.CreatedAt))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get totp of %q: %w", user, mapErr(err))
	}
	return &t, nil
}

// SetTOTP implements store.Web.
func (s *Store) SetTOTP(ctx context.Context, t *store.TOTP) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now()
	}
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO user_totp (user_email, secret, enabled, last_step, failures, failed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_email) DO UPDATE SET secret = excluded.secret, enabled = excluded.enabled, last_step = excluded.last_step,
  failures = excluded.failures, failed_at = excluded.failed_at, created_at = excluded.created_at`,
			t.UserEmail, t.Secret, t.Enabled, t.LastStep, t.Failures, nullTS(s.d, t.FailedAt), s.d.ts(t.CreatedAt))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: set totp of %q: %w", t.UserEmail, err)
	}
	return nil
}

// DeleteTOTP implements store.Web.
func (s *Store) DeleteTOTP(ctx context.Context, user string) error {
	return s.execWeb(ctx, "delete totp", `DELETE FROM user_totp WHERE user_email = ?`, user)
}

// UseTOTPStep implements store.Web: one conditional update, so of two
// concurrent uses of one code at most one succeeds.
func (s *Store) UseTOTPStep(ctx context.Context, user string, step int64) (bool, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `UPDATE user_totp SET last_step = ?, failures = 0 WHERE user_email = ? AND last_step < ?`, step, user, step)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlstore: use totp step of %q: %w", user, err)
	}
	return n > 0, nil
}

// TOTPFailed implements store.Web in one statement, so concurrent wrong
// codes all count.
func (s *Store) TOTPFailed(ctx context.Context, user string, now time.Time, window time.Duration) (int, error) {
	var n int
	err := s.withTx(ctx, func(c conn) error {
		start := s.d.ts(now.Add(-window))
		err := c.queryRow(ctx, `UPDATE user_totp SET
  failures = CASE WHEN failed_at IS NULL OR failed_at < ? THEN 1 ELSE failures + 1 END,
  failed_at = CASE WHEN failed_at IS NULL OR failed_at < ? THEN ? ELSE failed_at END
WHERE user_email = ? RETURNING failures`, start, start, s.d.ts(now), user).Scan(&n)
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: count totp failure of %q: %w", user, err)
	}
	return n, nil
}

// AddStats implements store.Web with one upsert per delta.
func (s *Store) AddStats(ctx context.Context, ds []store.StatDelta) error {
	if len(ds) == 0 {
		return nil
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = s.withTx(ctx, func(c conn) error {
			for _, d := range ds {
				if _, err := c.exec(ctx, `INSERT INTO stat_hourly (name, hour, n) VALUES (?, ?, ?)
ON CONFLICT (name, hour) DO UPDATE SET n = stat_hourly.n + excluded.n`,
					d.Name, s.d.ts(d.Hour.UTC().Truncate(time.Hour)), d.N); err != nil {
					return err
				}
			}
			return nil
		})
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: add stats: %w", err)
	}
	return nil
}

// Stats implements store.Web.
func (s *Store) Stats(ctx context.Context, name string, since time.Time) ([]store.StatPoint, error) {
	return list(ctx, s.readConn(), "stats", func(sc interface{ Scan(...any) error }) (store.StatPoint, error) {
		var p store.StatPoint
		err := sc.Scan(scanTime(&p.Hour), &p.N)
		return p, err
	}, `SELECT hour, n FROM stat_hourly WHERE name = ? AND hour >= ? ORDER BY hour`, name, s.d.ts(since))
}

// PruneStats implements store.Web.
func (s *Store) PruneStats(ctx context.Context, before time.Time) error {
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `DELETE FROM stat_hourly WHERE hour < ?`, s.d.ts(before))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: prune stats: %w", err)
	}
	return nil
}

// likePrefix turns prefix into a LIKE pattern matching it literally.
func likePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(strings.ToLower(prefix)) + "%"
}

// pageQuery builds the WHERE clause of a paged list.
func pageQuery(cols, table, domain, prefix, after string, limit int) (string, []any) {
	var where []string
	var args []any
	if domain != "" {
		where = append(where, "domain_name = ?")
		args = append(args, domain)
	}
	if prefix != "" {
		where = append(where, `email LIKE ? ESCAPE '\'`)
		args = append(args, likePrefix(prefix))
	}
	if after != "" {
		where = append(where, "email > ?")
		args = append(args, after)
	}
	q := `SELECT ` + cols + ` FROM ` + table
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY email LIMIT ?`
	args = append(args, limit)
	return q, args
}

// ListUsersPage implements store.Web.
func (s *Store) ListUsersPage(ctx context.Context, domain, prefix, after string, limit int) ([]store.User, error) {
	if limit <= 0 {
		return nil, errors.New("sqlstore: list users page: limit must be positive")
	}
	q, args := pageQuery(userCols, `"user"`, domain, prefix, after, limit)
	return list(ctx, s.readConn(), "list users page", scanUser, q, args...)
}

// ListAliasesPage implements store.Web.
func (s *Store) ListAliasesPage(ctx context.Context, domain, prefix, after string, limit int) ([]store.Alias, error) {
	if limit <= 0 {
		return nil, errors.New("sqlstore: list aliases page: limit must be positive")
	}
	q, args := pageQuery(aliasCols, `alias`, domain, prefix, after, limit)
	return list(ctx, s.readConn(), "list aliases page", scanAlias, q, args...)
}

// ListGlobalAdmins implements store.Web.
func (s *Store) ListGlobalAdmins(ctx context.Context) ([]string, error) {
	return list(ctx, s.readConn(), "list global admins", scanString, `SELECT email FROM "user" WHERE global_admin ORDER BY email`)
}

// QueueSummary implements store.Web.
func (s *Store) QueueSummary(ctx context.Context) (store.QueueSummary, error) {
	var q store.QueueSummary
	var held int64
	var oldest time.Time
	err := s.readConn().queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN held THEN 1 ELSE 0 END), 0), MIN(created_at) FROM queue`).
		Scan(&q.Entries, &held, scanTime(&oldest))
	if err != nil {
		return q, fmt.Errorf("sqlstore: queue summary: %w", err)
	}
	q.Held, q.Oldest = int(held), oldest
	return q, nil
}
