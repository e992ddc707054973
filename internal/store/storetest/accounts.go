package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

func testDomains(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	_, err := s.GetDomain(c, "example.com")
	wantErr(t, err, store.ErrNotFound, "GetDomain before create")

	d := store.Domain{Name: "example.com", MaxUsers: 10, MaxAliases: -1, MaxQuotaBytes: 5 << 30, SignupEnabled: true,
		Meta: store.Meta{Comment: "first"}}
	must(t, s.CreateDomain(c, &d))
	recent(t, d.CreatedAt, "CreatedAt after create")
	if !d.UpdatedAt.IsZero() {
		t.Fatalf("UpdatedAt = %v after create, want zero (Mailu)", d.UpdatedAt)
	}
	must(t, s.CreateDomain(c, &store.Domain{Name: "a.example", MaxUsers: -1, MaxAliases: -1}))

	got, err := s.GetDomain(c, "example.com")
	must(t, err)
	if !reflect.DeepEqual(*got, d) {
		t.Fatalf("GetDomain = %+v\nwant %+v", *got, d)
	}
	list, err := s.ListDomains(c)
	must(t, err)
	if len(list) != 2 || list[0].Name != "a.example" || list[1].Name != "example.com" {
		t.Fatalf("ListDomains = %+v, want a.example, example.com", list)
	}

	d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes, d.SignupEnabled, d.Comment = 20, 30, 0, false, "second"
	must(t, s.UpdateDomain(c, &d))
	recent(t, d.UpdatedAt, "UpdatedAt after update")
	got, err = s.GetDomain(c, "example.com")
	must(t, err)
	if !reflect.DeepEqual(*got, d) {
		t.Fatalf("after update GetDomain = %+v\nwant %+v", *got, d)
	}
	wantErr(t, s.UpdateDomain(c, &store.Domain{Name: "nope.example"}), store.ErrNotFound, "UpdateDomain missing")

	must(t, s.DeleteDomain(c, "a.example"))
	_, err = s.GetDomain(c, "a.example")
	wantErr(t, err, store.ErrNotFound, "GetDomain after delete")
	wantErr(t, s.DeleteDomain(c, "a.example"), store.ErrNotFound, "DeleteDomain twice")
}

func testAlternatives(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0)
	must(t, s.CreateDomain(c, &store.Domain{Name: "other.example", MaxUsers: -1, MaxAliases: -1}))
	wantErr(t, s.CreateAlternative(c, &store.Alternative{Name: "alt.example", DomainName: "missing.example"}),
		store.ErrNotFound, "CreateAlternative of a missing domain")

	a := store.Alternative{Name: "alt.example", DomainName: "example.com", Meta: store.Meta{Comment: "c"}}
	must(t, s.CreateAlternative(c, &a))
	recent(t, a.CreatedAt, "CreatedAt")
	must(t, s.CreateAlternative(c, &store.Alternative{Name: "alt2.example", DomainName: "example.com"}))
	must(t, s.CreateAlternative(c, &store.Alternative{Name: "alt3.example", DomainName: "other.example"}))

	got, err := s.GetAlternative(c, "alt.example")
	must(t, err)
	if !reflect.DeepEqual(*got, a) {
		t.Fatalf("GetAlternative = %+v, want %+v", *got, a)
	}
	l, err := s.ListAlternatives(c, "example.com")
	must(t, err)
	if len(l) != 2 || l[0].Name != "alt.example" || l[1].Name != "alt2.example" {
		t.Fatalf("ListAlternatives(example.com) = %+v", l)
	}
	l, err = s.ListAlternatives(c, "")
	must(t, err)
	if len(l) != 3 {
		t.Fatalf("ListAlternatives(\"\") has %d, want 3", len(l))
	}
	must(t, s.DeleteAlternative(c, "alt.example"))
	_, err = s.GetAlternative(c, "alt.example")
	wantErr(t, err, store.ErrNotFound, "GetAlternative after delete")
	wantErr(t, s.DeleteAlternative(c, "alt.example"), store.ErrNotFound, "DeleteAlternative twice")
}

