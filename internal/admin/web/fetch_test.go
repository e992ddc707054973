package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

// withFetches turns the fetched accounts pages on, sealing passwords
// reversibly so the test can see what was stored.
func withFetches(o *Options, _ *auth.Options) {
	o.Fetches = &Fetches{Store: o.Store.(store.Fetches), Seal: func(pw string) (string, error) { return "sealed(" + pw + ")", nil }}
}

// TestFetchPages: a user adds, edits and deletes a fetched account; the
// password is stored sealed and never shown; a blank password on edit
// keeps it; bad input is refused with a reason; a manager reaches a
// managed user's accounts, another user does not; without
// FETCHMAIL_ENABLED the pages do not exist.
func TestFetchPages(t *testing.T) {
	e := newEnv(t, withFetches)
	e.seed()
	ctx := context.Background()
	c := e.client()
	c.mustLogin("alice@example.com", "pw-alice")
	wantStatus(t, c.get("/admin/user/settings"), http.StatusOK, "/admin/fetch/list")
	wantStatus(t, c.get("/admin/fetch/create"), http.StatusOK, `value="INBOX,Junk"`)

	form := url.Values{"protocol": {"imap"}, "host": {"IMAP.Remote.Test."}, "port": {"993"}, "tls": {"on"},
		"username": {"alice.old"}, "password": {"remote-secret"}, "keep": {"on"}, "folders": {"INBOX, Archive"}}
	r := c.post("/admin/fetch/create", "/admin/fetch/create", form)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.loc, "/admin/fetch/list") {
		t.Fatalf("create: %d %s %.300s", r.status, r.loc, r.body)
	}
	fs, err := e.st.ListFetches(ctx, "alice@example.com")
	if err != nil || len(fs) != 1 {
		t.Fatalf("stored %v, %v", fs, err)
	}
	f := fs[0]
	if f.Host != "imap.remote.test" || f.Port != 993 || !f.TLS || !f.Keep || f.Scan || f.Password != "sealed(remote-secret)" ||
		strings.Join(f.Folders, "|") != "INBOX|Archive" {
		t.Fatalf("stored %+v", f)
	}
	list := c.get("/admin/fetch/list")
	wantStatus(t, list, http.StatusOK, "imaps://alice.old@imap.remote.test:993")
	if strings.Contains(list.body, "remote-secret") || strings.Contains(c.get("/admin/fetch/edit/"+itoa(f.ID)).body, "remote-secret") {
		t.Fatal("a page shows the password")
	}

	// Edit with a blank password: the stored one stays.
	form.Set("password", "")
	form.Set("protocol", "pop3")
	form.Set("port", "995")
	form.Del("keep")
	r = c.post("/admin/fetch/edit/"+itoa(f.ID), "/admin/fetch/edit/"+itoa(f.ID), form)
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit: %d %.300s", r.status, r.body)
	}
	g, _ := e.st.GetFetch(ctx, f.ID)
	if g.Protocol != "pop3" || g.Port != 995 || g.Keep || g.Password != "sealed(remote-secret)" {
		t.Fatalf("after edit %+v", g)
	}

	// Refusals say why.
	for _, bad := range []struct{ field, value, msg string }{
		{"protocol", "smtp", "IMAP or POP3"},
		{"port", "99999", "1 to 65535"},
		{"host", "", "host name"},
		{"password", "", "password of the remote"},
	} {
		f2 := url.Values{}
		for k, v := range form {
			f2[k] = v
		}
		f2.Set("password", "x")
		f2.Set(bad.field, bad.value)
		wantStatus(t, c.post("/admin/fetch/create", "/admin/fetch/create", f2), http.StatusBadRequest, bad.msg)
	}

	// Another user may not touch it; the domain's manager may.
	other := e.client()
	other.mustLogin("bob@other.example", "pw-bob")
	wantStatus(t, other.get("/admin/fetch/edit/"+itoa(f.ID)), http.StatusForbidden, "")
	wantStatus(t, other.post("/admin/fetch/list", "/admin/fetch/delete/"+itoa(f.ID), nil), http.StatusForbidden, "")
	mgr := e.client()
	mgr.mustLogin("manager@example.com", "pw-manager")
	wantStatus(t, mgr.get("/admin/fetch/list/alice@example.com"), http.StatusOK, "pop3s://alice.old@imap.remote.test:995")
	r = mgr.post("/admin/fetch/list/alice@example.com", "/admin/fetch/delete/"+itoa(f.ID), nil)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.loc, "/admin/fetch/list/alice@example.com") {
		t.Fatalf("manager delete: %d %s", r.status, r.loc)
	}
	if fs, _ := e.st.ListFetches(ctx, ""); len(fs) != 0 {
		t.Fatalf("left after delete: %v", fs)
	}

	// Off: no pages, no link.
	off := newEnv(t)
	off.seed()
	oc := off.client()
	oc.mustLogin("alice@example.com", "pw-alice")
	if r := oc.get("/admin/fetch/list"); r.status != http.StatusNotFound {
		t.Fatalf("fetch list without FETCHMAIL_ENABLED: %d", r.status)
	}
	if strings.Contains(oc.get("/admin/user/settings").body, "/fetch/list") {
		t.Fatal("the menu links fetched accounts although they are off")
	}
}
