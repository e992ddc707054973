package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

// pageSize is how many users or aliases a list shows at once; lists are
// paged by address so a domain with many users stays fast.
const pageSize = 50

// Mailu's user and alias pages of a domain (ui/views/users.py, aliases.py).
func (h *Handler) accountRoutes() {
	h.route("GET", "/user/list/{domain}", roleUser, h.userList)
	h.route("GET", "/user/create/{domain}", roleUser, h.userCreateForm)
	h.route("POST", "/user/create/{domain}", roleUser, h.userCreate)
	h.route("GET", "/user/edit/{email}", roleUser, h.userEditForm)
	h.route("POST", "/user/edit/{email}", roleUser, h.userEdit)
	h.route("GET", "/user/password/{email}", roleUser, h.userPasswordForm)
	h.route("POST", "/user/password/{email}", roleUser, h.userPassword)
	h.route("GET", "/user/usersettings/{email}", roleUser, func(q *request) error {
		u, err := q.managedUser(q.r.PathValue("email"))
		if err != nil {
			return err
		}
		return h.settingsForm(q, u, nil)
	})
	h.route("POST", "/user/usersettings/{email}", roleUser, func(q *request) error {
		u, err := q.managedUser(q.r.PathValue("email"))
		if err != nil {
			return err
		}
		return h.settingsPost(q, u, "/user/usersettings/"+u.Email)
	})
	h.route("GET", "/user/reply/{email}", roleUser, func(q *request) error {
		u, err := q.managedUser(q.r.PathValue("email"))
		if err != nil {
			return err
		}
		return h.replyForm(q, u, nil)
	})
	h.route("POST", "/user/reply/{email}", roleUser, func(q *request) error {
		u, err := q.managedUser(q.r.PathValue("email"))
		if err != nil {
			return err
		}
		return h.replyPost(q, u, "/user/reply/"+u.Email)
	})

	h.route("GET", "/alias/list/{domain}", roleUser, h.aliasList)
	h.route("GET", "/alias/create/{domain}", roleUser, h.aliasCreateForm)
	h.route("POST", "/alias/create/{domain}", roleUser, h.aliasCreate)
	h.route("GET", "/alias/edit/{alias}", roleUser, h.aliasEditForm)
	h.route("POST", "/alias/edit/{alias}", roleUser, h.aliasEdit)
	h.route("GET", "/alias/delete/{alias}", roleUser, func(q *request) error {
		a, err := h.managedAlias(q)
		if err != nil {
			return err
		}
		return confirm(q, "Delete the alias "+displayName(a.Email)+"?", "Delete")
	})
	h.route("POST", "/alias/delete/{alias}", roleUser, h.aliasDelete)
}

type userRow struct {
	store.User
	Percent int // quota used, 0-100; -1 when unlimited
}

func (h *Handler) userList(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	prefix, after := q.r.URL.Query().Get("q"), q.r.URL.Query().Get("after")
	if len(prefix) > 255 || len(after) > 255 {
		return badRequest("The search is too long.")
	}
	us, err := h.opt.Store.ListUsersPage(q.r.Context(), d.Name, prefix, after, pageSize+1)
	if err != nil {
		return err
	}
	next := ""
	if len(us) > pageSize {
		us = us[:pageSize]
		next = us[pageSize-1].Email
	}
	rows := make([]userRow, len(us))
	for i, u := range us {
		rows[i] = userRow{User: u, Percent: -1}
		if u.QuotaBytes > 0 {
			p := u.QuotaBytesUsed * 100 / u.QuotaBytes
			rows[i].Percent = int(min(p, 100))
		}
	}
	total, err := h.opt.Store.CountUsers(q.r.Context(), d.Name)
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "users", "Users of "+displayName(d.Name), map[string]any{
		"Domain": d, "Users": rows, "Next": next, "Query": prefix, "After": after, "Total": total,
	})
	return nil
}

func (h *Handler) userCreateForm(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	u := h.opt.Admin.NewUser("", d.Name)
	if d.MaxQuotaBytes > 0 && (u.QuotaBytes == 0 || u.QuotaBytes > d.MaxQuotaBytes) {
		u.QuotaBytes = d.MaxQuotaBytes
	}
	q.render(http.StatusOK, "user_form", "New user in "+displayName(d.Name), map[string]any{"Domain": d, "User": u, "Create": true})
	return nil
}

// userFields reads the fields the create and edit forms share.
func userFields(q *request, u *store.User) error {
	u.DisplayedName = q.form("displayed_name")
	u.Comment = q.form("comment")
	u.EnableIMAP = q.checkbox("enable_imap")
	u.EnablePOP = q.checkbox("enable_pop")
	u.AllowSpoofing = q.checkbox("allow_spoofing")
	u.Enabled = q.checkbox("enabled")
	u.ChangePwNextLogin = q.checkbox("change_pw_next_login")
	mb, err := formInt(q, "quota_mb", u.QuotaBytes/1000000)
	if err != nil {
		return err
	}
	if mb < 0 || mb > 1<<40 {
		return badRequest("The quota must be 0 (unlimited) or more megabytes.")
	}
	u.QuotaBytes = mb * 1000000
	return nil
}

