package web

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"golang.org/x/net/idna"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

// displayName shows an IDNA domain (or the domain of an address) in Unicode.
func displayName(s string) string {
	at := strings.LastIndexByte(s, '@')
	u, err := idna.Lookup.ToUnicode(s[at+1:])
	if err != nil {
		return s
	}
	return s[:at+1] + u
}

// Mailu's "My account" pages (ui/views/users.py, tokens.py, base.py).
func (h *Handler) userRoutes() {
	h.route("GET", "/user/settings", roleUser, func(q *request) error { return h.settingsForm(q, q.sess.User, nil) })
	h.route("POST", "/user/settings", roleUser, func(q *request) error { return h.settingsPost(q, q.sess.User, "/user/settings") })
	h.route("GET", "/user/password", roleUser, h.ownPasswordForm)
	h.route("POST", "/user/password", roleUser, func(q *request) error { return h.changeOwnPassword(q, h.opt.Prefix+"/user/password") })
	h.route("GET", "/user/reply", roleUser, func(q *request) error { return h.replyForm(q, q.sess.User, nil) })
	h.route("POST", "/user/reply", roleUser, func(q *request) error { return h.replyPost(q, q.sess.User, "/user/reply") })
	h.route("GET", "/user/totp", roleUser, h.totpSettings)
	h.route("POST", "/user/totp", roleUser, h.totpSettingsPost)

	h.route("GET", "/token/list", roleUser, func(q *request) error { return h.tokenList(q, q.sess.User, "") })
	h.route("POST", "/token/create", roleUser, func(q *request) error { return h.tokenCreate(q, q.sess.User) })
	h.route("POST", "/token/delete/{id}", roleUser, h.tokenDelete)
	h.route("GET", "/token/list/{email}", roleUser, func(q *request) error {
		u, err := q.managedUser(q.r.PathValue("email"))
		if err != nil {
			return err
		}
		return h.tokenList(q, u, "")
	})
	h.route("POST", "/token/create/{email}", roleUser, func(q *request) error {
		u, err := q.managedUser(q.r.PathValue("email"))
		if err != nil {
			return err
		}
		return h.tokenCreate(q, u)
	})

	// Client setup: Mailu shows it to anonymous visitors too.
	h.route("GET", "/client", roleAnon, h.client)
}

func (h *Handler) ownPasswordForm(q *request) error {
	q.render(http.StatusOK, "password", "Change password", map[string]any{"Own": true, "Action": h.opt.Prefix + "/user/password"})
	return nil
}

// settingsForm is Mailu's user settings: displayed name, spam filter,
// forwarding.
func (h *Handler) settingsForm(q *request, u *store.User, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	data["User"] = u
	data["Own"] = u.Email == q.sess.UserEmail
	data["Forward"] = strings.Join(u.ForwardDestination, ", ")
	if _, ok := data["Status"]; !ok {
		data["Status"] = http.StatusOK
	}
	q.render(data["Status"].(int), "settings", "Settings of "+displayName(u.Email), data)
	return nil
}

func (h *Handler) settingsPost(q *request, u *store.User, back string) error {
	nu := *u
	nu.DisplayedName = q.form("displayed_name")
	nu.SpamEnabled = q.checkbox("spam_enabled")
	nu.SpamMarkAsRead = q.checkbox("spam_mark_as_read")
	nu.ForwardEnabled = q.checkbox("forward_enabled")
	nu.ForwardKeep = q.checkbox("forward_keep")
	fail := func(msg string) error {
		return h.settingsForm(q, &nu, map[string]any{"Error": msg, "Status": http.StatusBadRequest})
	}
	th, err := strconv.Atoi(q.form("spam_threshold"))
	if err != nil || th < 0 || th > 100 {
		return fail("The spam tolerance must be a number from 0 to 100.")
	}
	nu.SpamThreshold = th
	nu.ForwardDestination = nil
	if f := q.form("forward_destination"); f != "" {
		if nu.ForwardDestination, err = admin.ParseDestinations(f); err != nil {
			return fail(err.Error())
		}
	}
	if nu.ForwardEnabled && len(nu.ForwardDestination) == 0 {
		return fail("Forwarding needs at least one destination address.")
	}
	if err := h.opt.Admin.UpdateUser(q.r.Context(), nu); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return h.settingsForm(q, &nu, map[string]any{"Error": msg, "Status": st})
		}
		return err
	}
	return q.done(back, "Settings saved.")
}

