package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// Mailu's domain manager pages (ui/views/domains.py, alternatives.py,
// managers.py).
func (h *Handler) domainRoutes() {
	h.route("GET", "/domain", roleUser, h.domainList)
	h.route("GET", "/domain/details/{domain}", roleUser, h.domainDetails)
	h.route("GET", "/domain/details/{domain}/zonefile", roleUser, h.zonefile)
	h.route("GET", "/domain/genkeys/{domain}", roleUser, func(q *request) error {
		d, err := q.domain(q.r.PathValue("domain"))
		if err != nil {
			return err
		}
		return confirm(q, "Regenerate the DKIM key of "+displayName(d.Name)+"? Mail signed with the new key verifies only once its record is published.", "Regenerate keys")
	})
	h.route("POST", "/domain/genkeys/{domain}", roleUser, h.genkeys)

	h.route("GET", "/alternative/list/{domain}", roleUser, h.alternativeList)
	h.route("POST", "/alternative/create/{domain}", roleUser, h.alternativeCreate)
	h.route("POST", "/alternative/delete/{alt}", roleUser, h.alternativeDelete)

	h.route("GET", "/manager/list/{domain}", roleUser, h.managerList)
	h.route("POST", "/manager/create/{domain}", roleUser, h.managerCreate)
	h.route("POST", "/manager/delete/{domain}/{email}", roleUser, h.managerDelete)
}

// confirm shows Mailu's confirmation page: the same URL, posted, acts.
func confirm(q *request, question, button string) error {
	q.render(http.StatusOK, "confirm", "Confirm", map[string]any{"Question": question, "Button": button, "Action": q.r.URL.Path})
	return nil
}

type domainRow struct {
	store.Domain
	Users, Aliases int
}

func (h *Handler) domainList(q *request) error {
	ctx := q.r.Context()
	var ds []store.Domain
	if q.sess.GlobalAdmin() {
		var err error
		if ds, err = h.opt.Store.ListDomains(ctx); err != nil {
			return err
		}
	} else {
		if len(q.sess.Managed) == 0 {
			return forbidden("You manage no domain.")
		}
		for _, n := range q.sess.Managed {
			d, err := h.opt.Store.GetDomain(ctx, n)
			if err != nil {
				return err
			}
			ds = append(ds, *d)
		}
	}
	rows := make([]domainRow, 0, len(ds))
	for _, d := range ds {
		nu, err := h.opt.Store.CountUsers(ctx, d.Name)
		if err != nil {
			return err
		}
		na, err := h.opt.Store.CountAliases(ctx, d.Name)
		if err != nil {
			return err
		}
		rows = append(rows, domainRow{Domain: d, Users: nu, Aliases: na})
	}
	q.render(http.StatusOK, "domains", "Mail domains", map[string]any{"Domains": rows})
	return nil
}

// dnsBlock is the records of one name (the domain or an alternative).
type dnsBlock struct {
	Name    string
	Records []msgauth.Record
	NoKey   bool
}

func (h *Handler) records(q *request, name string) (dnsBlock, error) {
	b := dnsBlock{Name: name}
	info, err := h.opt.Admin.DKIM(q.r.Context(), name)
	if err != nil {
		return b, err
	}
	b.NoKey = info.Record == ""
	if h.opt.Records != nil {
		if b.Records, err = h.opt.Records(info); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (h *Handler) domainDetails(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	alts, err := h.opt.Store.ListAlternatives(q.r.Context(), d.Name)
	if err != nil {
		return err
	}
	var blocks []dnsBlock
	for _, n := range append([]string{d.Name}, altNames(alts)...) {
		b, err := h.records(q, n)
		if err != nil {
			return err
		}
		blocks = append(blocks, b)
	}
	q.render(http.StatusOK, "domain_details", "Domain "+displayName(d.Name), map[string]any{"Domain": d, "Blocks": blocks})
	return nil
}

func altNames(alts []store.Alternative) []string {
	out := make([]string, len(alts))
	for i, a := range alts {
		out[i] = a.Name
	}
	return out
}

// zonefile is Mailu's "Download zonefile": the records of the domain and
// its alternatives as zone-file lines.
func (h *Handler) zonefile(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	alts, err := h.opt.Store.ListAlternatives(q.r.Context(), d.Name)
	if err != nil {
		return err
	}
	var all []msgauth.Record
	for _, n := range append([]string{d.Name}, altNames(alts)...) {
		b, err := h.records(q, n)
		if err != nil {
			return err
		}
		all = append(all, b.Records...)
	}
	q.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	q.w.Header().Set("Content-Disposition", `attachment; filename="`+d.Name+`.zone"`)
	_, err = q.w.Write([]byte(msgauth.Zone(all)))
	return err
}

func (h *Handler) genkeys(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	if _, err := h.opt.Admin.RegenerateDKIM(q.r.Context(), d.Name); err != nil {
		return err
	}
	h.log.Info("web: DKIM key regenerated", "domain", d.Name, "by", q.sess.UserEmail)
	return q.done("/domain/details/"+d.Name, "A new DKIM key was generated; publish its record.")
}

func (h *Handler) alternativeList(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	return h.renderAlternatives(q, d, http.StatusOK, "", "")
}

func (h *Handler) renderAlternatives(q *request, d *store.Domain, status int, msg, name string) error {
	alts, err := h.opt.Store.ListAlternatives(q.r.Context(), d.Name)
	if err != nil {
		return err
	}
	q.render(status, "alternatives", "Alternative domains of "+displayName(d.Name), map[string]any{"Domain": d, "Alternatives": alts, "Error": msg, "Name": name})
	return nil
}

func (h *Handler) alternativeCreate(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	name := q.form("name")
	if _, err := h.opt.Admin.CreateAlternative(q.r.Context(), name, d.Name); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return h.renderAlternatives(q, d, st, msg, name)
		}
		return err
	}
	return q.done("/alternative/list/"+d.Name, "Alternative domain created.")
}

