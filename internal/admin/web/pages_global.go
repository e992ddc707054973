package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

// Mailu's global admin pages (ui/views/domains.py, admins.py, relays.py,
// base.py announcement) and Petrel's status page.
func (h *Handler) globalRoutes() {
	h.route("GET", "/domain/create", roleUser, h.global(func(q *request) error {
		q.render(http.StatusOK, "domain_form", "New domain", map[string]any{"Create": true, "Domain": admin.NewDomain("")})
		return nil
	}))
	h.route("POST", "/domain/create", roleUser, h.global(h.domainCreate))
	h.route("GET", "/domain/edit/{domain}", roleUser, h.global(func(q *request) error {
		d, err := q.domain(q.r.PathValue("domain"))
		if err != nil {
			return err
		}
		q.render(http.StatusOK, "domain_form", "Edit "+displayName(d.Name), map[string]any{"Domain": d})
		return nil
	}))
	h.route("POST", "/domain/edit/{domain}", roleUser, h.global(h.domainEdit))
	h.route("GET", "/domain/delete/{domain}", roleUser, h.global(func(q *request) error {
		d, err := q.domain(q.r.PathValue("domain"))
		if err != nil {
			return err
		}
		return confirm(q, "Delete the domain "+displayName(d.Name)+" with all its users, their mail, aliases and alternatives?", "Delete")
	}))
	h.route("POST", "/domain/delete/{domain}", roleUser, h.global(h.domainDelete))

	h.route("GET", "/admin/list", roleUser, h.global(h.adminList))
	h.route("POST", "/admin/create", roleUser, h.global(h.adminCreate))
	h.route("POST", "/admin/delete/{email}", roleUser, h.global(h.adminDelete))

	h.route("GET", "/relay", roleUser, h.global(h.relayList))
	h.route("GET", "/relay/create", roleUser, h.global(func(q *request) error {
		q.render(http.StatusOK, "relay_form", "New relayed domain", map[string]any{"Create": true, "Relay": store.Relay{}})
		return nil
	}))
	h.route("POST", "/relay/create", roleUser, h.global(h.relayCreate))
	h.route("GET", "/relay/edit/{name}", roleUser, h.global(func(q *request) error {
		r, err := h.relay(q)
		if err != nil {
			return err
		}
		q.render(http.StatusOK, "relay_form", "Edit "+displayName(r.Name), map[string]any{"Relay": r})
		return nil
	}))
	h.route("POST", "/relay/edit/{name}", roleUser, h.global(h.relayEdit))
	h.route("POST", "/relay/delete/{name}", roleUser, h.global(h.relayDelete))

	h.route("GET", "/announcement", roleUser, h.global(func(q *request) error {
		if h.opt.Announce == nil {
			return notFound("Announcements are not available.")
		}
		q.render(http.StatusOK, "announcement", "Announcement", nil)
		return nil
	}))
	h.route("POST", "/announcement", roleUser, h.global(h.announce))
	h.route("GET", "/status", roleUser, h.global(h.status))
	h.route("GET", "/tlsrpt", roleUser, h.global(h.tlsReports))
}

// tlsReports lists the TLS-RPT reports (RFC 8460) other mail servers sent
// about their sessions to us, as `petrel tlsrpt` does.
func (h *Handler) tlsReports(q *request) error {
	rs, ok := h.opt.Store.(store.ReceivedTLSReports)
	if !ok {
		return notFound("This store keeps no TLS reports.")
	}
	rows, err := rs.ReceivedTLSReports(q.r.Context(), "")
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "tlsreports", "TLS reports", map[string]any{"Reports": rows})
	return nil
}

// global wraps a handler that only global admins may use.
func (h *Handler) global(fn func(*request) error) func(*request) error {
	return func(q *request) error {
		if err := q.needGlobal(); err != nil {
			h.log.Warn("web: global admin page refused", "user", q.sess.UserEmail, "path", q.r.URL.Path)
			return err
		}
		return fn(q)
	}
}

