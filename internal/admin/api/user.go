package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

const dateLayout = "2006-01-02"

// userJSON is Mailu's UserGet. Mailu returns the password hash; so does
// Petrel, for clients that copy users between servers.
func userJSON(u *store.User) obj {
	return obj{
		{"email", u.Email},
		{"password", u.Password},
		{"comment", nullable(u.Comment)},
		{"quota_bytes", u.QuotaBytes},
		{"quota_bytes_used", u.QuotaBytesUsed},
		{"global_admin", u.GlobalAdmin},
		{"enabled", u.Enabled},
		{"change_pw_next_login", u.ChangePwNextLogin},
		{"enable_imap", u.EnableIMAP},
		{"enable_pop", u.EnablePOP},
		{"allow_spoofing", u.AllowSpoofing},
		{"forward_enabled", u.ForwardEnabled},
		{"forward_destination", nonNil(u.ForwardDestination)},
		{"forward_keep", u.ForwardKeep},
		{"reply_enabled", u.ReplyEnabled},
		{"reply_subject", nullable(u.ReplySubject)},
		{"reply_body", nullable(u.ReplyBody)},
		{"reply_startdate", u.ReplyStartDate.Format(dateLayout)},
		{"reply_enddate", u.ReplyEndDate.Format(dateLayout)},
		{"displayed_name", u.DisplayedName},
		{"spam_enabled", u.SpamEnabled},
		{"spam_mark_as_read", u.SpamMarkAsRead},
		{"spam_threshold", u.SpamThreshold},
	}
}

func (a *API) listUsers(c *call) {
	us, err := a.svc.Users(c.ctx(), "")
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, len(us))
	for i := range us {
		out[i] = userJSON(&us[i]).skipNone()
	}
	c.json(http.StatusOK, out)
}

// applyUser copies the settable fields present in b onto u; it answers 400
// and returns false on a bad date or destination.
func (c *call) applyUser(u *store.User) bool {
	b := c.body
	if v, ok := b.str("comment"); ok {
		u.Comment = v
	}
	if v, ok := b.integer("quota_bytes"); ok {
		u.QuotaBytes = v
	}
	for name, p := range map[string]*bool{
		"global_admin": &u.GlobalAdmin, "enabled": &u.Enabled, "change_pw_next_login": &u.ChangePwNextLogin,
		"enable_imap": &u.EnableIMAP, "enable_pop": &u.EnablePOP, "allow_spoofing": &u.AllowSpoofing,
		"forward_enabled": &u.ForwardEnabled, "forward_keep": &u.ForwardKeep, "reply_enabled": &u.ReplyEnabled,
		"spam_enabled": &u.SpamEnabled, "spam_mark_as_read": &u.SpamMarkAsRead,
	} {
		if v, ok := b.boolean(name); ok {
			*p = v
		}
	}
	if v, ok := b.list("forward_destination"); ok {
		for _, d := range v {
			if _, ok := c.validEmail(d, "Provided forward destination email address %s is not a valid email address"); !ok {
				return false
			}
		}
		if len(v) == 0 && u.ForwardEnabled {
			c.msg(http.StatusBadRequest, "forward_destination must list at least one address when forward_enabled is true")
			return false
		}
		u.ForwardDestination = v
	}
	if v, ok := b.str("reply_subject"); ok {
		u.ReplySubject = v
	}
	if v, ok := b.str("reply_body"); ok {
		u.ReplyBody = v
	}
	for name, p := range map[string]*time.Time{"reply_startdate": &u.ReplyStartDate, "reply_enddate": &u.ReplyEndDate} {
		if v, ok := b.str(name); ok {
			t, err := time.Parse(dateLayout, v)
			if err != nil {
				c.msg(http.StatusBadRequest, fmt.Sprintf("%s %s is not a valid date (expected YYYY-MM-DD)", name, v))
				return false
			}
			*p = t
		}
	}
	if v, ok := b.str("displayed_name"); ok {
		u.DisplayedName = v
	}
	if v, ok := b.integer("spam_threshold"); ok {
		u.SpamThreshold = int(v)
	}
	if u.ForwardEnabled && len(u.ForwardDestination) == 0 {
		c.msg(http.StatusBadRequest, "forward_destination must list at least one address when forward_enabled is true")
		return false
	}
	return true
}

func (a *API) createUser(c *call) {
	raw, _ := c.body.str("email")
	email, ok := c.validEmail(raw, "Provided email address %s is not a valid email address")
	if !ok {
		return
	}
	local, domain, _ := strings.Cut(email, "@")
	if _, err := a.svc.Domain(c.ctx(), domain); !c.found(err, fmt.Sprintf("Domain %s does not exist", domain)) {
		return
	}
	u := a.svc.NewUser(local, domain)
	if !c.applyUser(&u) {
		return
	}
	pw, _ := c.body.str("raw_password")
	_, err := a.svc.AddUser(c.ctx(), u, pw, admin.CreateOptions{})
	switch {
	case errors.Is(err, store.ErrExists):
		c.msg(http.StatusConflict, fmt.Sprintf("User %s already exists", raw))
		return
	case errors.Is(err, store.ErrLimit) && strings.Contains(err.Error(), "max_users"):
		c.msg(http.StatusConflict, fmt.Sprintf("Too many users for domain %s", domain))
		return
	case err != nil:
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("User %s has been created", raw))
}

// user loads the {email} parameter, answering 400 or 404.
func (c *call) user() (*store.User, bool) {
	raw := c.param("email")
	e, ok := c.validEmail(raw, "Provided email address %s is not a valid email address")
	if !ok {
		return nil, false
	}
	u, err := c.api.svc.User(c.ctx(), e)
	if !c.found(err, fmt.Sprintf("User %s cannot be found", raw)) {
		return nil, false
	}
	return u, true
}

func (a *API) getUser(c *call) {
	u, ok := c.user()
	if !ok {
		return
	}
	c.json(http.StatusOK, userJSON(u))
}

func (a *API) updateUser(c *call) {
	u, ok := c.user()
	if !ok {
		return
	}
	// Check the body against a copy first, so a bad field answers 400
	// before anything is written.
	probe := *u
	if !c.applyUser(&probe) {
		return
	}
	pw, _ := c.body.str("raw_password")
	if c.body.has("raw_password") && pw == "" {
		c.msg(http.StatusBadRequest, "raw_password must not be empty")
		return
	}
	err := a.svc.PatchUser(c.ctx(), u.Email, func(x *store.User) { c.applyUserQuiet(x) }, pw)
	if err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("User %s has been updated", c.param("email")))
}

// applyUserQuiet is applyUser inside the transaction, after the body was
// checked on a copy: it cannot fail then, and answers nothing.
func (c *call) applyUserQuiet(u *store.User) {
	q := *c
	q.w = discardWriter{}
	q.applyUser(u)
}

func (a *API) deleteUser(c *call) {
	u, ok := c.user()
	if !ok {
		return
	}
	if err := a.svc.DeleteUser(c.ctx(), u.Email); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("User %s has been deleted", c.param("email")))
}

// discardWriter swallows an answer.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