func (h *Handler) userCreate(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	u := h.opt.Admin.NewUser(q.form("localpart"), d.Name)
	u.Localpart = q.form("localpart")
	again := func(status int, msg string) error {
		q.render(status, "user_form", "New user in "+displayName(d.Name), map[string]any{"Domain": d, "User": u, "Create": true, "Error": msg})
		return nil
	}
	if err := userFields(q, &u); err != nil {
		st, msg := errorStatus(err)
		return again(st, msg)
	}
	if msg := checkNewPassword(q.r.PostForm.Get("pw"), q.r.PostForm.Get("pw2")); msg != "" {
		return again(http.StatusBadRequest, msg)
	}
	if strings.Contains(u.Localpart, "@") {
		return again(http.StatusBadRequest, "Enter only the part before the @.")
	}
	if msg := checkLocalpart(u.Localpart); msg != "" {
		return again(http.StatusBadRequest, msg)
	}
	created, err := h.opt.Admin.AddUser(q.r.Context(), u, q.r.PostForm.Get("pw"), admin.CreateOptions{})
	if err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return again(st, msg)
		}
		return err
	}
	h.log.Info("web: user created", "user", created.Email, "by", q.sess.UserEmail)
	return q.done("/user/list/"+d.Name, "User "+displayName(created.Email)+" created.")
}

func (h *Handler) userEditForm(q *request) error {
	u, err := q.managedUser(q.r.PathValue("email"))
	if err != nil {
		return err
	}
	d, err := h.opt.Store.GetDomain(q.r.Context(), u.DomainName)
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "user_form", "Edit "+displayName(u.Email), map[string]any{"Domain": d, "User": u})
	return nil
}

func (h *Handler) userEdit(q *request) error {
	u, err := q.managedUser(q.r.PathValue("email"))
	if err != nil {
		return err
	}
	d, err := h.opt.Store.GetDomain(q.r.Context(), u.DomainName)
	if err != nil {
		return err
	}
	nu := *u
	again := func(status int, msg string) error {
		q.render(status, "user_form", "Edit "+displayName(u.Email), map[string]any{"Domain": d, "User": nu, "Error": msg})
		return nil
	}
	if err := userFields(q, &nu); err != nil {
		st, msg := errorStatus(err)
		return again(st, msg)
	}
	if nu.Email == q.sess.UserEmail && !nu.Enabled {
		return again(http.StatusBadRequest, "You cannot disable your own account.")
	}
	if err := h.opt.Admin.UpdateUser(q.r.Context(), nu); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return again(st, msg)
		}
		return err
	}
	if !nu.Enabled {
		if err := h.opt.Store.DeleteUserWebSessions(q.r.Context(), nu.Email, ""); err != nil {
			h.log.Warn("web: could not delete a session", "err", err)
		}
	}
	return q.done("/user/list/"+u.DomainName, "User "+displayName(u.Email)+" saved.")
}

func (h *Handler) userPasswordForm(q *request) error {
	u, err := q.managedUser(q.r.PathValue("email"))
	if err != nil {
		return err
	}
	if u.Email == q.sess.UserEmail {
		return q.redirect("/user/password")
	}
	q.render(http.StatusOK, "password", "Set the password of "+displayName(u.Email), map[string]any{"Target": u, "Action": h.opt.Prefix + "/user/password/" + u.Email})
	return nil
}

// userPassword is an admin setting someone else's password; their
// sessions end, and "force change" makes them pick their own next time.
func (h *Handler) userPassword(q *request) error {
	u, err := q.managedUser(q.r.PathValue("email"))
	if err != nil {
		return err
	}
	if u.Email == q.sess.UserEmail {
		return h.changeOwnPassword(q, h.opt.Prefix+"/user/password")
	}
	pw, pw2 := q.r.PostForm.Get("pw"), q.r.PostForm.Get("pw2")
	if msg := checkNewPassword(pw, pw2); msg != "" {
		q.render(http.StatusBadRequest, "password", "Set the password of "+displayName(u.Email), map[string]any{"Target": u, "Action": h.opt.Prefix + "/user/password/" + u.Email, "Error": msg})
		return nil
	}
	if err := h.setPassword(q, u.Email, pw, q.checkbox("change_pw_next_login")); err != nil {
		return err
	}
	if err := h.opt.Store.DeleteUserWebSessions(q.r.Context(), u.Email, ""); err != nil {
		return err
	}
	h.log.Info("web: password set by an admin", "user", u.Email, "by", q.sess.UserEmail)
	return q.done("/user/list/"+u.DomainName, "Password of "+displayName(u.Email)+" set.")
}

