package web

import (
	"errors"
	"fmt"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

// Mailu ui/access.py, as Petrel applies it:
//   - a global admin may do everything;
//   - a domain manager may manage the users, aliases, alternatives and
//     managers of the domains they manage, but never a user who outranks
//     them: a global admin, or a manager of a domain they do not manage
//     (_can_manage_user, the fix for Mailu #2685);
//   - every user may change their own settings.

// needGlobal refuses everyone but global admins.
func (q *request) needGlobal() error {
	if !q.sess.GlobalAdmin() {
		return forbidden("Only a global administrator may do this.")
	}
	return nil
}

// domain loads a domain the signed-in user may manage.
func (q *request) domain(name string) (*store.Domain, error) {
	n, err := admin.NormalizeDomain(name)
	if err != nil {
		return nil, notFound("There is no domain %q.", name)
	}
	if !q.sess.GlobalAdmin() && !inList(q.sess.Managed, n) {
		q.h.log.Warn("web: domain outside the user's management refused", "user", q.sess.UserEmail, "domain", n, "path", q.r.URL.Path)
		return nil, forbidden("You do not manage the domain %s.", n)
	}
	d, err := q.h.opt.Store.GetDomain(q.r.Context(), n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("There is no domain %s.", n)
	}
	return d, err
}

// managedUser loads a user the signed-in user may manage (or themself).
func (q *request) managedUser(email string) (*store.User, error) {
	e, err := admin.NormalizeEmail(email)
	if err != nil {
		return nil, notFound("There is no user %q.", email)
	}
	ctx := q.r.Context()
	if e == q.sess.UserEmail {
		return q.sess.User, nil
	}
	if !q.sess.GlobalAdmin() && !inList(q.sess.Managed, domainOf(e)) {
		q.h.log.Warn("web: user outside the user's management refused", "user", q.sess.UserEmail, "target", e, "path", q.r.URL.Path)
		return nil, forbidden("You do not manage the domain of %s.", e)
	}
	u, err := q.h.opt.Store.GetUser(ctx, e)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("There is no user %s.", e)
	}
	if err != nil {
		return nil, err
	}
	if q.sess.GlobalAdmin() {
		return u, nil
	}
	if u.GlobalAdmin {
		q.h.log.Warn("web: manager reaching for a global admin refused", "user", q.sess.UserEmail, "target", e)
		return nil, forbidden("%s is a global administrator; only a global administrator may change them.", e)
	}
	theirs, err := q.h.opt.Store.ManagedDomains(ctx, e)
	if err != nil {
		return nil, err
	}
	for _, d := range theirs {
		if !inList(q.sess.Managed, d) {
			q.h.log.Warn("web: manager reaching for a user who outranks them refused", "user", q.sess.UserEmail, "target", e, "domain", d)
			return nil, forbidden("%s manages %s, which you do not manage; you may not change them.", e, d)
		}
	}
	return u, nil
}

func domainOf(email string) string {
	for i := len(email) - 1; i >= 0; i-- {
		if email[i] == '@' {
			return email[i+1:]
		}
	}
	return ""
}