func testRelays(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	r := store.Relay{Name: "relay.example", SMTP: "[mx.relay.example]:2525"}
	must(t, s.CreateRelay(c, &r))
	recent(t, r.CreatedAt, "CreatedAt")
	must(t, s.CreateRelay(c, &store.Relay{Name: "b.example"}))
	got, err := s.GetRelay(c, "relay.example")
	must(t, err)
	if !reflect.DeepEqual(*got, r) {
		t.Fatalf("GetRelay = %+v, want %+v", *got, r)
	}
	r.SMTP, r.Comment = "lmtp:host:24", "changed"
	must(t, s.UpdateRelay(c, &r))
	recent(t, r.UpdatedAt, "UpdatedAt")
	got, err = s.GetRelay(c, "relay.example")
	must(t, err)
	if !reflect.DeepEqual(*got, r) {
		t.Fatalf("after update GetRelay = %+v, want %+v", *got, r)
	}
	l, err := s.ListRelays(c)
	must(t, err)
	if len(l) != 2 || l[0].Name != "b.example" || l[1].SMTP != "lmtp:host:24" {
		t.Fatalf("ListRelays = %+v", l)
	}
	wantErr(t, s.UpdateRelay(c, &store.Relay{Name: "x.example"}), store.ErrNotFound, "UpdateRelay missing")
	must(t, s.DeleteRelay(c, "relay.example"))
	_, err = s.GetRelay(c, "relay.example")
	wantErr(t, err, store.ErrNotFound, "GetRelay after delete")
	wantErr(t, s.DeleteRelay(c, "relay.example"), store.ErrNotFound, "DeleteRelay twice")
}

func testNameInUse(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	must(t, s.CreateDomain(c, &store.Domain{Name: "d.example"}))
	must(t, s.CreateAlternative(c, &store.Alternative{Name: "a.example", DomainName: "d.example"}))
	must(t, s.CreateRelay(c, &store.Relay{Name: "r.example"}))
	for _, name := range []string{"d.example", "a.example", "r.example"} {
		wantErr(t, s.CreateDomain(c, &store.Domain{Name: name}), store.ErrNameInUse, "CreateDomain "+name)
		wantErr(t, s.CreateAlternative(c, &store.Alternative{Name: name, DomainName: "d.example"}),
			store.ErrNameInUse, "CreateAlternative "+name)
		wantErr(t, s.CreateRelay(c, &store.Relay{Name: name}), store.ErrNameInUse, "CreateRelay "+name)
	}
	// Freed names can be used again.
	must(t, s.DeleteRelay(c, "r.example"))
	must(t, s.CreateDomain(c, &store.Domain{Name: "r.example"}))
}

func fullUser() store.User {
	return store.User{
		Email: "Jo.Doe@example.com", Localpart: "Jo.Doe", DomainName: "example.com",
		Password:   "{BLF-CRYPT}$2b$12$abcdefghijklmnopqrstuv",
		QuotaBytes: 1 << 30, QuotaBytesUsed: 1234,
		GlobalAdmin: true, Enabled: false, EnableIMAP: false, EnablePOP: true, AllowSpoofing: true,
		ForwardEnabled: true, ForwardDestination: []string{"a@elsewhere.example", "b@elsewhere.example"}, ForwardKeep: false,
		ReplyEnabled: true, ReplySubject: "Away", ReplyBody: "Back on Monday,\nJo",
		ReplyStartDate: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), ReplyEndDate: time.Date(2024, 7, 31, 0, 0, 0, 0, time.UTC),
		DisplayedName: "Jo Doé", SpamEnabled: false, SpamMarkAsRead: false, SpamThreshold: 65, ChangePwNextLogin: true,
		Meta: store.Meta{Comment: "everything set"},
	}
}

