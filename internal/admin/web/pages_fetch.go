package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// Fetches is what the fetched accounts pages need (FETCHMAIL_ENABLED).
type Fetches struct {
	Store store.Fetches
	// Seal turns a password into its stored form (internal/fetch's
	// Sealer, under a key derived from SECRET_KEY).
	Seal func(password string) (string, error)
}

// Mailu's fetched accounts pages (ui/views/fetches.py): a user's own at
// /fetch/list, a managed user's at /fetch/list/{email}.
func (h *Handler) fetchRoutes() {
	if h.opt.Fetches == nil {
		return
	}
	own := func(fn func(*request, *store.User) error) func(*request) error {
		return func(q *request) error { return fn(q, q.sess.User) }
	}
	managed := func(fn func(*request, *store.User) error) func(*request) error {
		return func(q *request) error {
			u, err := q.managedUser(q.r.PathValue("email"))
			if err != nil {
				return err
			}
			return fn(q, u)
		}
	}
	h.route("GET", "/fetch/list", roleUser, own(h.fetchList))
	h.route("GET", "/fetch/list/{email}", roleUser, managed(h.fetchList))
	h.route("GET", "/fetch/create", roleUser, own(h.fetchCreateForm))
	h.route("GET", "/fetch/create/{email}", roleUser, managed(h.fetchCreateForm))
	h.route("POST", "/fetch/create", roleUser, own(h.fetchCreate))
	h.route("POST", "/fetch/create/{email}", roleUser, managed(h.fetchCreate))
	h.route("GET", "/fetch/edit/{id}", roleUser, func(q *request) error {
		f, err := h.fetchOf(q)
		if err != nil {
			return err
		}
		return h.fetchForm(q, http.StatusOK, f, false, "")
	})
	h.route("POST", "/fetch/edit/{id}", roleUser, h.fetchEdit)
	h.route("POST", "/fetch/delete/{id}", roleUser, h.fetchDelete)
}

// fetchBack is the list a fetch page returns to.
func (q *request) fetchBack(user string) string {
	if user == q.sess.UserEmail {
		return "/fetch/list"
	}
	return "/fetch/list/" + user
}

func (h *Handler) fetchList(q *request, u *store.User) error {
	fs, err := h.opt.Fetches.Store.ListFetches(q.r.Context(), u.Email)
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "fetches", "Fetched accounts of "+displayName(u.Email), map[string]any{
		"User": u, "Own": u.Email == q.sess.UserEmail, "Fetches": fs,
	})
	return nil
}

func (h *Handler) fetchCreateForm(q *request, u *store.User) error {
	// Mailu's form defaults: IMAP on 993 with TLS, INBOX and Junk.
	f := &store.Fetch{UserEmail: u.Email, Protocol: "imap", Port: 993, TLS: true, Folders: []string{"INBOX", "Junk"}}
	return h.fetchForm(q, http.StatusOK, f, true, "")
}

func (h *Handler) fetchForm(q *request, status int, f *store.Fetch, create bool, msg string) error {
	title := "Edit fetched account"
	if create {
		title = "New fetched account for " + displayName(f.UserEmail)
	}
	q.render(status, "fetch_form", title, map[string]any{
		"Fetch": f, "Create": create, "Own": f.UserEmail == q.sess.UserEmail, "Folders": strings.Join(f.Folders, ","), "Error": msg,
	})
	return nil
}

// fetchOf loads the account of the path's id, if the session may manage
// its user (the user themselves or a manager who outranks them).
func (h *Handler) fetchOf(q *request) (*store.Fetch, error) {
	id, err := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, notFound("There is no fetched account %q.", q.r.PathValue("id"))
	}
	f, err := h.opt.Fetches.Store.GetFetch(q.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("There is no fetched account %d.", id)
	}
	if err != nil {
		return nil, err
	}
	if _, err := q.managedUser(f.UserEmail); err != nil {
		return nil, err
	}
	return f, nil
}

// readFetchForm copies the form into f; a blank password keeps the
// stored one when editing. It returns the message to show, "" if valid.
func (h *Handler) readFetchForm(q *request, f *store.Fetch, create bool) string {
	f.Protocol = strings.ToLower(q.form("protocol"))
	f.Host = strings.ToLower(strings.TrimSuffix(q.form("host"), "."))
	f.TLS, f.Keep, f.Scan = q.checkbox("tls"), q.checkbox("keep"), q.checkbox("scan")
	f.Username = q.form("username")
	f.Comment = q.form("comment")
	f.Folders = nil
	for _, s := range strings.Split(q.form("folders"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.Folders = append(f.Folders, s)
		}
	}
	port, err := strconv.Atoi(q.form("port"))
	f.Port = port
	pw := q.r.PostForm.Get("password")
	switch {
	case f.Protocol != "imap" && f.Protocol != "pop3":
		return "Choose IMAP or POP3."
	case f.Host == "" || strings.ContainsAny(f.Host, " /:@\\"):
		return "Enter the remote server's host name."
	case err != nil || port < 1 || port > 65535:
		return "The port must be a number from 1 to 65535 (993 for IMAP with TLS, 995 for POP3 with TLS)."
	case f.Username == "":
		return "Enter the username of the remote account."
	case pw == "" && create:
		return "Enter the password of the remote account."
	case len(f.Comment) > 255:
		return "The comment is longer than 255 characters."
	}
	if pw != "" {
		sealed, err := h.opt.Fetches.Seal(pw)
		if err != nil {
			return "The password could not be stored."
		}
		f.Password = sealed
	}
	return ""
}

func (h *Handler) fetchCreate(q *request, u *store.User) error {
	f := &store.Fetch{UserEmail: u.Email}
	if msg := h.readFetchForm(q, f, true); msg != "" {
		f.Password = ""
		return h.fetchForm(q, http.StatusBadRequest, f, true, msg)
	}
	if err := h.opt.Fetches.Store.CreateFetch(q.r.Context(), f); err != nil {
		return err
	}
	h.log.Info("web: fetched account created", "user", u.Email, "remote", f.Protocol+"://"+f.Host, "by", q.sess.UserEmail)
	return q.done(q.fetchBack(u.Email), fmt.Sprintf("Fetched account %s@%s created.", f.Username, f.Host))
}

func (h *Handler) fetchEdit(q *request) error {
	f, err := h.fetchOf(q)
	if err != nil {
		return err
	}
	if msg := h.readFetchForm(q, f, false); msg != "" {
		return h.fetchForm(q, http.StatusBadRequest, f, false, msg)
	}
	if err := h.opt.Fetches.Store.UpdateFetch(q.r.Context(), f); err != nil {
		return err
	}
	return q.done(q.fetchBack(f.UserEmail), "Fetched account saved.")
}

func (h *Handler) fetchDelete(q *request) error {
	f, err := h.fetchOf(q)
	if err != nil {
		return err
	}
	if err := h.opt.Fetches.Store.DeleteFetch(context.WithoutCancel(q.r.Context()), f.ID); err != nil {
		return err
	}
	h.log.Info("web: fetched account deleted", "user", f.UserEmail, "id", f.ID, "by", q.sess.UserEmail)
	return q.done(q.fetchBack(f.UserEmail), "Fetched account deleted.")
}