const dateForm = "2006-01-02"

func (h *Handler) replyForm(q *request, u *store.User, data map[string]any) error {
	if data == nil {
		data = map[string]any{"Status": http.StatusOK}
	}
	data["User"] = u
	start, end := "", ""
	if !u.ReplyStartDate.IsZero() && !u.ReplyStartDate.Equal(store.DefaultReplyStart) {
		start = u.ReplyStartDate.Format(dateForm)
	}
	if !u.ReplyEndDate.IsZero() && !u.ReplyEndDate.Equal(store.DefaultReplyEnd) {
		end = u.ReplyEndDate.Format(dateForm)
	}
	data["Start"], data["End"] = start, end
	data["Active"] = u.ReplyActive(h.now())
	q.render(data["Status"].(int), "reply", "Auto-reply of "+displayName(u.Email), data)
	return nil
}

func (h *Handler) replyPost(q *request, u *store.User, back string) error {
	nu := *u
	nu.ReplyEnabled = q.checkbox("reply_enabled")
	nu.ReplySubject = q.form("reply_subject")
	nu.ReplyBody = strings.ReplaceAll(q.r.PostForm.Get("reply_body"), "\r\n", "\n")
	fail := func(msg string) error {
		return h.replyForm(q, &nu, map[string]any{"Error": msg, "Status": http.StatusBadRequest})
	}
	var err error
	nu.ReplyStartDate, nu.ReplyEndDate = store.DefaultReplyStart, store.DefaultReplyEnd
	if s := q.form("reply_startdate"); s != "" {
		if nu.ReplyStartDate, err = time.Parse(dateForm, s); err != nil {
			return fail("The start date must look like 2026-12-24.")
		}
	}
	if s := q.form("reply_enddate"); s != "" {
		if nu.ReplyEndDate, err = time.Parse(dateForm, s); err != nil {
			return fail("The end date must look like 2026-12-24.")
		}
	}
	if nu.ReplyEndDate.Before(nu.ReplyStartDate) {
		return fail("The end date is before the start date.")
	}
	if nu.ReplyEnabled && nu.ReplyBody == "" {
		return fail("An auto-reply needs a message.")
	}
	if len(nu.ReplyBody) > 32000 {
		return fail("The message is longer than 32000 characters.")
	}
	if err := h.opt.Admin.UpdateUser(q.r.Context(), nu); err != nil {
		if st, msg := errorStatus(err); st != http.StatusInternalServerError {
			return h.replyForm(q, &nu, map[string]any{"Error": msg, "Status": st})
		}
		return err
	}
	return q.done(back, "Auto-reply saved.")
}

// tokenList shows a user's app tokens; secret is a token just made,
// shown this once.
func (h *Handler) tokenList(q *request, u *store.User, secret string) error {
	toks, err := h.opt.Store.ListTokens(q.r.Context(), u.Email)
	if err != nil {
		return err
	}
	q.render(http.StatusOK, "tokens", "Authentication tokens of "+displayName(u.Email), map[string]any{
		"User": u, "Own": u.Email == q.sess.UserEmail, "Tokens": toks, "Secret": secret,
	})
	return nil
}