func testUsers(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0)
	u := fullUser()
	bad := u
	bad.Email, bad.DomainName = "x@missing.example", "missing.example"
	wantErr(t, s.CreateUser(c, &bad), store.ErrNotFound, "CreateUser in a missing domain")

	must(t, s.CreateUser(c, &u))
	recent(t, u.CreatedAt, "CreatedAt")
	got, err := s.GetUser(c, u.Email)
	must(t, err)
	if !reflect.DeepEqual(*got, u) {
		t.Fatalf("GetUser = %+v\nwant    %+v", *got, u)
	}
	dup := fullUser()
	wantErr(t, s.CreateUser(c, &dup), store.ErrExists, "CreateUser twice")

	// Defaults round-trip too, and Email alone fills Localpart/DomainName.
	def := store.NewUser("plain", "example.com", 0, 80)
	def.Email, def.Localpart, def.DomainName = "plain@example.com", "", ""
	must(t, s.CreateUser(c, &def))
	got, err = s.GetUser(c, "plain@example.com")
	must(t, err)
	if got.Localpart != "plain" || got.DomainName != "example.com" || !got.ReplyStartDate.Equal(store.DefaultReplyStart) ||
		!got.ReplyEndDate.Equal(store.DefaultReplyEnd) || !got.Enabled || got.ForwardDestination != nil {
		t.Fatalf("default user read back as %+v", *got)
	}

	n, err := s.CountUsers(c, "example.com")
	must(t, err)
	if n != 2 {
		t.Fatalf("CountUsers = %d, want 2", n)
	}
	must(t, s.CreateDomain(c, &store.Domain{Name: "b.example"}))
	o := store.NewUser("x", "b.example", 0, 80)
	must(t, s.CreateUser(c, &o))
	l, err := s.ListUsers(c, "example.com")
	must(t, err)
	if len(l) != 2 || l[0].Email != "Jo.Doe@example.com" || l[1].Email != "plain@example.com" {
		t.Fatalf("ListUsers(example.com) = %v", emails(l))
	}
	l, err = s.ListUsers(c, "")
	must(t, err)
	if len(l) != 3 {
		t.Fatalf("ListUsers(\"\") = %v", emails(l))
	}
	if n, _ := s.CountUsers(c, ""); n != 3 {
		t.Fatalf("CountUsers(\"\") = %d", n)
	}

	// UpdateUser writes every field but the used quota.
	u.Password, u.QuotaBytes, u.QuotaBytesUsed = "{new}", 2<<30, 999999
	u.GlobalAdmin, u.Enabled, u.EnableIMAP, u.EnablePOP, u.AllowSpoofing = false, true, true, false, false
	u.ForwardEnabled, u.ForwardDestination, u.ForwardKeep = false, nil, true
	u.ReplyEnabled, u.ReplySubject, u.ReplyBody = false, "s", "b"
	u.ReplyStartDate, u.ReplyEndDate = time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(2030, 2, 3, 0, 0, 0, 0, time.UTC)
	u.DisplayedName, u.SpamEnabled, u.SpamMarkAsRead, u.SpamThreshold, u.ChangePwNextLogin = "J", true, true, 90, false
	u.Comment = "updated"
	must(t, s.UpdateUser(c, &u))
	recent(t, u.UpdatedAt, "UpdatedAt")
	got, err = s.GetUser(c, u.Email)
	must(t, err)
	want := u
	want.QuotaBytesUsed = 1234
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("after UpdateUser = %+v\nwant          %+v", *got, want)
	}
	wantErr(t, s.UpdateUser(c, &store.User{Email: "nobody@example.com"}), store.ErrNotFound, "UpdateUser missing")

	must(t, s.SetPasswordHash(c, u.Email, "{rehashed}"))
	got, err = s.GetUser(c, u.Email)
	must(t, err)
	if got.Password != "{rehashed}" || got.DisplayedName != "J" {
		t.Fatalf("SetPasswordHash: password %q, displayed name %q", got.Password, got.DisplayedName)
	}
	wantErr(t, s.SetPasswordHash(c, "nobody@example.com", "x"), store.ErrNotFound, "SetPasswordHash missing")

	// SCRAM credentials: stored only for the current hash, kept by an
	// update that leaves the hash alone, cleared when the hash changes.
	sc := store.ScramCredentials{Iterations: 4096, Salt: []byte("salt-salt-salt-1"),
		StoredKey: bytes.Repeat([]byte{1}, 32), ServerKey: bytes.Repeat([]byte{2}, 32)}
	must(t, s.SetScram(c, u.Email, "{stale}", sc))
	if got, _ = s.GetUser(c, u.Email); got.Scram.Valid() {
		t.Fatal("SetScram stored credentials for a stale hash")
	}
	must(t, s.SetScram(c, u.Email, "{rehashed}", sc))
	if got, _ = s.GetUser(c, u.Email); !reflect.DeepEqual(got.Scram, sc) {
		t.Fatalf("SetScram: %+v", got.Scram)
	}
	got.DisplayedName = "K"
	must(t, s.UpdateUser(c, got))
	if got, _ = s.GetUser(c, u.Email); !reflect.DeepEqual(got.Scram, sc) || got.DisplayedName != "K" {
		t.Fatalf("UpdateUser with the same hash lost the SCRAM credentials: %+v", got.Scram)
	}
	got.Password = "{changed}"
	must(t, s.UpdateUser(c, got))
	if got, _ = s.GetUser(c, u.Email); got.Scram.Valid() {
		t.Fatal("UpdateUser with a new hash kept the SCRAM credentials")
	}
	must(t, s.SetScram(c, u.Email, "{changed}", sc))
	must(t, s.SetPasswordHash(c, u.Email, "{rehashed}"))
	if got, _ = s.GetUser(c, u.Email); got.Scram.Valid() {
		t.Fatal("SetPasswordHash kept the SCRAM credentials")
	}
	must(t, s.SetScram(c, "nobody@example.com", "x", sc))
	got.DisplayedName = "J"
	must(t, s.UpdateUser(c, got))

	must(t, s.DeleteUser(c, "plain@example.com"))
	_, err = s.GetUser(c, "plain@example.com")
	wantErr(t, err, store.ErrNotFound, "GetUser after delete")
	wantErr(t, s.DeleteUser(c, "plain@example.com"), store.ErrNotFound, "DeleteUser twice")
}