func (h *Handler) aliasList(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	prefix, after := q.r.URL.Query().Get("q"), q.r.URL.Query().Get("after")
	if len(prefix) > 255 || len(after) > 255 {
		return badRequest("The search is too long.")
	}
	as, err := h.opt.Store.ListAliasesPage(q.r.Context(), d.Name, prefix, after, pageSize+1)
	if err != nil {
		return err
	}
	next := ""
	if len(as) > pageSize {
		as = as[:pageSize]
		next = as[pageSize-1].Email
	}
	q.render(http.StatusOK, "aliases", "Aliases of "+displayName(d.Name), map[string]any{"Domain": d, "Aliases": as, "Next": next, "Query": prefix})
	return nil
}

func (h *Handler) aliasCreateForm(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "alias_form", "New alias in "+displayName(d.Name), map[string]any{"Domain": d, "Create": true, "Alias": store.Alias{DomainName: d.Name}})
	return nil
}

func (h *Handler) aliasCreate(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	a := store.Alias{Localpart: q.form("localpart"), DomainName: d.Name, Wildcard: q.checkbox("wildcard")}
	a.Comment = q.form("comment")
	again := func(status int, msg string) error {
		q.render(status, "alias_form", "New alias in "+displayName(d.Name), map[string]any{"Domain": d, "Create": true, "Alias": a, "Destination": q.form("destination"), "Error": msg})
		return nil
	}
	if msg := checkLocalpart(a.Localpart); msg != "" {
		return again(http.StatusBadRequest, msg)
	}
	dests, err := admin.ParseDestinations(q.form("destination"))
	if err != nil {
		st, msg := errorStatus(err)
		return again(st, msg)
	}
	a.Destination = dests
	created, err := h.opt.Admin.AddAlias(q.r.Context(), a, admin.CreateOptions{})
	if err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return again(st, msg)
		}
		return err
	}
	h.log.Info("web: alias created", "alias", created.Email, "by", q.sess.UserEmail)
	return q.done("/alias/list/"+d.Name, "Alias "+displayName(created.Email)+" created.")
}

// managedAlias loads the alias of the path if the user manages its domain.
func (h *Handler) managedAlias(q *request) (*store.Alias, error) {
	raw := q.r.PathValue("alias")
	at := strings.LastIndexByte(raw, '@')
	if at <= 0 {
		return nil, notFound("There is no alias %q.", raw)
	}
	dn, err := admin.NormalizeDomain(raw[at+1:])
	if err != nil {
		return nil, notFound("There is no alias %q.", raw)
	}
	if _, err := q.domain(dn); err != nil {
		return nil, err
	}
	email := strings.ToLower(raw[:at]) + "@" + dn
	a, err := h.opt.Store.GetAlias(q.r.Context(), email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("There is no alias %s.", email)
	}
	return a, err
}

func (h *Handler) aliasEditForm(q *request) error {
	a, err := h.managedAlias(q)
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "alias_form", "Edit "+displayName(a.Email), map[string]any{"Alias": a, "Destination": strings.Join(a.Destination, ", ")})
	return nil
}

func (h *Handler) aliasEdit(q *request) error {
	a, err := h.managedAlias(q)
	if err != nil {
		return err
	}
	na := *a
	na.Wildcard = q.checkbox("wildcard")
	na.Comment = q.form("comment")
	again := func(status int, msg string) error {
		q.render(status, "alias_form", "Edit "+displayName(a.Email), map[string]any{"Alias": na, "Destination": q.form("destination"), "Error": msg})
		return nil
	}
	if na.Destination, err = admin.ParseDestinations(q.form("destination")); err != nil {
		st, msg := errorStatus(err)
		return again(st, msg)
	}
	if err := h.opt.Admin.UpdateAlias(q.r.Context(), na); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return again(st, msg)
		}
		return err
	}
	return q.done("/alias/list/"+a.DomainName, "Alias "+displayName(a.Email)+" saved.")
}

func (h *Handler) aliasDelete(q *request) error {
	a, err := h.managedAlias(q)
	if err != nil {
		return err
	}
	if err := h.opt.Admin.DeleteAlias(q.r.Context(), a.Email); err != nil {
		return err
	}
	h.log.Info("web: alias deleted", "alias", a.Email, "by", q.sess.UserEmail)
	return q.done("/alias/list/"+a.DomainName, "Alias "+displayName(a.Email)+" deleted.")
}

// checkLocalpart accepts an RFC 5322 dot-atom local part (Mailu's forms
// take no quoted local parts either); "" when it is fine.
func checkLocalpart(l string) string {
	if l == "" {
		return "Enter the part before the @."
	}
	if len(l) > 80 {
		return "The part before the @ is longer than 80 characters."
	}
	for _, r := range l {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r)
		if !ok {
			return sprintf("The part before the @ may not contain %q: use letters, digits and !#$%%&'*+-/=?^_`{|}~.", r)
		}
	}
	if strings.HasPrefix(l, ".") || strings.HasSuffix(l, ".") || strings.Contains(l, "..") {
		return "The part before the @ may not start or end with a dot or hold two dots in a row."
	}
	return ""
}