func (h *Handler) tokenCreate(q *request, u *store.User) error {
	comment := q.form("comment")
	var ips []string
	for _, f := range strings.FieldsFunc(q.form("ip"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		ips = append(ips, f)
	}
	secret, _, err := h.opt.Admin.CreateToken(q.r.Context(), u.Email, comment, ips)
	if err != nil {
		return err
	}
	h.log.Info("web: app token created", "user", u.Email, "by", q.sess.UserEmail)
	// Shown once, on this response only (Mailu: token/create).
	return h.tokenList(q, u, secret)
}

func (h *Handler) tokenDelete(q *request) error {
	id, err := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	if err != nil {
		return notFound("There is no token %q.", q.r.PathValue("id"))
	}
	t, err := h.opt.Store.GetToken(q.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("There is no token %d.", id)
	}
	if err != nil {
		return err
	}
	if _, err := q.managedUser(t.UserEmail); err != nil {
		return err
	}
	if err := h.opt.Admin.DeleteToken(q.r.Context(), id); err != nil {
		return err
	}
	if t.UserEmail == q.sess.UserEmail {
		return q.done("/token/list", "Token deleted.")
	}
	return q.done("/token/list/"+t.UserEmail, "Token deleted.")
}

// client is Mailu's client setup page, with the settings its
// troubleshooting list checks: implicit TLS on 993 and 465 (RFC 8314),
// the full address as username, normal password authentication.
func (h *Handler) client(q *request) error {
	user := "you@example.com"
	if q.sess != nil && q.sess.Stage == "" {
		user = q.sess.UserEmail
	}
	host := h.opt.Hostname
	if host == "" {
		host = q.r.Host
	}
	imapPort, smtpPort, sec := 993, 465, "SSL/TLS"
	if !h.opt.TLS {
		imapPort, smtpPort, sec = 143, 25, "none"
	}
	q.render(http.StatusOK, "client", "Client setup", map[string]any{
		"Host": host, "User": user, "IMAPPort": imapPort, "SMTPPort": smtpPort, "Security": sec,
	})
	return nil
}

// totpSettings shows the second factor: enrol (secret and otpauth URI),
// confirm with a first code, or switch off.
func (h *Handler) totpSettings(q *request) error {
	t, err := h.opt.Store.GetTOTP(q.r.Context(), q.sess.UserEmail)
	if errors.Is(err, store.ErrNotFound) {
		t, err = nil, nil
	}
	if err != nil {
		return err
	}
	return h.renderTOTP(q, t, http.StatusOK, "")
}

func (h *Handler) renderTOTP(q *request, t *store.TOTP, status int, msg string) error {
	data := map[string]any{"TOTP": t, "Error": msg}
	if t != nil && !t.Enabled {
		uri := auth.TOTPURI(h.opt.SiteName, q.sess.UserEmail, t.Secret)
		data["URI"] = uri
		data["Spaced"] = spaced(t.Secret)
		// The QR code is an inline PNG (data: URL, which the CSP's img-src
		// allows); the secret and the link above work without it.
		if png, err := qrcode.Encode(uri, qrcode.Medium, 200); err == nil {
			data["QR"] = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		} else {
			h.log.Warn("web: QR code not made", "err", err)
		}
	}
	q.render(status, "totp_settings", "Two-factor sign-in", data)
	return nil
}

func spaced(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (h *Handler) totpSettingsPost(q *request) error {
	ctx := q.r.Context()
	email := q.sess.UserEmail
	t, err := h.opt.Store.GetTOTP(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		t, err = nil, nil
	}
	if err != nil {
		return err
	}
	switch q.form("action") {
	case "start":
		if t != nil && t.Enabled {
			return badRequest("Two-factor sign-in is already on; switch it off first.")
		}
		t = &store.TOTP{UserEmail: email, Secret: auth.NewTOTPSecret(), CreatedAt: h.now()}
		if err := h.opt.Store.SetTOTP(ctx, t); err != nil {
			return err
		}
		return h.renderTOTP(q, t, http.StatusOK, "")
	case "confirm":
		if t == nil || t.Enabled {
			return badRequest("Start the enrolment first.")
		}
		key, err := auth.DecodeTOTPSecret(t.Secret)
		if err != nil {
			return err
		}
		step, ok := auth.CheckTOTP(key, q.form("code"), h.now())
		if !ok {
			return h.renderTOTP(q, t, http.StatusBadRequest, "That code is wrong; check the clock of your device and try the next code.")
		}
		t.Enabled, t.LastStep = true, step
		if err := h.opt.Store.SetTOTP(ctx, t); err != nil {
			return err
		}
		h.log.Info("web: two-factor sign-in enabled", "user", email)
		return q.done("/user/totp", "Two-factor sign-in is on.")
	case "disable":
		if t == nil {
			return q.done("/user/totp", "Two-factor sign-in is off.")
		}
		if t.Enabled {
			ok, locked, err := h.checkCode(q, t, q.form("code"))
			if err != nil {
				return err
			}
			if locked {
				return h.renderTOTP(q, t, http.StatusTooManyRequests, "Too many wrong codes. Try again in an hour.")
			}
			if !ok {
				return h.renderTOTP(q, t, http.StatusBadRequest, "Enter a current code to switch two-factor sign-in off.")
			}
		}
		if err := h.opt.Store.DeleteTOTP(ctx, email); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		h.log.Info("web: two-factor sign-in disabled", "user", email)
		return q.done("/user/totp", "Two-factor sign-in is off.")
	}
	return badRequest("Unknown action.")
}
