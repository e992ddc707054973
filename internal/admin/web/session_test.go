package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
)

func TestSignInAndCookies(t *testing.T) {
	for _, secure := range []bool{true, false} {
		e := newEnv(t, func(o *Options, _ *auth.Options) { o.Secure = secure })
		e.seed()
		c := e.client()
		r := c.get("/admin/user/settings")
		if r.status != http.StatusSeeOther || r.loc != "/sso/login?next=%2Fadmin%2Fuser%2Fsettings" {
			t.Fatalf("anonymous settings: %d %q", r.status, r.loc)
		}
		wantStatus(t, c.login("admin@example.com", "wrong"), http.StatusUnauthorized, "Wrong email address or password")
		form := url.Values{"email": {"admin@example.com"}, "pw": {"adminpw"}, "next": {"/admin/domain"}}
		form.Set("csrf_token", c.token("/sso/login"))
		r = c.do("POST", "/sso/login", form, nil)
		if r.status != http.StatusSeeOther || r.loc != "/admin/domain" {
			t.Fatalf("login: %d %q", r.status, r.loc)
		}
		var sc string
		for _, h := range r.header.Values("Set-Cookie") {
			if strings.HasPrefix(h, sessionCookie+"=") {
				sc = h
			}
		}
		if !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") || strings.Contains(sc, "Secure") != secure || strings.Contains(sc, "Max-Age") {
			t.Fatalf("session cookie %q (secure=%v)", sc, secure)
		}
		wantStatus(t, c.get("/admin/domain"), http.StatusOK, "other.example")
		// The store keeps only the hash of the cookie's secret.
		secret := strings.TrimPrefix(strings.Split(sc, ";")[0], sessionCookie+"=")
		if _, err := e.st.GetWebSession(context.Background(), secret); err == nil {
			t.Fatal("session stored under the clear cookie value")
		}
		if _, err := e.st.GetWebSession(context.Background(), hashID(secret)); err != nil {
			t.Fatalf("session not stored under its hash: %v", err)
		}
		// An open redirect is not followed.
		c2 := e.client()
		form = url.Values{"email": {"alice@example.com"}, "pw": {"pw-alice"}, "next": {"//evil.example/x"}}
		form.Set("csrf_token", c2.token("/sso/login"))
		if r := c2.do("POST", "/sso/login", form, nil); r.loc != "/admin/" {
			t.Fatalf("next=//evil: redirected to %q", r.loc)
		}
		// Sign-out ends the session server-side.
		r = c.post("/admin/user/settings", "/sso/logout", nil)
		if r.status != http.StatusSeeOther {
			t.Fatalf("logout %d", r.status)
		}
		if _, err := e.st.GetWebSession(context.Background(), hashID(secret)); err == nil {
			t.Fatal("session survived sign-out")
		}
		if r := c.get("/admin/domain"); r.status != http.StatusSeeOther {
			t.Fatalf("after logout: %d", r.status)
		}
	}
}