func emails(l []store.User) []string {
	var out []string
	for _, u := range l {
		out = append(out, u.Email)
	}
	return out
}

func testAliases(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0)
	a := store.Alias{Email: "team@example.com", Localpart: "team", DomainName: "example.com",
		Destination: []string{"a@example.com", "b@remote.example"}, Meta: store.Meta{Comment: "team"}}
	must(t, s.CreateAlias(c, &a))
	recent(t, a.CreatedAt, "CreatedAt")
	got, err := s.GetAlias(c, "team@example.com")
	must(t, err)
	if !reflect.DeepEqual(*got, a) {
		t.Fatalf("GetAlias = %+v, want %+v", *got, a)
	}
	dup := a
	wantErr(t, s.CreateAlias(c, &dup), store.ErrExists, "CreateAlias twice")
	wantErr(t, s.CreateAlias(c, &store.Alias{Email: "x@missing.example", Destination: []string{"a@b.c"}}),
		store.ErrNotFound, "CreateAlias in a missing domain")

	catchAll := store.Alias{Email: "%@example.com", Wildcard: true, Destination: []string{"a@example.com"}}
	must(t, s.CreateAlias(c, &catchAll))
	if catchAll.Localpart != "%" || catchAll.DomainName != "example.com" {
		t.Fatalf("CreateAlias did not split %q: %q %q", catchAll.Email, catchAll.Localpart, catchAll.DomainName)
	}
	must(t, s.CreateAlias(c, &store.Alias{Email: "sales-%@example.com", Wildcard: true, Destination: []string{"s@example.com"}}))

	w, err := s.ListWildcardAliases(c, "example.com")
	must(t, err)
	if len(w) != 2 || !w[0].Wildcard || !w[1].Wildcard {
		t.Fatalf("ListWildcardAliases = %+v", w)
	}
	l, err := s.ListAliases(c, "example.com")
	must(t, err)
	if len(l) != 3 {
		t.Fatalf("ListAliases = %d aliases, want 3", len(l))
	}
	if n, err := s.CountAliases(c, "example.com"); err != nil || n != 3 {
		t.Fatalf("CountAliases = %d, %v", n, err)
	}
	if n, err := s.CountAliases(c, "other.example"); err != nil || n != 0 {
		t.Fatalf("CountAliases(other) = %d, %v", n, err)
	}

	a.Destination, a.Wildcard, a.Comment = []string{"c@example.com"}, false, "new"
	must(t, s.UpdateAlias(c, &a))
	recent(t, a.UpdatedAt, "UpdatedAt")
	got, err = s.GetAlias(c, "team@example.com")
	must(t, err)
	if !reflect.DeepEqual(*got, a) {
		t.Fatalf("after update GetAlias = %+v, want %+v", *got, a)
	}
	wantErr(t, s.UpdateAlias(c, &store.Alias{Email: "no@example.com"}), store.ErrNotFound, "UpdateAlias missing")
	must(t, s.DeleteAlias(c, "team@example.com"))
	_, err = s.GetAlias(c, "team@example.com")
	wantErr(t, err, store.ErrNotFound, "GetAlias after delete")
	wantErr(t, s.DeleteAlias(c, "team@example.com"), store.ErrNotFound, "DeleteAlias twice")
}

