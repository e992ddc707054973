package web

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

func TestDomainForms(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	c := e.client()
	c.mustLogin("admin@example.com", "adminpw")
	r := c.post("/admin/domain/create", "/admin/domain/create", url.Values{"name": {"Bücher.Example"}, "max_users": {"10"}, "max_aliases": {"5"}, "max_quota_mb": {"2000"}, "comment": {"books"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %.500s", r.status, r.body)
	}
	d, err := e.st.GetDomain(ctx, "xn--bcher-kva.example")
	if err != nil || d.MaxUsers != 10 || d.MaxAliases != 5 || d.MaxQuotaBytes != 2000000000 || d.Comment != "books" {
		t.Fatalf("stored domain %+v %v", d, err)
	}
	wantStatus(t, c.get("/admin/domain"), http.StatusOK, "bücher.example")
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"name": {"BÜCHER.example"}}, http.StatusConflict, "already exists"},
		{url.Values{"name": {"bad..name"}}, http.StatusBadRequest, "invalid domain name"},
		{url.Values{"name": {strings.Repeat("a", 60) + "." + strings.Repeat("b", 30) + ".example"}}, http.StatusBadRequest, "longer than 80"},
		{url.Values{"name": {"x.example"}, "max_users": {"-5"}}, http.StatusBadRequest, "Limits must be"},
		{url.Values{"name": {"x.example"}, "max_users": {"lots"}}, http.StatusBadRequest, "whole number"},
		{url.Values{"name": {"x.example"}, "comment": {strings.Repeat("c", 300)}}, http.StatusBadRequest, "comment is longer"},
	} {
		wantStatus(t, c.post("/admin/domain/create", "/admin/domain/create", tc.form), tc.status, tc.msg)
	}
	if _, err := e.st.GetDomain(ctx, "x.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused domain was stored: %v", err)
	}
	// Edit, details with DNS records, zone file, DKIM.
	r = c.post("/admin/domain/edit/xn--bcher-kva.example", "/admin/domain/edit/xn--bcher-kva.example", url.Values{"max_users": {"20"}, "max_aliases": {"-1"}, "max_quota_mb": {"0"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit: %d %.500s", r.status, r.body)
	}
	if d, _ := e.st.GetDomain(ctx, "xn--bcher-kva.example"); d.MaxUsers != 20 || d.MaxAliases != -1 {
		t.Fatalf("edit not stored: %+v", d)
	}
	r = c.get("/admin/domain/details/xn--bcher-kva.example")
	wantStatus(t, r, http.StatusOK, "v=DKIM1")
	for _, want := range []string{"MX", "v=spf1", "_dmarc.xn--bcher-kva.example.", "_submissions._tcp", "_imaps._tcp"} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("details lack %q", want)
		}
	}
	r = c.get("/admin/domain/details/xn--bcher-kva.example/zonefile")
	if r.status != 200 || !strings.Contains(r.header.Get("Content-Disposition"), "xn--bcher-kva.example.zone") || !strings.Contains(r.body, "IN MX 10 mail.example.com.") {
		t.Fatalf("zonefile: %d %q %.400s", r.status, r.header.Get("Content-Disposition"), r.body)
	}
	before, _ := e.svc.DKIM(ctx, "xn--bcher-kva.example")
	wantStatus(t, c.get("/admin/domain/genkeys/xn--bcher-kva.example"), http.StatusOK, "Regenerate the DKIM key")
	if r := c.post("/admin/domain/genkeys/xn--bcher-kva.example", "/admin/domain/genkeys/xn--bcher-kva.example", nil); r.status != http.StatusSeeOther {
		t.Fatalf("genkeys: %d", r.status)
	}
	if after, _ := e.svc.DKIM(ctx, "xn--bcher-kva.example"); after.Record == before.Record || after.Record == "" {
		t.Fatal("DKIM key not regenerated")
	}
	// Alternatives: create, collision, delete.
	r = c.post("/admin/alternative/list/xn--bcher-kva.example", "/admin/alternative/create/xn--bcher-kva.example", url.Values{"name": {"books.example"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("alternative: %d %.400s", r.status, r.body)
	}
	wantStatus(t, c.post("/admin/alternative/list/xn--bcher-kva.example", "/admin/alternative/create/xn--bcher-kva.example", url.Values{"name": {"other.example"}}), http.StatusConflict, "already a domain")
	wantStatus(t, c.get("/admin/domain/details/xn--bcher-kva.example"), http.StatusOK, "DNS records of books.example")
	if r := c.post("/admin/alternative/list/xn--bcher-kva.example", "/admin/alternative/delete/books.example", nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete alternative %d", r.status)
	}
	// Delete with confirmation.
	wantStatus(t, c.get("/admin/domain/delete/xn--bcher-kva.example"), http.StatusOK, "Delete the domain bücher.example")
	if r := c.post("/admin/domain/delete/xn--bcher-kva.example", "/admin/domain/delete/xn--bcher-kva.example", nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	if _, err := e.st.GetDomain(ctx, "xn--bcher-kva.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("domain not deleted")
	}
	wantStatus(t, c.post("/admin/domain/delete/example.com", "/admin/domain/delete/example.com", nil), http.StatusBadRequest, "own account")
}

func TestUserForms(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	c := e.client()
	c.mustLogin("manager@example.com", "pw-manager")
	page := "/admin/user/create/example.com"
	good := func() url.Values {
		return url.Values{"localpart": {"Carol"}, "pw": {"s3cret"}, "pw2": {"s3cret"}, "quota_mb": {"500"}, "enable_imap": {"1"}, "enabled": {"1"}, "displayed_name": {"Carol C"}}
	}
	r := c.post(page, page, good())
	if r.status != http.StatusSeeOther {
		t.Fatalf("create user: %d %.500s", r.status, r.body)
	}
	u := e.user("carol@example.com")
	if u.QuotaBytes != 500000000 || !u.EnableIMAP || u.EnablePOP || u.DisplayedName != "Carol C" {
		t.Fatalf("stored user %+v", u)
	}
	for _, tc := range []struct {
		mod    func(url.Values)
		status int
		msg    string
	}{
		{func(v url.Values) {}, http.StatusConflict, "already a user"},
		{func(v url.Values) { v.Set("localpart", "x@y") }, http.StatusBadRequest, "part before the @"},
		{func(v url.Values) { v.Set("localpart", "bad local") }, http.StatusBadRequest, "may not contain"},
		{func(v url.Values) { v.Set("localpart", strings.Repeat("l", 81)) }, http.StatusBadRequest, "longer than 80"},
		{func(v url.Values) { v.Set("localpart", "dave"); v.Set("pw2", "other") }, http.StatusBadRequest, "differ"},
		{func(v url.Values) { v.Set("localpart", "dave"); v.Set("quota_mb", "-1") }, http.StatusBadRequest, "quota"},
		{func(v url.Values) { v.Set("localpart", "dave"); v.Set("displayed_name", strings.Repeat("n", 200)) }, http.StatusBadRequest, "160"},
	} {
		v := good()
		tc.mod(v)
		wantStatus(t, c.post(page, page, v), tc.status, tc.msg)
	}
	if _, err := e.st.GetUser(ctx, "dave@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("refused user was stored")
	}
	// The list shows the quota bar.
	e.setQuotaUsed("carol@example.com", 250000000)
	r = c.get("/admin/user/list/example.com")
	wantStatus(t, r, http.StatusOK, `value="50" aria-label="Quota used 50%"`)
	// Edit, set password with forced change, settings and reply of a managed user.
	r = c.post("/admin/user/edit/carol@example.com", "/admin/user/edit/carol@example.com", url.Values{"quota_mb": {"800"}, "enable_pop": {"1"}, "enabled": {"1"}, "comment": {"edited"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit: %d %.500s", r.status, r.body)
	}
	if u := e.user("carol@example.com"); u.QuotaBytes != 800000000 || !u.EnablePOP || u.EnableIMAP || u.Comment != "edited" {
		t.Fatalf("edit not stored: %+v", u)
	}
	r = c.post("/admin/user/password/carol@example.com", "/admin/user/password/carol@example.com", url.Values{"pw": {"np"}, "pw2": {"np"}, "change_pw_next_login": {"1"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("set password: %d %.500s", r.status, r.body)
	}
	if u := e.user("carol@example.com"); !u.ChangePwNextLogin {
		t.Fatal("forced change not set")
	}
	r = c.post("/admin/user/reply/carol@example.com", "/admin/user/reply/carol@example.com", url.Values{"reply_enabled": {"1"}, "reply_subject": {"Away"}, "reply_body": {"Back soon"}, "reply_startdate": {"2026-01-01"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("reply: %d %.500s", r.status, r.body)
	}
	if u := e.user("carol@example.com"); !u.ReplyEnabled || u.ReplyBody != "Back soon" || u.ReplyStartDate.Format("2006-01-02") != "2026-01-01" || !u.ReplyEndDate.Equal(store.DefaultReplyEnd) {
		t.Fatalf("reply not stored: %+v", u)
	}
	wantStatus(t, c.post("/admin/user/reply/carol@example.com", "/admin/user/reply/carol@example.com", url.Values{"reply_enabled": {"1"}, "reply_body": {"x"}, "reply_startdate": {"2026-13-40"}}), http.StatusBadRequest, "start date")
	wantStatus(t, c.post("/admin/user/reply/carol@example.com", "/admin/user/reply/carol@example.com", url.Values{"reply_enabled": {"1"}, "reply_body": {"x"}, "reply_startdate": {"2026-02-01"}, "reply_enddate": {"2026-01-01"}}), http.StatusBadRequest, "before the start")
	r = c.post("/admin/user/usersettings/carol@example.com", "/admin/user/usersettings/carol@example.com", url.Values{"spam_threshold": {"60"}, "forward_enabled": {"1"}, "forward_destination": {"x@remote.example, y@remote.example"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("usersettings: %d %.500s", r.status, r.body)
	}
	if u := e.user("carol@example.com"); u.SpamThreshold != 60 || !u.ForwardEnabled || strings.Join(u.ForwardDestination, ",") != "x@remote.example,y@remote.example" {
		t.Fatalf("settings not stored: %+v", u)
	}
	wantStatus(t, c.post("/admin/user/usersettings/carol@example.com", "/admin/user/usersettings/carol@example.com", url.Values{"spam_threshold": {"101"}}), http.StatusBadRequest, "0 to 100")
	wantStatus(t, c.post("/admin/user/usersettings/carol@example.com", "/admin/user/usersettings/carol@example.com", url.Values{"spam_threshold": {"50"}, "forward_enabled": {"1"}, "forward_destination": {"not an address"}}), http.StatusBadRequest, "not an address")
	wantStatus(t, c.post("/admin/user/usersettings/carol@example.com", "/admin/user/usersettings/carol@example.com", url.Values{"spam_threshold": {"50"}, "forward_enabled": {"1"}}), http.StatusBadRequest, "at least one destination")
	// Domain max_users.
	if err := e.svc.SetLimits(ctx, "example.com", admin.Limits{MaxUsers: 4, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	v := good()
	v.Set("localpart", "erin")
	wantStatus(t, c.post(page, page, v), http.StatusConflict, "max_users")
}

func TestAliasForms(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	c := e.client()
	c.mustLogin("manager@example.com", "pw-manager")
	page := "/admin/alias/create/example.com"
	r := c.post(page, page, url.Values{"localpart": {"Sales"}, "destination": {"alice@example.com, bob@other.example"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create alias: %d %.500s", r.status, r.body)
	}
	a, err := e.st.GetAlias(ctx, "sales@example.com")
	if err != nil || strings.Join(a.Destination, ",") != "alice@example.com,bob@other.example" {
		t.Fatalf("alias %+v %v", a, err)
	}
	r = c.post(page, page, url.Values{"localpart": {"team-%"}, "wildcard": {"1"}, "destination": {"alice@example.com"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("wildcard: %d %.500s", r.status, r.body)
	}
	if a, err := e.st.GetAlias(ctx, "team-%@example.com"); err != nil || !a.Wildcard {
		t.Fatalf("wildcard alias %+v %v", a, err)
	}
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"localpart": {"sales"}, "destination": {"alice@example.com"}}, http.StatusConflict, "already an alias"},
		{url.Values{"localpart": {"alice"}, "destination": {"bob@other.example"}}, http.StatusConflict, "already a user"},
		{url.Values{"localpart": {"new"}, "destination": {"nope"}}, http.StatusBadRequest, "nope"},
		{url.Values{"localpart": {"new"}, "destination": {"x@bad..domain"}}, http.StatusBadRequest, "invalid"},
		{url.Values{"localpart": {"new"}, "destination": {""}}, http.StatusBadRequest, "destination"},
		{url.Values{"localpart": {"new"}, "destination": {"a@b.example"}, "comment": {strings.Repeat("c", 256)}}, http.StatusBadRequest, "comment"},
	} {
		wantStatus(t, c.post(page, page, tc.form), tc.status, tc.msg)
	}
	wantStatus(t, c.get("/admin/alias/list/example.com"), http.StatusOK, "team-%@example.com")
	r = c.post("/admin/alias/edit/sales@example.com", "/admin/alias/edit/sales@example.com", url.Values{"destination": {"manager@example.com"}, "comment": {"c"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit alias: %d %.500s", r.status, r.body)
	}
	if a, _ := e.st.GetAlias(ctx, "sales@example.com"); strings.Join(a.Destination, ",") != "manager@example.com" || a.Comment != "c" {
		t.Fatalf("edit not stored: %+v", a)
	}
	wantStatus(t, c.get("/admin/alias/delete/sales@example.com"), http.StatusOK, "Delete the alias")
	if r := c.post("/admin/alias/delete/sales@example.com", "/admin/alias/delete/sales@example.com", nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete alias %d", r.status)
	}
	if _, err := e.st.GetAlias(ctx, "sales@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("alias not deleted")
	}
}

// A domain manager reaching beyond their domains, or for someone who
// outranks them, gets a clear 403 and nothing changes (Mailu
// ui/access.py, #2685).
func TestRoleViolations(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	// manager@example.com also manages... nothing else; boss@other.example
	// is moved into example.com's reach by making alice manage other.example.
	if err := e.svc.SetManager(ctx, "other.example", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.mustLogin("manager@example.com", "pw-manager")
	adminBefore := e.user("admin@example.com")
	aliceBefore := e.user("alice@example.com")
	for _, tc := range []struct {
		method, page, path string
		form               url.Values
		msg                string
	}{
		{"GET", "", "/admin/user/list/other.example", nil, "You do not manage the domain other.example"},
		{"POST", "/admin/user/settings", "/admin/user/create/other.example", url.Values{"localpart": {"x"}, "pw": {"p"}, "pw2": {"p"}}, "do not manage"},
		{"POST", "/admin/user/settings", "/admin/alias/create/other.example", url.Values{"localpart": {"x"}, "destination": {"a@b.example"}}, "do not manage"},
		{"GET", "", "/admin/user/edit/bob@other.example", nil, "do not manage the domain of bob@other.example"},
		{"GET", "", "/admin/user/edit/admin@example.com", nil, "is a global administrator"},
		{"POST", "/admin/user/settings", "/admin/user/password/admin@example.com", url.Values{"pw": {"x"}, "pw2": {"x"}}, "global administrator"},
		{"POST", "/admin/user/settings", "/admin/user/edit/admin@example.com", url.Values{"enabled": {""}}, "global administrator"},
		{"POST", "/admin/user/settings", "/admin/token/create/admin@example.com", url.Values{"comment": {"x"}}, "global administrator"},
		{"POST", "/admin/user/settings", "/admin/user/password/alice@example.com", url.Values{"pw": {"x"}, "pw2": {"x"}}, "manages other.example"},
		{"POST", "/admin/user/settings", "/admin/manager/create/example.com", url.Values{"email": {"admin@example.com"}}, "global administrator"},
		{"GET", "", "/admin/domain/create", nil, "Only a global administrator"},
		{"POST", "/admin/user/settings", "/admin/domain/delete/example.com", nil, "Only a global administrator"},
		{"GET", "", "/admin/relay", nil, "Only a global administrator"},
		{"GET", "", "/admin/status", nil, "Only a global administrator"},
		{"GET", "", "/admin/tlsrpt", nil, "Only a global administrator"},
		{"POST", "/admin/user/settings", "/admin/announcement", url.Values{"announcement_subject": {"x"}, "announcement_body": {"y"}}, "Only a global administrator"},
		{"GET", "", "/admin/domain/details/other.example", nil, "do not manage"},
		{"POST", "/admin/user/settings", "/admin/alternative/create/other.example", url.Values{"name": {"alt.example"}}, "do not manage"},
	} {
		var r resp
		if tc.method == "GET" {
			r = c.get(tc.path)
		} else {
			r = c.post(tc.page, tc.path, tc.form)
		}
		if r.status != http.StatusForbidden || !strings.Contains(r.body, tc.msg) {
			t.Errorf("%s %s: %d, want 403 with %q: %.300s", tc.method, tc.path, r.status, tc.msg, r.body)
		}
	}
	if a := e.user("admin@example.com"); a.Password != adminBefore.Password || !a.Enabled {
		t.Fatal("the global admin was changed")
	}
	if a := e.user("alice@example.com"); a.Password != aliceBefore.Password {
		t.Fatal("a user who outranks the manager was changed")
	}
	if ts, _ := e.st.ListTokens(ctx, "admin@example.com"); len(ts) != 0 {
		t.Fatal("token minted for the global admin")
	}
	if _, err := e.st.GetAlternative(ctx, "alt.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("alternative created in a foreign domain")
	}
	// A plain user sees no administration.
	u := e.client()
	u.mustLogin("bob@other.example", "pw-bob")
	wantStatus(t, u.get("/admin/domain"), http.StatusForbidden, "You manage no domain")
	wantStatus(t, u.get("/admin/user/list/other.example"), http.StatusForbidden, "")
	// The manager may still manage their own domain's plain users.
	wantStatus(t, c.get("/admin/user/edit/manager@example.com"), http.StatusOK, "")
	if r := c.post("/admin/user/list/example.com", "/admin/user/password/alice@example.com", url.Values{"pw": {"x"}, "pw2": {"x"}}); r.status != http.StatusForbidden {
		t.Fatal("alice still outranks")
	}
}

func TestOwnPagesAndTokens(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	c := e.client()
	c.mustLogin("bob@other.example", "pw-bob")
	if r := c.get("/admin/"); r.loc != "/admin/user/settings" {
		t.Fatalf("index: %q", r.loc)
	}
	r := c.post("/admin/user/reply", "/admin/user/reply", url.Values{"reply_enabled": {"1"}, "reply_subject": {"Holiday"}, "reply_body": {"I am away.\r\nBack Monday."}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("reply: %d %.400s", r.status, r.body)
	}
	if u := e.user("bob@other.example"); !u.ReplyEnabled || u.ReplyBody != "I am away.\nBack Monday." {
		t.Fatalf("reply %+v", u)
	}
	wantStatus(t, c.get("/admin/user/reply"), http.StatusOK, "active today")
	wantStatus(t, c.post("/admin/user/reply", "/admin/user/reply", url.Values{"reply_enabled": {"1"}, "reply_subject": {"x"}}), http.StatusBadRequest, "needs a message")
	// Own password.
	wantStatus(t, c.post("/admin/user/password", "/admin/user/password", url.Values{"current_pw": {"nope"}, "pw": {"a"}, "pw2": {"a"}}), http.StatusUnauthorized, "")
	if r := c.post("/admin/user/password", "/admin/user/password", url.Values{"current_pw": {"pw-bob"}, "pw": {"new-bob"}, "pw2": {"new-bob"}}); r.status != http.StatusSeeOther {
		t.Fatalf("own password: %d %.400s", r.status, r.body)
	}
	// Tokens: the secret is shown once.
	r = c.post("/admin/token/list", "/admin/token/create", url.Values{"comment": {"phone"}, "ip": {"192.0.2.0/24, 2001:db8::1"}})
	wantStatus(t, r, http.StatusOK, "shown only now")
	ts, _ := e.st.ListTokens(ctx, "bob@other.example")
	if len(ts) != 1 || ts[0].Comment != "phone" || strings.Join(ts[0].IP, ",") != "192.0.2.0/24,2001:db8::1" {
		t.Fatalf("tokens %+v", ts)
	}
	if strings.Contains(c.get("/admin/token/list").body, "shown only now") {
		t.Fatal("secret shown again")
	}
	wantStatus(t, c.post("/admin/token/list", "/admin/token/create", url.Values{"ip": {"not-an-ip"}}), http.StatusBadRequest, "not-an-ip")
	// Someone else's token cannot be deleted.
	other, _, _ := e.svc.CreateToken(ctx, "alice@example.com", "", nil)
	_ = other
	ats, _ := e.st.ListTokens(ctx, "alice@example.com")
	wantStatus(t, c.post("/admin/token/list", "/admin/token/delete/"+itoa(ats[0].ID), nil), http.StatusForbidden, "")
	if r := c.post("/admin/token/list", "/admin/token/delete/"+itoa(ts[0].ID), nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete own token %d", r.status)
	}
	// Client setup, also for anonymous visitors.
	r = e.client().get("/admin/client")
	wantStatus(t, r, http.StatusOK, "mail.example.com")
	for _, want := range []string{"993", "465", "SSL/TLS", "full email address"} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("client page lacks %q", want)
		}
	}
	wantStatus(t, c.get("/admin/client"), http.StatusOK, "bob@other.example")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestGlobalPages(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx := context.Background()
	c := e.client()
	c.mustLogin("admin@example.com", "adminpw")
	// Managers.
	r := c.post("/admin/manager/list/example.com", "/admin/manager/create/example.com", url.Values{"email": {"alice@example.com"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("add manager %d %.300s", r.status, r.body)
	}
	wantStatus(t, c.post("/admin/manager/list/example.com", "/admin/manager/create/example.com", url.Values{"email": {"ghost@example.com"}}), http.StatusNotFound, "ghost@example.com")
	wantStatus(t, c.post("/admin/manager/list/example.com", "/admin/manager/create/example.com", url.Values{"email": {"not an address"}}), http.StatusBadRequest, "invalid")
	if ms, _ := e.st.ListManagers(ctx, "example.com"); strings.Join(ms, ",") != "alice@example.com,manager@example.com" {
		t.Fatalf("managers %v", ms)
	}
	if r := c.post("/admin/manager/list/example.com", "/admin/manager/delete/example.com/alice@example.com", nil); r.status != http.StatusSeeOther {
		t.Fatalf("remove manager %d", r.status)
	}
	// Global admins.
	if r := c.post("/admin/admin/list", "/admin/admin/create", url.Values{"email": {"bob@other.example"}}); r.status != http.StatusSeeOther {
		t.Fatalf("add admin %d %.300s", r.status, r.body)
	}
	if !e.user("bob@other.example").GlobalAdmin {
		t.Fatal("bob not admin")
	}
	wantStatus(t, c.get("/admin/admin/list"), http.StatusOK, "bob@other.example")
	wantStatus(t, c.post("/admin/admin/list", "/admin/admin/create", url.Values{"email": {"ghost@example.com"}}), http.StatusNotFound, "does not exist")
	wantStatus(t, c.post("/admin/admin/list", "/admin/admin/delete/admin@example.com", nil), http.StatusBadRequest, "your own")
	if r := c.post("/admin/admin/list", "/admin/admin/delete/bob@other.example", nil); r.status != http.StatusSeeOther || e.user("bob@other.example").GlobalAdmin {
		t.Fatalf("remove admin %d", r.status)
	}
	// Relays.
	if r := c.post("/admin/relay/create", "/admin/relay/create", url.Values{"name": {"relay.example"}, "smtp": {"mx.relay.example:25"}}); r.status != http.StatusSeeOther {
		t.Fatalf("relay %d %.300s", r.status, r.body)
	}
	wantStatus(t, c.post("/admin/relay/create", "/admin/relay/create", url.Values{"name": {"other.example"}}), http.StatusConflict, "already a domain")
	wantStatus(t, c.post("/admin/relay/create", "/admin/relay/create", url.Values{"name": {"r2.example"}, "smtp": {"bad host"}}), http.StatusBadRequest, "transport")
	if r := c.post("/admin/relay/edit/relay.example", "/admin/relay/edit/relay.example", url.Values{"smtp": {"[192.0.2.1]:2525"}}); r.status != http.StatusSeeOther {
		t.Fatalf("relay edit %d %.300s", r.status, r.body)
	}
	if rl, _ := e.st.GetRelay(ctx, "relay.example"); rl.SMTP != "[192.0.2.1]:2525" {
		t.Fatalf("relay %+v", rl)
	}
	if r := c.post("/admin/relay", "/admin/relay/delete/relay.example", nil); r.status != http.StatusSeeOther {
		t.Fatalf("relay delete %d", r.status)
	}
	// Announcement.
	wantStatus(t, c.post("/admin/announcement", "/admin/announcement", url.Values{"announcement_subject": {"x"}}), http.StatusBadRequest, "needs a subject and a body")
	r = c.post("/admin/announcement", "/admin/announcement", url.Values{"announcement_subject": {"Maintenance"}, "announcement_body": {"Tonight."}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("announce %d", r.status)
	}
	if e.ann.subject != "Maintenance" || e.ann.body != "Tonight." {
		t.Fatalf("announcer got %q %q", e.ann.subject, e.ann.body)
	}
	wantStatus(t, c.get("/admin/announcement"), http.StatusOK, "delivered to 3 users")
}

var actionRE = regexp.MustCompile(`<form[^>]* method="post" action="([^"]*)"`)

// Every form on every page posts to a route that exists (a form with a
// wrong action passes the direct POSTs above but fails in a browser).
func TestFormActionsResolve(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client()
	c.mustLogin("admin@example.com", "adminpw")
	if _, _, err := e.svc.CreateToken(context.Background(), "alice@example.com", "t", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateAlias(context.Background(), "al", "example.com", []string{"alice@example.com"}, false); err != nil {
		t.Fatal(err)
	}
	pages := []string{"/admin/user/settings", "/admin/user/password", "/admin/user/reply", "/admin/user/totp", "/admin/token/list",
		"/admin/domain", "/admin/domain/create", "/admin/domain/edit/example.com", "/admin/domain/delete/example.com",
		"/admin/domain/genkeys/example.com", "/admin/alternative/list/example.com", "/admin/manager/list/example.com",
		"/admin/user/list/example.com", "/admin/user/create/example.com", "/admin/user/edit/alice@example.com",
		"/admin/user/password/alice@example.com", "/admin/user/usersettings/alice@example.com", "/admin/user/reply/alice@example.com",
		"/admin/token/list/alice@example.com", "/admin/alias/list/example.com", "/admin/alias/create/example.com",
		"/admin/alias/edit/al@example.com", "/admin/alias/delete/al@example.com", "/admin/admin/list", "/admin/relay",
		"/admin/relay/create", "/admin/announcement", "/admin/status", "/admin/tlsrpt", "/admin/client", "/sso/logout"}
	seen := 0
	for _, p := range pages {
		r := c.get(p)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %.300s", p, r.status, r.body)
		}
		for _, m := range actionRE.FindAllStringSubmatch(r.body, -1) {
			action := html.UnescapeString(m[1])
			seen++
			if !strings.HasPrefix(action, "/admin/") && !strings.HasPrefix(action, "/sso/") {
				t.Errorf("%s: form posts to %q", p, action)
				continue
			}
			if action == "/sso/logout" {
				continue
			}
			// A POST without a token must reach the route (403 from the
			// CSRF check), never 404 or 405.
			res := c.do("POST", action, url.Values{}, nil)
			if res.status != http.StatusForbidden {
				t.Errorf("%s: form action %s answers %d", p, action, res.status)
			}
		}
	}
	if seen < 30 {
		t.Fatalf("only %d forms found", seen)
	}
}

// TestTLSReportsPage: a global admin sees received TLS-RPT reports with
// their failures; the page escapes what the reporter wrote.
func TestTLSReportsPage(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client()
	c.mustLogin("admin@example.com", "adminpw")
	wantStatus(t, c.get("/admin/tlsrpt"), http.StatusOK, "No TLS reports received yet")
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	_, err := e.st.AddReceivedTLSReports(context.Background(), []store.ReceivedTLSReport{{
		ReceivedAt: start.Add(30 * time.Hour), Recipient: "postmaster@example.com", Organization: "Big <Mail> Co",
		ReportID: "2026-12-01T00:00:00Z_example.com", Start: start, End: start.Add(24 * time.Hour),
		PolicyDomain: "example.com", PolicyType: "sts", PolicyString: "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400",
		Success: 120, Failure: 3,
		Details: `[{"result-type":"certificate-expired","receiving-mx-hostname":"mail.example.com","failed-session-count":3}]`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.get("/admin/tlsrpt")
	for _, want := range []string{"Big &lt;Mail&gt; Co", "2026-12-01 00:00 – 2026-12-02 00:00", "sts/enforce", "<td>120</td>", "<td>3</td>",
		"failed: certificate-expired x3 mx=mail.example.com"} {
		wantStatus(t, r, http.StatusOK, want)
	}
}
