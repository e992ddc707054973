package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

const (
	sessionCookie = "petrel_session"
	loginCookie   = "petrel_login" // CSRF token of the sign-in form, before any session
	flashCookie   = "petrel_flash"
	csrfField     = "csrf_token"
	// touchEvery: SeenAt is written at most this often, not on every page.
	touchEvery = time.Minute
	// maxTOTPFailures wrong second-factor codes in totpWindow lock the
	// account's second factor (and so its web sign-in) until the window
	// ends: 10 guesses an hour make guessing a 6-digit code hopeless.
	maxTOTPFailures = 10
	totpWindow      = time.Hour
	maxForm         = 64 << 10 // body limit of every form
)

// role is what a route needs.
type role int

const (
	roleAnon     role = iota // anyone (sign-in pages, client setup)
	roleTOTP                 // password checked, second factor due
	rolePwChange             // signed in, even while a password change is forced
	roleUser                 // signed in
)

// session is the signed-in user as one request sees it.
type session struct {
	store.WebSession
	User    *store.User
	Managed []string // domains the user manages
}

// GlobalAdmin reports the global admin role.
func (s *session) GlobalAdmin() bool { return s != nil && s.User.GlobalAdmin }

// Manager reports whether the user manages any domain (or is global admin).
func (s *session) Manager() bool { return s != nil && (s.User.GlobalAdmin || len(s.Managed) > 0) }

// request is one request being served.
type request struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	sess  *session
	flash string
	csrf  string // sign-in form token when there is no session
}

// httpError is an error with the status and text the user sees.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func forbidden(format string, a ...any) error {
	return &httpError{http.StatusForbidden, sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &httpError{http.StatusNotFound, sprintf(format, a...)}
}

func badRequest(format string, a ...any) error {
	return &httpError{http.StatusBadRequest, sprintf(format, a...)}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, need role, fn func(*request) error) {
	q := &request{h: h, w: w, r: r}
	w.Header().Set("Cache-Control", "no-store")
	if c, err := r.Cookie(flashCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(b) < 512 {
			q.flash = string(b)
		}
		h.setCookie(w, flashCookie, "", -1)
	}
	sess, err := h.loadSession(r)
	if err != nil {
		h.fail(q, err)
		return
	}
	q.sess = sess
	if sess != nil && sess.Stage == "totp" && need != roleAnon && need != roleTOTP {
		sess = nil // half signed in: only the second-factor page
		q.sess = nil
	}
	switch {
	case need == roleTOTP && (q.sess == nil || q.sess.Stage != "totp"):
		h.redirect(w, r, "/sso/login")
		return
	case need >= rolePwChange && q.sess == nil:
		next := r.URL.Path
		if r.Method != http.MethodGet {
			next = ""
		}
		h.redirect(w, r, "/sso/login"+nextQuery(next))
		return
	case need == roleUser && q.sess.User.ChangePwNextLogin:
		// Mailu: change_pw_next_login sends every page to /sso/pw_change.
		h.redirect(w, r, "/sso/pw_change")
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			h.fail(q, badRequest("the form could not be read (too large?)"))
			return
		}
		if !q.checkCSRF() {
			h.log.Warn("form without a valid CSRF token refused", "path", r.URL.Path, "user", q.userEmail())
			h.fail(q, forbidden("The form has expired or did not come from this site. Reload the page and try again."))
			return
		}
	}
	if err := fn(q); err != nil {
		h.fail(q, err)
	}
}

func nextQuery(next string) string {
	if next == "" {
		return ""
	}
	return "?next=" + url.QueryEscape(next)
}

func (q *request) userEmail() string {
	if q.sess == nil {
		return ""
	}
	return q.sess.UserEmail
}

// fail shows err: a httpError with its status, an admin error mapped to
// 400/404/409, anything else as a 500 with the detail only in the log.
func (h *Handler) fail(q *request, err error) {
	status, msg := errorStatus(err)
	if status == http.StatusInternalServerError {
		h.log.Error("web request failed", "path", q.r.URL.Path, "user", q.userEmail(), "err", err)
		msg = "Internal error; the server log has the details."
	}
	q.render(status, "error", "Error", map[string]any{"Message": msg})
}

