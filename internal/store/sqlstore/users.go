package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

const userCols = `email, localpart, domain_name, password, quota_bytes, quota_bytes_used,
  global_admin, enabled, enable_imap, enable_pop, allow_spoofing,
  forward_enabled, forward_destination, forward_keep,
  reply_enabled, reply_subject, reply_body, reply_startdate, reply_enddate,
  displayed_name, spam_enabled, spam_mark_as_read, spam_threshold, change_pw_next_login, scram_sha256, ` + metaCols

// userColsText is userCols with the dates and timestamps as text, for
// SQLite: modernc parses a DATE or TIMESTAMP column itself, trying up to
// seven layouts, each miss an allocated error (19 us of every login
// under imaptest's load); timeScanner reads the text directly.
var userColsText = strings.NewReplacer(
	"reply_startdate", "CAST(reply_startdate AS TEXT)", "reply_enddate", "CAST(reply_enddate AS TEXT)",
	"created_at", "CAST(created_at AS TEXT)", "updated_at", "CAST(updated_at AS TEXT)").Replace(userCols)

func scanUser(sc interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var fwd, scram string
	err := sc.Scan(append([]any{&u.Email, &u.Localpart, &u.DomainName, &u.Password, &u.QuotaBytes, &u.QuotaBytesUsed,
		&u.GlobalAdmin, &u.Enabled, &u.EnableIMAP, &u.EnablePOP, &u.AllowSpoofing,
		&u.ForwardEnabled, &fwd, &u.ForwardKeep,
		&u.ReplyEnabled, &u.ReplySubject, &u.ReplyBody, scanTime(&u.ReplyStartDate), scanTime(&u.ReplyEndDate),
		&u.DisplayedName, &u.SpamEnabled, &u.SpamMarkAsRead, &u.SpamThreshold, &u.ChangePwNextLogin, &scram},
		scanMeta(&u.Meta)...)...)
	u.ForwardDestination = splitList(fwd)
	// A malformed value reads as "no SCRAM credentials": SCRAM logins
	// fail until the next password login stores good ones.
	u.Scram, _ = store.ParseScramCredentials(scram)
	return u, err
}

// splitEmail fills in whichever of email, localpart and domain is missing.
func splitEmail(email, localpart, domain *string) {
	switch {
	case *email == "" && *localpart != "" && *domain != "":
		*email = *localpart + "@" + *domain
	case *email != "" && (*localpart == "" || *domain == ""):
		if i := strings.LastIndexByte(*email, '@'); i >= 0 {
			*localpart, *domain = (*email)[:i], (*email)[i+1:]
		}
	}
}

// replyDates returns the auto-reply window with Mailu's defaults for
// unset ends (models.py reply_startdate/reply_enddate).
func replyDates(u *store.User) (string, string) {
	start, end := u.ReplyStartDate, u.ReplyEndDate
	if start.IsZero() {
		start = store.DefaultReplyStart
	}
	if end.IsZero() {
		end = store.DefaultReplyEnd
	}
	return dateArg(start), dateArg(end)
}

func (a *accounts) GetUser(ctx context.Context, email string) (*store.User, error) {
	c := a.reader()
	u, err := scanUser(c.queryRow(ctx, sqlGetUser(c.d), email))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get user %q: %w", email, mapErr(err))
	}
	return &u, nil
}

func (a *accounts) ListUsers(ctx context.Context, domain string) ([]store.User, error) {
	if domain == "" {
		return list(ctx, a.reader(), "list users", scanUser, `SELECT `+userCols+` FROM "user" ORDER BY email`)
	}
	return list(ctx, a.reader(), "list users", scanUser,
		`SELECT `+userCols+` FROM "user" WHERE domain_name = ? ORDER BY email`, domain)
}

// CountUsers counts the users of domain, or all users when domain is "".
func (a *accounts) CountUsers(ctx context.Context, domain string) (int, error) {
	if domain == "" {
		return count(ctx, a.reader(), "count users", `SELECT COUNT(*) FROM "user"`)
	}
	return count(ctx, a.reader(), "count users", `SELECT COUNT(*) FROM "user" WHERE domain_name = ?`, domain)
}