func testTokens(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	t1 := store.Token{UserEmail: "a@example.com", Password: "$pbkdf2-sha256$1$x", IP: []string{"192.0.2.0/24", "2001:db8::1"},
		Meta: store.Meta{Comment: "phone"}}
	must(t, s.CreateToken(c, &t1))
	t2 := store.Token{UserEmail: "a@example.com", Password: "p2"}
	must(t, s.CreateToken(c, &t2))
	t3 := store.Token{UserEmail: "b@example.com", Password: "p3"}
	must(t, s.CreateToken(c, &t3))
	if t1.ID == 0 || t1.ID == t2.ID || t2.ID == t3.ID || t1.ID == t3.ID {
		t.Fatalf("token IDs %d %d %d are not distinct and non-zero", t1.ID, t2.ID, t3.ID)
	}
	recent(t, t1.CreatedAt, "CreatedAt")
	wantErr(t, s.CreateToken(c, &store.Token{UserEmail: "nobody@example.com", Password: "x"}),
		store.ErrNotFound, "CreateToken for a missing user")

	got, err := s.GetToken(c, t1.ID)
	must(t, err)
	if !reflect.DeepEqual(*got, t1) {
		t.Fatalf("GetToken = %+v, want %+v", *got, t1)
	}
	l, err := s.ListTokens(c, "a@example.com")
	must(t, err)
	if len(l) != 2 || l[0].ID != t1.ID || l[1].ID != t2.ID || l[1].IP != nil {
		t.Fatalf("ListTokens(a) = %+v", l)
	}
	l, err = s.ListTokens(c, "")
	must(t, err)
	if len(l) != 3 {
		t.Fatalf("ListTokens(\"\") = %d tokens", len(l))
	}

	t1.Password, t1.IP, t1.Comment = "new", nil, "laptop"
	must(t, s.UpdateToken(c, &t1))
	recent(t, t1.UpdatedAt, "UpdatedAt")
	got, err = s.GetToken(c, t1.ID)
	must(t, err)
	if !reflect.DeepEqual(*got, t1) {
		t.Fatalf("after update GetToken = %+v, want %+v", *got, t1)
	}
	wantErr(t, s.UpdateToken(c, &store.Token{ID: 999999}), store.ErrNotFound, "UpdateToken missing")
	must(t, s.DeleteToken(c, t1.ID))
	_, err = s.GetToken(c, t1.ID)
	wantErr(t, err, store.ErrNotFound, "GetToken after delete")
	wantErr(t, s.DeleteToken(c, t1.ID), store.ErrNotFound, "DeleteToken twice")
}

func testManagers(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	must(t, s.CreateDomain(c, &store.Domain{Name: "z.example"}))
	must(t, s.AddManager(c, "example.com", "b@example.com"))
	must(t, s.AddManager(c, "example.com", "a@example.com"))
	must(t, s.AddManager(c, "z.example", "a@example.com"))
	wantErr(t, s.AddManager(c, "example.com", "a@example.com"), store.ErrExists, "AddManager twice")
	wantErr(t, s.AddManager(c, "missing.example", "a@example.com"), store.ErrNotFound, "AddManager missing domain")
	wantErr(t, s.AddManager(c, "example.com", "nobody@example.com"), store.ErrNotFound, "AddManager missing user")

	m, err := s.ListManagers(c, "example.com")
	must(t, err)
	if !reflect.DeepEqual(m, []string{"a@example.com", "b@example.com"}) {
		t.Fatalf("ListManagers = %v", m)
	}
	d, err := s.ManagedDomains(c, "a@example.com")
	must(t, err)
	if !reflect.DeepEqual(d, []string{"example.com", "z.example"}) {
		t.Fatalf("ManagedDomains = %v", d)
	}
	must(t, s.RemoveManager(c, "example.com", "a@example.com"))
	wantErr(t, s.RemoveManager(c, "example.com", "a@example.com"), store.ErrNotFound, "RemoveManager twice")
	m, err = s.ListManagers(c, "example.com")
	must(t, err)
	if !reflect.DeepEqual(m, []string{"b@example.com"}) {
		t.Fatalf("ListManagers after remove = %v", m)
	}
}