func errorStatus(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.msg
	}
	var ae *admin.Error
	if errors.As(err, &ae) {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return http.StatusNotFound, ae.Msg
		case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNameInUse), errors.Is(err, store.ErrLimit):
			return http.StatusConflict, ae.Msg
		default:
			return http.StatusBadRequest, ae.Msg
		}
	}
	switch {
	case errors.Is(err, admin.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "Not found."
	}
	return http.StatusInternalServerError, ""
}

func hashID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go >= 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loadSession finds the request's session, ending it when it is past its
// lifetime or idle too long. No cookie or an unknown one is no session.
func (h *Handler) loadSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) < 16 || len(c.Value) > 128 {
		return nil, nil
	}
	ctx := r.Context()
	ws, err := h.opt.Store.GetWebSession(ctx, hashID(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := h.now()
	if now.After(ws.ExpiresAt) || !ws.Remember && now.Sub(ws.SeenAt) > h.opt.SessionTimeout {
		if err := h.opt.Store.DeleteWebSession(ctx, ws.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, nil
	}
	u, err := h.opt.Store.GetUser(ctx, ws.UserEmail)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // the foreign key removes its sessions too
	}
	if err != nil {
		return nil, err
	}
	if !u.Enabled {
		if err := h.opt.Store.DeleteWebSession(ctx, ws.ID); err != nil {
			h.log.Warn("web: could not delete a session", "err", err)
		}
		return nil, nil
	}
	if now.Sub(ws.SeenAt) > touchEvery {
		if err := h.opt.Store.TouchWebSession(ctx, ws.ID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	managed, err := h.opt.Store.ManagedDomains(ctx, u.Email)
	if err != nil {
		return nil, err
	}
	return &session{WebSession: *ws, User: u, Managed: managed}, nil
}

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.opt.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// checkCSRF compares the form's token with the session's (or, on the
// sign-in form, with the login cookie's) in constant time.
func (q *request) checkCSRF() bool {
	want := ""
	if q.sess != nil {
		want = q.sess.CSRF
	} else if c, err := q.r.Cookie(loginCookie); err == nil {
		want = c.Value
	}
	got := q.r.PostForm.Get(csrfField)
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// token is the CSRF token forms on this page carry.
func (q *request) token() string {
	if q.sess != nil {
		return q.sess.CSRF
	}
	if q.csrf == "" {
		if c, err := q.r.Cookie(loginCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
			q.csrf = c.Value
		} else {
			q.csrf = randomToken()
			q.h.setCookie(q.w, loginCookie, q.csrf, 0)
		}
	}
	return q.csrf
}

func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// redirect sends the browser to path below Prefix.
func (q *request) redirect(path string) error {
	q.h.redirect(q.w, q.r, q.h.opt.Prefix+path)
	return nil
}

// done redirects after a successful change with a message for the next page.
func (q *request) done(path, msg string) error {
	q.h.setCookie(q.w, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), 60)
	return q.redirect(path)
}

func (q *request) form(name string) string { return strings.TrimSpace(q.r.PostForm.Get(name)) }

func (q *request) checkbox(name string) bool { return q.r.PostForm.Get(name) != "" }

// safeNext accepts only a local path below Prefix as the after-login target.
func (h *Handler) safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, h.opt.Prefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return h.opt.Prefix + "/"
	}
	return next
}

func (h *Handler) loginForm(q *request) error {
	if q.sess != nil && q.sess.Stage == "" {
		return q.redirect("/")
	}
	q.render(http.StatusOK, "login", "Sign in", map[string]any{"Next": q.r.URL.Query().Get("next")})
	return nil
}

func (h *Handler) loginPost(q *request) error {
	email, password := q.form("email"), q.r.PostForm.Get("pw")
	next := h.safeNext(q.form("next"))
	again := func(status int, msg string) error {
		q.render(status, "login", "Sign in", map[string]any{"Next": q.form("next"), "Email": email, "Error": msg})
		return nil
	}
	if email == "" || password == "" || len(email) > 255 || len(password) > 1024 {
		return again(http.StatusBadRequest, "Enter your email address and password.")
	}
	res, err := h.opt.Auth.Authenticate(q.r.Context(), auth.Attempt{
		Username: email, Password: auth.Secret(password), Protocol: "web", Port: h.opt.Port, Remote: h.clientIP(q.r),
	})
	switch {
	case errors.Is(err, auth.ErrRateLimited):
		return again(http.StatusTooManyRequests, "Too many failed sign-ins. Try again later.")
	case errors.Is(err, auth.ErrBadCredentials):
		return again(http.StatusUnauthorized, "Wrong email address or password.")
	case err != nil:
		return err
	case res.ViaToken:
		// Mailu: app tokens are for mail clients, the web takes passwords.
		h.log.Warn("web sign-in with an app token refused", "user", res.User.Email)
		return again(http.StatusUnauthorized, "Wrong email address or password.")
	}
	u := res.User
	stage := ""
	if t, err := h.opt.Store.GetTOTP(q.r.Context(), u.Email); err == nil && t.Enabled {
		stage = "totp"
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := h.startSession(q, u.Email, stage, q.checkbox("remember")); err != nil {
		return err
	}
	h.log.Info("web sign-in", "user", u.Email, "second_factor", stage == "totp")
	h.setCookie(q.w, loginCookie, "", -1)
	switch {
	case stage == "totp":
		h.redirect(q.w, q.r, "/sso/totp"+nextQuery(next))
	case u.ChangePwNextLogin:
		h.redirect(q.w, q.r, "/sso/pw_change")
	default:
		h.redirect(q.w, q.r, next)
	}
	return nil
}

// startSession replaces any session of this browser with a new one (a new
// id at every sign-in: no session fixation).
func (h *Handler) startSession(q *request, email, stage string, remember bool) error {
	if q.sess != nil {
		if err := h.opt.Store.DeleteWebSession(q.r.Context(), q.sess.ID); err != nil {
			h.log.Warn("web: could not delete a session", "err", err)
		}
	}
	secret := randomToken()
	now := h.now()
	ws := &store.WebSession{
		ID: hashID(secret), UserEmail: email, CSRF: randomToken(), Stage: stage, Remember: remember,
		CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(h.opt.SessionLifetime),
	}
	if err := h.opt.Store.CreateWebSession(q.r.Context(), ws); err != nil {
		return err
	}
	maxAge := 0 // a browser-session cookie; the idle timeout ends it server-side
	if remember {
		maxAge = int(h.opt.SessionLifetime / time.Second)
	}
	h.setCookie(q.w, sessionCookie, secret, maxAge)
	return nil
}

func (h *Handler) totpForm(q *request) error {
	q.render(http.StatusOK, "totp", "Two-factor sign-in", map[string]any{"Next": q.r.URL.Query().Get("next")})
	return nil
}

func (h *Handler) totpPost(q *request) error {
	ctx := q.r.Context()
	t, err := h.opt.Store.GetTOTP(ctx, q.sess.UserEmail)
	if err != nil {
		return err
	}
	ok, locked, err := h.checkCode(q, t, q.form("code"))
	if err != nil {
		return err
	}
	if locked {
		if err := h.opt.Store.DeleteWebSession(ctx, q.sess.ID); err != nil {
			h.log.Warn("web: could not delete a session", "err", err)
		}
		h.setCookie(q.w, sessionCookie, "", -1)
		q.sess = nil
		q.render(http.StatusTooManyRequests, "login", "Sign in", map[string]any{"Error": "Too many wrong codes for this account. Try again in an hour."})
		return nil
	}
	if !ok {
		q.render(http.StatusUnauthorized, "totp", "Two-factor sign-in", map[string]any{"Next": q.form("next"), "Error": "Wrong or already used code."})
		return nil
	}
	if err := h.opt.Store.SetWebSessionStage(ctx, q.sess.ID, ""); err != nil {
		return err
	}
	if q.sess.User.ChangePwNextLogin {
		h.redirect(q.w, q.r, "/sso/pw_change")
		return nil
	}
	h.redirect(q.w, q.r, h.safeNext(q.form("next")))
	return nil
}

// checkCode checks a second-factor code: right, not used before (RFC
// 6238 5.2), and not while the account is locked by too many wrong codes
// (maxTOTPFailures per totpWindow, counted in the store for every node).
// A wrong code is counted and logged.
func (h *Handler) checkCode(q *request, t *store.TOTP, code string) (ok, locked bool, err error) {
	ctx := q.r.Context()
	now := h.now()
	if t.Failures >= maxTOTPFailures && now.Sub(t.FailedAt) < totpWindow {
		h.log.Warn("second-factor code refused: too many wrong codes", "user", t.UserEmail, "remote", h.clientIP(q.r).String())
		return false, true, nil
	}
	key, err := auth.DecodeTOTPSecret(t.Secret)
	if err != nil {
		return false, false, err
	}
	if step, good := auth.CheckTOTP(key, code, now); good {
		if ok, err = h.opt.Store.UseTOTPStep(ctx, t.UserEmail, step); err != nil || ok {
			return ok, false, err
		}
	}
	n, err := h.opt.Store.TOTPFailed(ctx, t.UserEmail, now, totpWindow)
	if err != nil {
		return false, false, err
	}
	h.log.Warn("wrong second-factor code", "user", t.UserEmail, "remote", h.clientIP(q.r).String(), "failures", n)
	return false, n >= maxTOTPFailures, nil
}

func (h *Handler) logoutForm(q *request) error {
	if q.sess == nil {
		h.redirect(q.w, q.r, "/sso/login")
		return nil
	}
	q.render(http.StatusOK, "logout", "Sign out", nil)
	return nil
}

func (h *Handler) logoutPost(q *request) error {
	if q.sess != nil {
		if err := h.opt.Store.DeleteWebSession(q.r.Context(), q.sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		h.log.Info("web sign-out", "user", q.sess.UserEmail)
	}
	h.setCookie(q.w, sessionCookie, "", -1)
	h.redirect(q.w, q.r, "/sso/login")
	return nil
}

func (h *Handler) pwChangeForm(q *request) error {
	q.render(http.StatusOK, "password", "Change password", map[string]any{"Own": true, "Forced": q.sess.User.ChangePwNextLogin, "Action": "/sso/pw_change"})
	return nil
}

// pwChangePost is the own password change: the current password is
// checked through the shared authenticator (and its limits), then every
// other session of the user ends.
func (h *Handler) pwChangePost(q *request) error {
	return h.changeOwnPassword(q, "/sso/pw_change")
}

func (h *Handler) changeOwnPassword(q *request, action string) error {
	u := q.sess.User
	again := func(status int, msg string) error {
		q.render(status, "password", "Change password", map[string]any{"Own": true, "Forced": u.ChangePwNextLogin, "Action": action, "Error": msg})
		return nil
	}
	cur, pw, pw2 := q.r.PostForm.Get("current_pw"), q.r.PostForm.Get("pw"), q.r.PostForm.Get("pw2")
	if msg := checkNewPassword(pw, pw2); msg != "" {
		return again(http.StatusBadRequest, msg)
	}
	if pw == cur {
		return again(http.StatusBadRequest, "The new password must differ from the current one.")
	}
	_, err := h.opt.Auth.Authenticate(q.r.Context(), auth.Attempt{
		Username: u.Email, Password: auth.Secret(cur), Protocol: "web", Port: h.opt.Port, Remote: h.clientIP(q.r),
	})
	switch {
	case errors.Is(err, auth.ErrRateLimited):
		return again(http.StatusTooManyRequests, "Too many failed attempts. Try again later.")
	case errors.Is(err, auth.ErrBadCredentials):
		return again(http.StatusUnauthorized, "The current password is wrong.")
	case err != nil:
		return err
	}
	if err := h.setPassword(q, u.Email, pw, false); err != nil {
		return err
	}
	if err := h.opt.Store.DeleteUserWebSessions(q.r.Context(), u.Email, q.sess.ID); err != nil {
		return err
	}
	return q.done("/user/settings", "Your password was changed; your other sessions are signed out.")
}

// setPassword stores a new password and sets change_pw_next_login (false
// after a user's own change; an admin may force the next change).
func (h *Handler) setPassword(q *request, email, pw string, force bool) error {
	ctx := q.r.Context()
	if err := h.opt.Admin.SetPassword(ctx, email, pw); err != nil {
		return err
	}
	u, err := h.opt.Store.GetUser(ctx, email)
	if err != nil {
		return err
	}
	if u.ChangePwNextLogin != force {
		u.ChangePwNextLogin = force
		if err := h.opt.Admin.UpdateUser(ctx, *u); err != nil {
			return err
		}
	}
	return nil
}

// checkNewPassword returns what is wrong with a new password, or "".
func checkNewPassword(pw, pw2 string) string {
	switch {
	case pw == "":
		return "Enter the new password."
	case pw != pw2:
		return "The two new passwords differ."
	case len(pw) > 1024:
		return "The password is longer than 1024 characters."
	case strings.ContainsAny(pw, "\x00\r\n"):
		return "The password contains control characters."
	}
	return ""
}

// inList reports whether s is in l.
func inList(l []string, s string) bool { return slices.Contains(l, s) }