// CreateUser inserts u. Email, Localpart and DomainName may be given as
// Email alone or as Localpart and DomainName; the missing ones are filled
// in. QuotaBytesUsed is stored as given (normally 0).
func (a *accounts) CreateUser(ctx context.Context, u *store.User) error {
	splitEmail(&u.Email, &u.Localpart, &u.DomainName)
	m := u.Meta
	created(&m)
	start, end := replyDates(u)
	err := a.write(ctx, func(c conn) error {
		// Announced so that caches of a user not found (the app's
		// configcache) see the new one at once.
		c.configChanged(TopicUser, u.Email)
		_, err := c.exec(ctx, `INSERT INTO "user" (`+userCols+`) VALUES
  (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.Email, u.Localpart, u.DomainName, u.Password, u.QuotaBytes, u.QuotaBytesUsed,
			u.GlobalAdmin, u.Enabled, u.EnableIMAP, u.EnablePOP, u.AllowSpoofing,
			u.ForwardEnabled, joinList(u.ForwardDestination), u.ForwardKeep,
			u.ReplyEnabled, u.ReplySubject, u.ReplyBody, start, end,
			u.DisplayedName, u.SpamEnabled, u.SpamMarkAsRead, u.SpamThreshold, u.ChangePwNextLogin, u.Scram.String(),
			c.d.ts(m.CreatedAt), nil, m.Comment)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create user %q: %w", u.Email, err)
	}
	u.Meta = m
	return nil
}

// UpdateUser writes every field of u except Email, Localpart, DomainName,
// CreatedAt and QuotaBytesUsed: the used quota belongs to delivery and
// expunge, which change it relative to the stored value, so an update
// built from an older read cannot undo their work. The SCRAM credentials
// are not written (SetScram does that); they are kept while the password
// hash stays the same and cleared when it changes.
func (a *accounts) UpdateUser(ctx context.Context, u *store.User) error {
	t := now()
	start, end := replyDates(u)
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicUser, u.Email)
		return c.execOne(ctx, `UPDATE "user" SET scram_sha256 = CASE WHEN password = ? THEN scram_sha256 ELSE '' END,
  password = ?, quota_bytes = ?,
  global_admin = ?, enabled = ?, enable_imap = ?, enable_pop = ?, allow_spoofing = ?,
  forward_enabled = ?, forward_destination = ?, forward_keep = ?,
  reply_enabled = ?, reply_subject = ?, reply_body = ?, reply_startdate = ?, reply_enddate = ?,
  displayed_name = ?, spam_enabled = ?, spam_mark_as_read = ?, spam_threshold = ?, change_pw_next_login = ?,
  updated_at = ?, comment = ?
WHERE email = ?`,
			u.Password, u.Password, u.QuotaBytes,
			u.GlobalAdmin, u.Enabled, u.EnableIMAP, u.EnablePOP, u.AllowSpoofing,
			u.ForwardEnabled, joinList(u.ForwardDestination), u.ForwardKeep,
			u.ReplyEnabled, u.ReplySubject, u.ReplyBody, start, end,
			u.DisplayedName, u.SpamEnabled, u.SpamMarkAsRead, u.SpamThreshold, u.ChangePwNextLogin,
			c.d.ts(t), u.Comment, u.Email)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update user %q: %w", u.Email, err)
	}
	u.UpdatedAt = t
	return nil
}

func (a *accounts) SetPasswordHash(ctx context.Context, email, hash string) error {
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicUser, email)
		return c.execOne(ctx, `UPDATE "user" SET password = ?, scram_sha256 = '', updated_at = ? WHERE email = ?`,
			hash, c.d.ts(now()), email)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: set password of %q: %w", email, err)
	}
	return nil
}

// SetScram stores c if the user's password hash is still passwordHash.
// updated_at is left alone: this is bookkeeping of a login, not an edit.
// It is announced all the same, so that caches of the user (the app's
// configcache) show the credentials to the next SCRAM login.
func (a *accounts) SetScram(ctx context.Context, email, passwordHash string, c store.ScramCredentials) error {
	err := a.write(ctx, func(cn conn) error {
		cn.configChanged(TopicUser, email)
		_, err := cn.exec(ctx, `UPDATE "user" SET scram_sha256 = ? WHERE email = ? AND password = ?`,
			c.String(), email, passwordHash)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: set SCRAM credentials of %q: %w", email, err)
	}
	return nil
}

// DeleteUser deletes the user and, by ON DELETE CASCADE, its tokens,
// manager rows, mailboxes and messages; bodies nothing else uses go too.
func (a *accounts) DeleteUser(ctx context.Context, email string) error {
	err := a.write(ctx, func(c conn) error {
		c.configChanged(TopicUser, email)
		return c.execOne(ctx, `DELETE FROM "user" WHERE email = ?`, email)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete user %q: %w", email, err)
	}
	a.freedBlobs(ctx)
	return nil
}

const aliasCols = `email, localpart, domain_name, wildcard, destination, ` + metaCols

func scanAlias(sc interface{ Scan(...any) error }) (store.Alias, error) {
	var x store.Alias
	var dest string
	err := sc.Scan(append([]any{&x.Email, &x.Localpart, &x.DomainName, &x.Wildcard, &dest}, scanMeta(&x.Meta)...)...)
	x.Destination = splitList(dest)
	return x, err
}

func (a *accounts) GetAlias(ctx context.Context, email string) (*store.Alias, error) {
	x, err := scanAlias(a.reader().queryRow(ctx, sqlGetAlias, email))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get alias %q: %w", email, mapErr(err))
	}
	return &x, nil
}

func (a *accounts) ListAliases(ctx context.Context, domain string) ([]store.Alias, error) {
	if domain == "" {
		return list(ctx, a.reader(), "list aliases", scanAlias, `SELECT `+aliasCols+` FROM alias ORDER BY email`)
	}
	return list(ctx, a.reader(), "list aliases", scanAlias,
		`SELECT `+aliasCols+` FROM alias WHERE domain_name = ? ORDER BY email`, domain)
}

func (a *accounts) ListWildcardAliases(ctx context.Context, domain string) ([]store.Alias, error) {
	return list(ctx, a.reader(), "list wildcard aliases", scanAlias,
		sqlWildcardAliases, domain, true)
}

// CountAliases counts the aliases of domain, or all aliases when domain is "".
func (a *accounts) CountAliases(ctx context.Context, domain string) (int, error) {
	if domain == "" {
		return count(ctx, a.reader(), "count aliases", `SELECT COUNT(*) FROM alias`)
	}
	return count(ctx, a.reader(), "count aliases", `SELECT COUNT(*) FROM alias WHERE domain_name = ?`, domain)
}

// CreateAlias inserts x; like CreateUser it fills in a missing Email or
// Localpart and DomainName.
func (a *accounts) CreateAlias(ctx context.Context, x *store.Alias) error {
	splitEmail(&x.Email, &x.Localpart, &x.DomainName)
	m := x.Meta
	created(&m)
	err := a.write(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO alias (`+aliasCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			x.Email, x.Localpart, x.DomainName, x.Wildcard, joinList(x.Destination),
			c.d.ts(m.CreatedAt), nil, m.Comment)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create alias %q: %w", x.Email, err)
	}
	x.Meta = m
	return nil
}

// UpdateAlias writes Wildcard, Destination and Comment of the alias Email.
func (a *accounts) UpdateAlias(ctx context.Context, x *store.Alias) error {
	t := now()
	err := a.write(ctx, func(c conn) error {
		return c.execOne(ctx, `UPDATE alias SET wildcard = ?, destination = ?, updated_at = ?, comment = ? WHERE email = ?`,
			x.Wildcard, joinList(x.Destination), c.d.ts(t), x.Comment, x.Email)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update alias %q: %w", x.Email, err)
	}
	x.UpdatedAt = t
	return nil
}

func (a *accounts) DeleteAlias(ctx context.Context, email string) error {
	err := a.write(ctx, func(c conn) error {
		return c.execOne(ctx, `DELETE FROM alias WHERE email = ?`, email)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete alias %q: %w", email, err)
	}
	return nil
}