// domainFields reads the limits of the domain form (quota in MB, as Mailu).
func domainFields(q *request, d *store.Domain) error {
	mu, err := formInt(q, "max_users", int64(d.MaxUsers))
	if err != nil {
		return err
	}
	ma, err := formInt(q, "max_aliases", int64(d.MaxAliases))
	if err != nil {
		return err
	}
	mq, err := formInt(q, "max_quota_mb", d.MaxQuotaBytes/1000000)
	if err != nil {
		return err
	}
	if mu < -1 || mu > 1<<31 || ma < -1 || ma > 1<<31 || mq < 0 || mq > 1<<40 {
		return badRequest("Limits must be -1 (unlimited) or more; the quota 0 (unlimited) or more.")
	}
	d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes = int(mu), int(ma), mq*1000000
	d.SignupEnabled = q.checkbox("signup_enabled")
	d.Comment = q.form("comment")
	return nil
}

func (h *Handler) domainCreate(q *request) error {
	d := admin.NewDomain(q.form("name"))
	again := func(status int, msg string) error {
		q.render(status, "domain_form", "New domain", map[string]any{"Create": true, "Domain": d, "Error": msg})
		return nil
	}
	if err := domainFields(q, &d); err != nil {
		st, msg := errorStatus(err)
		return again(st, msg)
	}
	created, err := h.opt.Admin.AddDomain(q.r.Context(), d)
	if err != nil && !errors.Is(err, admin.ErrDKIMKey) {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return again(st, msg)
		}
		return err
	}
	h.log.Info("web: domain created", "domain", created.Name, "by", q.sess.UserEmail)
	msg := "Domain " + displayName(created.Name) + " created."
	if err != nil {
		msg += " " + err.Error()
	}
	return q.done("/domain", msg)
}

func (h *Handler) domainEdit(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	nd := *d
	again := func(status int, msg string) error {
		q.render(status, "domain_form", "Edit "+displayName(d.Name), map[string]any{"Domain": nd, "Error": msg})
		return nil
	}
	if err := domainFields(q, &nd); err != nil {
		st, msg := errorStatus(err)
		return again(st, msg)
	}
	if err := h.opt.Admin.UpdateDomain(q.r.Context(), nd); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return again(st, msg)
		}
		return err
	}
	return q.done("/domain", "Domain "+displayName(d.Name)+" saved.")
}

func (h *Handler) domainDelete(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	if d.Name == q.sess.User.DomainName {
		return badRequest("You cannot delete the domain of your own account.")
	}
	if err := h.opt.Admin.DeleteDomain(q.r.Context(), d.Name); err != nil {
		return err
	}
	h.log.Info("web: domain deleted", "domain", d.Name, "by", q.sess.UserEmail)
	return q.done("/domain", "Domain "+displayName(d.Name)+" deleted.")
}

func (h *Handler) adminList(q *request) error { return h.renderAdmins(q, http.StatusOK, "", "") }

func (h *Handler) renderAdmins(q *request, status int, msg, email string) error {
	admins, err := h.opt.Store.ListGlobalAdmins(q.r.Context())
	if err != nil {
		return err
	}
	q.render(status, "admins", "Global administrators", map[string]any{"Admins": admins, "Error": msg, "Email": email})
	return nil
}

func (h *Handler) setGlobalAdmin(q *request, email string, on bool) error {
	e, err := admin.NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, err := h.opt.Store.GetUser(q.r.Context(), e)
	if errors.Is(err, store.ErrNotFound) {
		return &admin.Error{Msg: "user " + e + " does not exist", Err: store.ErrNotFound}
	}
	if err != nil {
		return err
	}
	u.GlobalAdmin = on
	return h.opt.Admin.UpdateUser(q.r.Context(), *u)
}