func testConfig(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	_, err := s.GetConfig(c, "motd")
	wantErr(t, err, store.ErrNotFound, "GetConfig missing")
	v := json.RawMessage(`{"text": "hello", "n": [1, 2]}`)
	must(t, s.SetConfig(c, "motd", v))
	got, err := s.GetConfig(c, "motd")
	must(t, err)
	if !jsonEqual(got, v) {
		t.Fatalf("GetConfig = %s, want %s", got, v)
	}
	must(t, s.SetConfig(c, "motd", json.RawMessage(`"replaced"`)))
	got, err = s.GetConfig(c, "motd")
	must(t, err)
	if !jsonEqual(got, json.RawMessage(`"replaced"`)) {
		t.Fatalf("GetConfig after overwrite = %s", got)
	}
	if err := s.SetConfig(c, "bad", json.RawMessage(`{not json`)); err == nil {
		t.Fatal("SetConfig accepted invalid JSON")
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func testCascadeDomain(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a")
	must(t, s.CreateDomain(c, &store.Domain{Name: "keep.example"}))
	k := store.NewUser("k", "keep.example", 0, 80)
	must(t, s.CreateUser(c, &k))
	must(t, s.CreateAlias(c, &store.Alias{Email: "al@example.com", Destination: []string{"a@example.com"}}))
	must(t, s.CreateAlternative(c, &store.Alternative{Name: "alt.example", DomainName: "example.com"}))
	must(t, s.AddManager(c, "example.com", "a@example.com"))
	must(t, s.AddManager(c, "keep.example", "a@example.com"))
	must(t, s.AddManager(c, "keep.example", "k@keep.example"))
	tok := store.Token{UserEmail: "a@example.com", Password: "x"}
	must(t, s.CreateToken(c, &tok))
	must(t, s.CreateRelay(c, &store.Relay{Name: "relay.example"}))

	must(t, s.DeleteDomain(c, "example.com"))
	_, err := s.GetUser(c, "a@example.com")
	wantErr(t, err, store.ErrNotFound, "user of deleted domain")
	_, err = s.GetAlias(c, "al@example.com")
	wantErr(t, err, store.ErrNotFound, "alias of deleted domain")
	_, err = s.GetAlternative(c, "alt.example")
	wantErr(t, err, store.ErrNotFound, "alternative of deleted domain")
	_, err = s.GetToken(c, tok.ID)
	wantErr(t, err, store.ErrNotFound, "token of user of deleted domain")
	m, err := s.ListManagers(c, "keep.example")
	must(t, err)
	if !reflect.DeepEqual(m, []string{"k@keep.example"}) {
		t.Fatalf("managers of keep.example = %v, want only k (a's row went with a)", m)
	}
	if _, err := s.GetUser(c, "k@keep.example"); err != nil {
		t.Fatalf("user of another domain: %v", err)
	}
	if _, err := s.GetRelay(c, "relay.example"); err != nil {
		t.Fatalf("relay: %v", err)
	}
}

func testCascadeUser(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	tok := store.Token{UserEmail: "a@example.com", Password: "x"}
	must(t, s.CreateToken(c, &tok))
	must(t, s.AddManager(c, "example.com", "a@example.com"))
	must(t, s.CommitMessages(c, []*store.NewMessage{
		msg("only-a", "a@example.com"),
		msg("both", "a@example.com", "b@example.com"),
	}))
	infoA, err := s.ListMessages(c, "a@example.com", "INBOX")
	must(t, err)
	infoB, err := s.ListMessages(c, "b@example.com", "INBOX")
	must(t, err)
	if len(infoA) != 2 || len(infoB) != 1 {
		t.Fatalf("before delete: a has %d, b has %d messages", len(infoA), len(infoB))
	}

	must(t, s.DeleteUser(c, "a@example.com"))
	_, err = s.GetToken(c, tok.ID)
	wantErr(t, err, store.ErrNotFound, "token of deleted user")
	if m, _ := s.ManagedDomains(c, "a@example.com"); len(m) != 0 {
		t.Fatalf("manager rows left: %v", m)
	}
	if mb, err := s.ListMailboxes(c, "a@example.com"); err != nil || len(mb) != 0 {
		t.Fatalf("mailboxes of deleted user: %v, %v", mb, err)
	}
	_, err = s.ListMessages(c, "a@example.com", "INBOX")
	wantErr(t, err, store.ErrNotFound, "INBOX of deleted user")
	// The body only a had is gone; the shared one stays for b.
	_, err = s.OpenBody(c, infoA[0].BodyID)
	wantErr(t, err, store.ErrNotFound, "body of deleted user's only message")
	if got := readBody(t, s, infoB[0].BodyID); string(got) != string(msg("both").Body) {
		t.Fatalf("b's body after a's deletion = %q", got)
	}
}

// InTx is exercised with several methods in one transaction.
func testInTxCommit(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	var tokID int64
	err := s.InTx(c, func(a store.Accounts) error {
		if err := a.CreateDomain(c, &store.Domain{Name: "tx.example", MaxUsers: 1}); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		d, err := a.GetDomain(c, "tx.example")
		if err != nil || d.MaxUsers != 1 {
			return errors.Join(errors.New("own write not visible"), err)
		}
		n, err := a.CountUsers(c, "tx.example")
		if err != nil || n != 0 {
			return errors.Join(errors.New("count"), err)
		}
		u := store.NewUser("u", "tx.example", 0, 80)
		if err := a.CreateUser(c, &u); err != nil {
			return err
		}
		tok := store.Token{UserEmail: u.Email, Password: "p"}
		if err := a.CreateToken(c, &tok); err != nil {
			return err
		}
		tokID = tok.ID
		return a.SetConfig(c, "k", json.RawMessage(`1`))
	})
	must(t, err)
	if _, err := s.GetUser(c, "u@tx.example"); err != nil {
		t.Fatalf("user created in committed tx: %v", err)
	}
	if _, err := s.GetToken(c, tokID); err != nil {
		t.Fatalf("token created in committed tx: %v", err)
	}
	if v, err := s.GetConfig(c, "k"); err != nil || string(v) != "1" {
		t.Fatalf("config set in committed tx: %s, %v", v, err)
	}
}

func testInTxRollback(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "keep")
	boom := errors.New("boom")
	err := s.InTx(c, func(a store.Accounts) error {
		if err := a.CreateDomain(c, &store.Domain{Name: "gone.example"}); err != nil {
			return err
		}
		u := store.NewUser("u", "gone.example", 0, 80)
		if err := a.CreateUser(c, &u); err != nil {
			return err
		}
		if err := a.DeleteUser(c, "keep@example.com"); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, err, boom, "InTx returns fn's error")
	_, err = s.GetDomain(c, "gone.example")
	wantErr(t, err, store.ErrNotFound, "domain from rolled-back tx")
	_, err = s.GetUser(c, "u@gone.example")
	wantErr(t, err, store.ErrNotFound, "user from rolled-back tx")
	if _, err := s.GetUser(c, "keep@example.com"); err != nil {
		t.Fatalf("user deleted in rolled-back tx is gone: %v", err)
	}

	// A store error inside fn also rolls everything back.
	err = s.InTx(c, func(a store.Accounts) error {
		if err := a.CreateRelay(c, &store.Relay{Name: "r.example"}); err != nil {
			return err
		}
		return a.CreateDomain(c, &store.Domain{Name: "example.com"})
	})
	wantErr(t, err, store.ErrNameInUse, "InTx with a failing create")
	_, err = s.GetRelay(c, "r.example")
	wantErr(t, err, store.ErrNotFound, "relay from rolled-back tx")
	// The store still works afterwards.
	must(t, s.CreateRelay(c, &store.Relay{Name: "r.example"}))
}