func TestRememberMeAndTimeouts(t *testing.T) {
	e := newEnv(t, func(o *Options, _ *auth.Options) {
		o.SessionTimeout = 10 * time.Minute
		o.SessionLifetime = 24 * time.Hour
	})
	e.seed()
	short, long := e.client(), e.client()
	short.mustLogin("alice@example.com", "pw-alice")
	form := url.Values{"email": {"bob@other.example"}, "pw": {"pw-bob"}, "remember": {"1"}}
	form.Set("csrf_token", long.token("/sso/login"))
	r := long.do("POST", "/sso/login", form, nil)
	if !strings.Contains(strings.Join(r.header.Values("Set-Cookie"), "\n"), "Max-Age=86400") {
		t.Fatalf("remember me: cookie without PERMANENT_SESSION_LIFETIME: %v", r.header.Values("Set-Cookie"))
	}
	// Activity keeps the idle session alive.
	for i := 0; i < 3; i++ {
		e.clock.Add(8 * time.Minute)
		wantStatus(t, short.get("/admin/user/settings"), http.StatusOK, "alice@example.com")
	}
	e.clock.Add(11 * time.Minute)
	if r := short.get("/admin/user/settings"); r.status != http.StatusSeeOther {
		t.Fatalf("idle session past SESSION_TIMEOUT still served: %d", r.status)
	}
	wantStatus(t, long.get("/admin/user/settings"), http.StatusOK, "bob@other.example")
	e.clock.Add(24 * time.Hour)
	if r := long.get("/admin/user/settings"); r.status != http.StatusSeeOther {
		t.Fatalf("session past PERMANENT_SESSION_LIFETIME still served: %d", r.status)
	}
	if n, err := e.st.PruneWebSessions(context.Background(), e.clock.Now(), e.clock.Now().Add(-10*time.Minute)); err != nil || n != 0 {
		t.Fatalf("expired sessions were not removed on use: %d %v", n, err)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client()
	c.mustLogin("alice@example.com", "pw-alice")
	before := e.user("alice@example.com").DisplayedName
	form := url.Values{"displayed_name": {"Mallory"}, "spam_threshold": {"80"}}
	// No token.
	wantStatus(t, c.do("POST", "/admin/user/settings", form, nil), http.StatusForbidden, "did not come from this site")
	// Another session's token.
	other := e.client()
	other.mustLogin("bob@other.example", "pw-bob")
	form.Set("csrf_token", other.token("/admin/user/settings"))
	wantStatus(t, c.do("POST", "/admin/user/settings", form, nil), http.StatusForbidden, "")
	// The right token, but a cross-site request (CrossOriginProtection).
	form.Set("csrf_token", c.token("/admin/user/settings"))
	wantStatus(t, c.do("POST", "/admin/user/settings", form, map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden, "cross-origin")
	wantStatus(t, c.do("POST", "/admin/user/settings", form, map[string]string{"Origin": "https://evil.example"}), http.StatusForbidden, "cross-origin")
	if got := e.user("alice@example.com").DisplayedName; got != before {
		t.Fatalf("refused forms changed the user: %q", got)
	}
	// The sign-in form needs its token too (login CSRF).
	anon := e.client()
	wantStatus(t, anon.do("POST", "/sso/login", url.Values{"email": {"alice@example.com"}, "pw": {"pw-alice"}}, nil), http.StatusForbidden, "")
	// And with the token the same change goes through.
	if r := c.do("POST", "/admin/user/settings", form, nil); r.status != http.StatusSeeOther {
		t.Fatalf("valid form: %d %.300s", r.status, r.body)
	}
	if got := e.user("alice@example.com").DisplayedName; got != "Mallory" {
		t.Fatalf("valid form not applied: %q", got)
	}
}

// The web sign-in goes through the same limiter as IMAP and SMTP: after
// AUTH_RATELIMIT_IP failures from one network even the right password is
// refused with 429.
func TestSignInRateLimit(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client()
	c.ip = "198.51.100.7"
	// Mailu counts each distinct username once per network.
	for i := 0; i < 5; i++ {
		wantStatus(t, c.login("nobody"+string(rune('a'+i))+"@example.com", "wrong"), http.StatusUnauthorized, "")
	}
	wantStatus(t, c.login("alice@example.com", "pw-alice"), http.StatusTooManyRequests, "Too many failed sign-ins")
	// Another network is not affected.
	d := e.client()
	d.ip = "203.0.113.9"
	d.mustLogin("alice@example.com", "pw-alice")
}

func TestTokensDoNotSignIn(t *testing.T) {
	e := newEnv(t)
	e.seed()
	secret, _, err := e.svc.CreateToken(context.Background(), "alice@example.com", "phone", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.client().login("alice@example.com", secret), http.StatusUnauthorized, "")
}

func TestForcedPasswordChange(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	u := e.user("alice@example.com")
	u.ChangePwNextLogin = true
	if err := e.svc.UpdateUser(ctx, *u); err != nil {
		t.Fatal(err)
	}
	old := e.client()
	old.mustLogin("alice@example.com", "pw-alice")
	c := e.client()
	r := c.login("alice@example.com", "pw-alice")
	if r.loc != "/sso/pw_change" {
		t.Fatalf("forced change: redirected to %q", r.loc)
	}
	if r := c.get("/admin/user/settings"); r.loc != "/sso/pw_change" {
		t.Fatalf("settings while a change is due: %d %q", r.status, r.loc)
	}
	wantStatus(t, c.get("/sso/pw_change"), http.StatusOK, "You must choose a new password")
	wantStatus(t, c.post("/sso/pw_change", "/sso/pw_change", url.Values{"current_pw": {"pw-alice"}, "pw": {"n1"}, "pw2": {"n2"}}), http.StatusBadRequest, "differ")
	wantStatus(t, c.post("/sso/pw_change", "/sso/pw_change", url.Values{"current_pw": {"bad"}, "pw": {"new-pw"}, "pw2": {"new-pw"}}), http.StatusUnauthorized, "current password is wrong")
	r = c.post("/sso/pw_change", "/sso/pw_change", url.Values{"current_pw": {"pw-alice"}, "pw": {"new-pw"}, "pw2": {"new-pw"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("change: %d %.300s", r.status, r.body)
	}
	if u := e.user("alice@example.com"); u.ChangePwNextLogin {
		t.Fatal("change_pw_next_login still set")
	} else if ok, _, _ := auth.VerifyPassword(u.Password, "new-pw"); !ok {
		t.Fatal("new password not stored")
	}
	wantStatus(t, c.get("/admin/user/settings"), http.StatusOK, "Your password was changed")
	// The other session was revoked.
	if r := old.get("/admin/user/settings"); r.status != http.StatusSeeOther {
		t.Fatalf("other session survived the password change: %d", r.status)
	}
}

func TestTOTPSignIn(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client()
	c.mustLogin("alice@example.com", "pw-alice")
	r := c.post("/admin/user/totp", "/admin/user/totp", url.Values{"action": {"start"}})
	wantStatus(t, r, http.StatusOK, "otpauth://totp/Petrel%20Test:alice@example.com?")
	if !strings.Contains(r.body, `<img src="data:image/png;base64,iVBORw0KGgo`) {
		t.Fatal("no QR code on the enrolment page")
	}
	tt, err := e.st.GetTOTP(context.Background(), "alice@example.com")
	if err != nil || tt.Enabled {
		t.Fatalf("enrolment: %+v %v", tt, err)
	}
	key, _ := auth.DecodeTOTPSecret(tt.Secret)
	wantStatus(t, c.post("/admin/user/totp", "/admin/user/totp", url.Values{"action": {"confirm"}, "code": {"000000"}}), http.StatusBadRequest, "code is wrong")
	r = c.post("/admin/user/totp", "/admin/user/totp", url.Values{"action": {"confirm"}, "code": {auth.TOTPCode(key, e.clock.Now())}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("confirm: %d %.300s", r.status, r.body)
	}

	d := e.client()
	r = d.login("alice@example.com", "pw-alice")
	if !strings.HasPrefix(r.loc, "/sso/totp") {
		t.Fatalf("second factor not asked: %q", r.loc)
	}
	if r := d.get("/admin/user/settings"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/sso/login") {
		t.Fatalf("half-signed-in session reached a page: %d %q", r.status, r.loc)
	}
	wantStatus(t, d.post("/sso/totp", "/sso/totp", url.Values{"code": {"123456"}}), http.StatusUnauthorized, "Wrong or already used")
	e.clock.Add(30 * time.Second)
	code := auth.TOTPCode(key, e.clock.Now())
	if r := d.post("/sso/totp", "/sso/totp", url.Values{"code": {code}}); r.status != http.StatusSeeOther {
		t.Fatalf("right code: %d %.300s", r.status, r.body)
	}
	wantStatus(t, d.get("/admin/user/settings"), http.StatusOK, "alice@example.com")
	// The same code is good once (RFC 6238 5.2).
	f := e.client()
	f.login("alice@example.com", "pw-alice")
	wantStatus(t, f.post("/sso/totp", "/sso/totp", url.Values{"code": {code}}), http.StatusUnauthorized, "")
	// Ten wrong codes within an hour lock the second factor, across
	// sessions: even the right code is refused until the hour is over.
	// One was counted above (the replayed code; the good code before it
	// cleared the count).
	for i := 0; i < 8; i++ {
		wantStatus(t, f.post("/sso/totp", "/sso/totp", url.Values{"code": {"000000"}}), http.StatusUnauthorized, "")
	}
	wantStatus(t, f.post("/sso/totp", "/sso/totp", url.Values{"code": {"000001"}}), http.StatusTooManyRequests, "Too many wrong codes")
	if r := f.get("/sso/totp"); r.status != http.StatusSeeOther {
		t.Fatalf("session survived the lock: %d", r.status)
	}
	g := e.client()
	g.login("alice@example.com", "pw-alice")
	e.clock.Add(30 * time.Second)
	wantStatus(t, g.post("/sso/totp", "/sso/totp", url.Values{"code": {auth.TOTPCode(key, e.clock.Now())}}), http.StatusTooManyRequests, "")
	e.clock.Add(time.Hour)
	g.login("alice@example.com", "pw-alice")
	if r := g.post("/sso/totp", "/sso/totp", url.Values{"code": {auth.TOTPCode(key, e.clock.Now())}}); r.status != http.StatusSeeOther {
		t.Fatalf("still locked after the hour: %d %.300s", r.status, r.body)
	}
	if tt, _ := e.st.GetTOTP(context.Background(), "alice@example.com"); tt.Failures != 0 {
		t.Fatalf("a good code did not clear the failures: %d", tt.Failures)
	}
}