func (h *Handler) adminCreate(q *request) error {
	email := q.form("email")
	if err := h.setGlobalAdmin(q, email, true); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return h.renderAdmins(q, st, msg, email)
		}
		return err
	}
	h.log.Info("web: global admin added", "user", email, "by", q.sess.UserEmail)
	return q.done("/admin/list", email+" is now a global administrator.")
}

func (h *Handler) adminDelete(q *request) error {
	email := q.r.PathValue("email")
	if e, _ := admin.NormalizeEmail(email); e == q.sess.UserEmail {
		return badRequest("You cannot remove your own global administrator role.")
	}
	if err := h.setGlobalAdmin(q, email, false); err != nil {
		return err
	}
	h.log.Info("web: global admin removed", "user", email, "by", q.sess.UserEmail)
	return q.done("/admin/list", email+" is no longer a global administrator.")
}

func (h *Handler) relayList(q *request) error {
	rs, err := h.opt.Store.ListRelays(q.r.Context())
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "relays", "Relayed domains", map[string]any{"Relays": rs})
	return nil
}

func (h *Handler) relay(q *request) (*store.Relay, error) {
	n, err := admin.NormalizeDomain(q.r.PathValue("name"))
	if err != nil {
		return nil, notFound("There is no relayed domain %q.", q.r.PathValue("name"))
	}
	r, err := h.opt.Store.GetRelay(q.r.Context(), n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("There is no relayed domain %s.", n)
	}
	return r, err
}

func (h *Handler) relayCreate(q *request) error {
	r := store.Relay{Name: q.form("name"), SMTP: q.form("smtp")}
	r.Comment = q.form("comment")
	created, err := h.opt.Admin.CreateRelay(q.r.Context(), r)
	if err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			q.render(st, "relay_form", "New relayed domain", map[string]any{"Create": true, "Relay": r, "Error": msg})
			return nil
		}
		return err
	}
	return q.done("/relay", "Relayed domain "+displayName(created.Name)+" created.")
}

func (h *Handler) relayEdit(q *request) error {
	r, err := h.relay(q)
	if err != nil {
		return err
	}
	nr := *r
	nr.SMTP, nr.Comment = q.form("smtp"), q.form("comment")
	if err := h.opt.Admin.UpdateRelay(q.r.Context(), nr); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			q.render(st, "relay_form", "Edit "+displayName(r.Name), map[string]any{"Relay": nr, "Error": msg})
			return nil
		}
		return err
	}
	return q.done("/relay", "Relayed domain "+displayName(r.Name)+" saved.")
}

func (h *Handler) relayDelete(q *request) error {
	r, err := h.relay(q)
	if err != nil {
		return err
	}
	if err := h.opt.Admin.DeleteRelay(q.r.Context(), r.Name); err != nil {
		return err
	}
	return q.done("/relay", "Relayed domain "+displayName(r.Name)+" deleted.")
}

// announce mails subject and body to every user (Mailu: /announcement).
func (h *Handler) announce(q *request) error {
	if h.opt.Announce == nil {
		return notFound("Announcements are not available.")
	}
	subject, body := q.form("announcement_subject"), strings.ReplaceAll(q.r.PostForm.Get("announcement_body"), "\r\n", "\n")
	again := func(msg string) error {
		q.render(http.StatusBadRequest, "announcement", "Announcement", map[string]any{"Subject": subject, "Body": body, "Error": msg})
		return nil
	}
	switch {
	case subject == "" || strings.TrimSpace(body) == "":
		return again("An announcement needs a subject and a body.")
	case len(subject) > 255 || strings.ContainsAny(subject, "\r\n"):
		return again("The subject must be one line of at most 255 characters.")
	case len(body) > 60000:
		return again("The body is longer than 60000 characters.")
	}
	n, err := h.opt.Announce.Announce(q.r.Context(), subject, body)
	if err != nil {
		return err
	}
	h.log.Info("web: announcement sent", "users", n, "by", q.sess.UserEmail)
	return q.done("/announcement", sprintf("The announcement was delivered to %d users.", n))
}