func (h *Handler) alternativeDelete(q *request) error {
	n, err := admin.NormalizeDomain(q.r.PathValue("alt"))
	if err != nil {
		return notFound("There is no alternative domain %q.", q.r.PathValue("alt"))
	}
	alt, err := h.opt.Store.GetAlternative(q.r.Context(), n)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("There is no alternative domain %s.", n)
	}
	if err != nil {
		return err
	}
	if _, err := q.domain(alt.DomainName); err != nil {
		return err
	}
	if err := h.opt.Admin.DeleteAlternative(q.r.Context(), n); err != nil {
		return err
	}
	return q.done("/alternative/list/"+alt.DomainName, "Alternative domain deleted.")
}

func (h *Handler) managerList(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	return h.renderManagers(q, d, http.StatusOK, "", "")
}

func (h *Handler) renderManagers(q *request, d *store.Domain, status int, msg, email string) error {
	ms, err := h.opt.Store.ListManagers(q.r.Context(), d.Name)
	if err != nil {
		return err
	}
	q.render(status, "managers", "Managers of "+displayName(d.Name), map[string]any{"Domain": d, "Managers": ms, "Error": msg, "Email": email})
	return nil
}

// managerCreate makes a user a manager. A manager may only promote users
// they themselves may manage.
func (h *Handler) managerCreate(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	email := q.form("email")
	e, err := admin.NormalizeEmail(email)
	if err != nil {
		return h.renderManagers(q, d, http.StatusBadRequest, err.Error(), email)
	}
	if _, err := q.managedUser(e); err != nil {
		if st, msg := errorStatus(err); st == http.StatusNotFound {
			return h.renderManagers(q, d, st, msg, email)
		}
		return err
	}
	if err := h.opt.Admin.SetManager(q.r.Context(), d.Name, e); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return h.renderManagers(q, d, st, msg, email)
		}
		return err
	}
	h.log.Info("web: manager added", "domain", d.Name, "manager", e, "by", q.sess.UserEmail)
	return q.done("/manager/list/"+d.Name, e+" now manages "+displayName(d.Name)+".")
}

func (h *Handler) managerDelete(q *request) error {
	d, err := q.domain(q.r.PathValue("domain"))
	if err != nil {
		return err
	}
	e, err := admin.NormalizeEmail(q.r.PathValue("email"))
	if err != nil {
		return notFound("There is no manager %q.", q.r.PathValue("email"))
	}
	if e != q.sess.UserEmail {
		if _, err := q.managedUser(e); err != nil && !errors.Is(err, store.ErrNotFound) {
			var he *httpError
			if !errors.As(err, &he) || he.status != http.StatusNotFound {
				return err
			}
		}
	}
	if err := h.opt.Admin.RemoveManager(q.r.Context(), d.Name, e); err != nil {
		return err
	}
	return q.done("/manager/list/"+d.Name, e+" no longer manages "+displayName(d.Name)+".")
}

// formInt reads an integer field; empty gives def.
func formInt(q *request, name string, def int64) (int64, error) {
	s := q.form(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return 0, badRequest("%s must be a whole number.", strings.ReplaceAll(name, "_", " "))
	}
	return n, nil
}
