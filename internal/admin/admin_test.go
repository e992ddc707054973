package admin

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// newStore opens a real SQLite store in a temporary directory.
func newStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: "sqlite", Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newService(t *testing.T) (*Service, *sqlstore.Store) {
	t.Helper()
	st := newStore(t)
	dir := t.TempDir()
	return New(st, Options{CredentialRounds: 4, DefaultQuota: 1000, DKIMPath: filepath.Join(dir, "dkim", "{domain}.{selector}.key")}), st
}

func wantErr(t *testing.T, err, kind error, msgPart string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	if msgPart != "" && !strings.Contains(err.Error(), msgPart) {
		t.Fatalf("error %q does not mention %q", err, msgPart)
	}
}

// must returns v, or panics (failing the test with a stack trace) on err.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCreateDomainNormalisation(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	d := must(s.CreateDomain(ctx, "Bücher.Example.", DefaultLimits()))
	if d.Name != "xn--bcher-kva.example" {
		t.Fatalf("name %q, want xn--bcher-kva.example", d.Name)
	}
	if _, err := st.GetDomain(ctx, "xn--bcher-kva.example"); err != nil {
		t.Fatalf("stored domain not found: %v", err)
	}
	_, err := s.CreateDomain(ctx, "BÜCHER.example", DefaultLimits())
	wantErr(t, err, store.ErrExists, "already exists")
	for _, bad := range []string{"", "a..b", "[10.0.0.1]", "-bad.example", "sp ace.example"} {
		_, err := s.CreateDomain(ctx, bad, DefaultLimits())
		wantErr(t, err, ErrInvalid, "")
	}
	_, err = s.CreateDomain(ctx, "x.example", Limits{MaxUsers: -2, MaxAliases: -1})
	wantErr(t, err, ErrInvalid, "max_users")
	_, err = s.CreateDomain(ctx, "x.example", Limits{MaxUsers: -1, MaxAliases: -1, MaxQuotaBytes: -5})
	wantErr(t, err, ErrInvalid, "max_quota_bytes")
}

func TestNameCollisions(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	must(s.CreateAlternative(ctx, "example.net", "example.com"))
	must(s.CreateRelay(ctx, store.Relay{Name: "relay.example.org", SMTP: "mx.example.org:25"}))

	_, err := s.CreateDomain(ctx, "Example.NET", DefaultLimits())
	wantErr(t, err, store.ErrNameInUse, "alternative")
	_, err = s.CreateDomain(ctx, "relay.example.org", DefaultLimits())
	wantErr(t, err, store.ErrNameInUse, "relayed")
	_, err = s.CreateAlternative(ctx, "example.com", "example.com")
	wantErr(t, err, store.ErrNameInUse, "domain")
	_, err = s.CreateRelay(ctx, store.Relay{Name: "example.net"})
	wantErr(t, err, store.ErrNameInUse, "")
	_, err = s.CreateAlternative(ctx, "alt.example", "missing.example")
	wantErr(t, err, store.ErrNotFound, "missing.example")
	_, err = s.CreateRelay(ctx, store.Relay{Name: "r.example", SMTP: "bad host"})
	wantErr(t, err, ErrInvalid, "transport")
}

func TestUserLimitsAndCollisions(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	must(s.CreateDomain(ctx, "example.com", Limits{MaxUsers: 2, MaxAliases: 1, MaxQuotaBytes: 0}))
	must(s.CreateUser(ctx, "a", "example.com", "pw-a"))
	must(s.CreateUser(ctx, "b", "example.com", "pw-b"))
	_, err := s.CreateUser(ctx, "c", "example.com", "pw-c")
	wantErr(t, err, store.ErrLimit, "domain example.com has reached max_users (2)")

	must(s.CreateAlias(ctx, "x", "example.com", []string{"a@example.com"}, false))
	_, err = s.CreateAlias(ctx, "y", "example.com", []string{"a@example.com"}, false)
	wantErr(t, err, store.ErrLimit, "max_aliases (1)")

	// A user and an alias cannot share an address.
	if err := s.SetLimits(ctx, "example.com", DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateUser(ctx, "X", "example.com", "pw")
	wantErr(t, err, store.ErrExists, "x@example.com is already an alias")
	_, err = s.CreateAlias(ctx, "a", "example.com", []string{"b@example.com"}, false)
	wantErr(t, err, store.ErrExists, "already a user")
	_, err = s.CreateUser(ctx, "A", "EXAMPLE.com", "pw")
	wantErr(t, err, store.ErrExists, "")

	// max_users 0 means none (Mailu: max_users != -1).
	must(s.CreateDomain(ctx, "closed.example", Limits{MaxUsers: 0, MaxAliases: 0}))
	_, err = s.CreateUser(ctx, "a", "closed.example", "pw")
	wantErr(t, err, store.ErrLimit, "max_users (0)")
}

func TestQuotaLimit(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t) // DefaultQuota 1000
	must(s.CreateDomain(ctx, "example.com", Limits{MaxUsers: -1, MaxAliases: -1, MaxQuotaBytes: 500}))
	u := must(s.CreateUser(ctx, "a", "example.com", "pw"))
	if u.QuotaBytes != 500 {
		t.Fatalf("default quota above max_quota_bytes not lowered: %d", u.QuotaBytes)
	}
	nu := s.NewUser("b", "example.com")
	nu.QuotaBytes = 600
	_, err := s.AddUser(ctx, nu, "pw", CreateOptions{})
	wantErr(t, err, store.ErrLimit, "max_quota_bytes (500)")
	nu.QuotaBytes = 0
	_, err = s.AddUser(ctx, nu, "pw", CreateOptions{})
	wantErr(t, err, store.ErrLimit, "unlimited")

	got := must(st.GetUser(ctx, "a@example.com"))
	got.QuotaBytes = 501
	wantErr(t, s.UpdateUser(ctx, *got), store.ErrLimit, "max_quota_bytes")
	got.QuotaBytes = 400
	if err := s.UpdateUser(ctx, *got); err != nil {
		t.Fatal(err)
	}
	if g := must(st.GetUser(ctx, "a@example.com")); g.QuotaBytes != 400 {
		t.Fatalf("quota %d after update", g.QuotaBytes)
	}
}

func TestCreateUserNormalisationAndPassword(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	_, err := s.CreateUser(ctx, "alice", "example.com", "pw")
	wantErr(t, err, store.ErrNotFound, "domain example.com does not exist")

	u := must(s.AddUser(ctx, s.NewUser("Alice", "BÜCHER.example"), "s3cret", CreateOptions{CreateDomain: true}))
	if u.Email != "alice@xn--bcher-kva.example" || u.Localpart != "alice" || u.DomainName != "xn--bcher-kva.example" {
		t.Fatalf("not normalised: %+v", u)
	}
	got := must(st.GetUser(ctx, "alice@xn--bcher-kva.example"))
	if ok, _, err := auth.VerifyPassword(got.Password, "s3cret"); !ok || err != nil {
		t.Fatalf("stored hash does not verify: %v %v", ok, err)
	}
	if got.QuotaBytes != 1000 || got.SpamThreshold != 80 || !got.Enabled {
		t.Fatalf("defaults not applied: %+v", got)
	}
	if !scramMatches(got.Scram, "s3cret") {
		t.Fatalf("no SCRAM credentials for the new password: %+v", got.Scram)
	}
	_, err = s.AddUser(ctx, s.NewUser("bob", "example.org"), "", CreateOptions{CreateDomain: true})
	wantErr(t, err, ErrInvalid, "empty password")
	if _, err := st.GetDomain(ctx, "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused user left its domain behind: %v", err)
	}
	_, err = s.CreateUser(ctx, "a@b", "xn--bcher-kva.example", "pw")
	wantErr(t, err, ErrInvalid, "")

	// SetPassword, DisableUser, DeleteUser.
	if err := s.SetPassword(ctx, "ALICE@bücher.example", "n3w"); err != nil {
		t.Fatal(err)
	}
	got = must(st.GetUser(ctx, "alice@xn--bcher-kva.example"))
	if ok, _, _ := auth.VerifyPassword(got.Password, "n3w"); !ok {
		t.Fatal("new password does not verify")
	}
	if !scramMatches(got.Scram, "n3w") {
		t.Fatal("SetPassword did not store SCRAM credentials for the new password")
	}
	wantErr(t, s.SetPassword(ctx, "nobody@xn--bcher-kva.example", "x"), store.ErrNotFound, "does not exist")
	wantErr(t, s.SetPassword(ctx, "alice@xn--bcher-kva.example", ""), ErrInvalid, "empty password")
	if err := s.DisableUser(ctx, "alice@bücher.example"); err != nil {
		t.Fatal(err)
	}
	if got := must(st.GetUser(ctx, "alice@xn--bcher-kva.example")); got.Enabled {
		t.Fatal("user still enabled")
	}
	if err := s.DeleteUser(ctx, "alice@bücher.example"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteUser(ctx, "alice@bücher.example"), store.ErrNotFound, "")
}

func TestImportUserKeepsHash(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	const h = "{SHA512-CRYPT}$6$279eNYuRaK7aWw8c$RDW9bGXoat/e3k/7lg2Fo7gIjaAHQMWSc7xIBTQbFuxVs1PSpz1oMbd0UVYoExKoxUM0DrSg1uMnacwt19N7Q0"
	must(s.ImportUser(ctx, "old", "legacy.example", h))
	got := must(st.GetUser(ctx, "old@legacy.example"))
	if got.Password != h {
		t.Fatalf("hash changed: %q", got.Password)
	}
	if ok, _, err := auth.VerifyPassword(got.Password, "password"); !ok || err != nil {
		t.Fatalf("imported hash does not verify: %v %v", ok, err)
	}
	_, err := s.ImportUser(ctx, "x", "legacy.example", " ")
	wantErr(t, err, ErrInvalid, "empty password hash")
}

func TestAliasValidation(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	a := must(s.CreateAlias(ctx, "Sales", "example.com", []string{"B@Example.com", "a@EXAMPLE.com", "b@example.com"}, false))
	if a.Email != "sales@example.com" || strings.Join(a.Destination, ",") != "a@example.com,b@example.com" {
		t.Fatalf("alias not normalised: %+v", a)
	}
	w := must(s.CreateAlias(ctx, "%", "example.com", []string{"a@example.com"}, true))
	if !w.Wildcard || w.Email != "%@example.com" {
		t.Fatalf("wildcard alias: %+v", w)
	}
	_, err := s.CreateAlias(ctx, "x", "example.com", []string{"not-an-address"}, false)
	wantErr(t, err, ErrInvalid, "not-an-address")
	_, err = s.CreateAlias(ctx, "x", "example.com", nil, false)
	wantErr(t, err, ErrInvalid, "destination")
	long := make([]string, 0, 200)
	for i := 0; i < 200; i++ {
		long = append(long, strings.Repeat("x", 20)+string(rune('a'+i%26))+strings.Repeat("y", i%7)+"@example.com")
	}
	_, err = ParseDestinations(strings.Join(long, ","))
	wantErr(t, err, ErrInvalid, "4096")
	if _, err := ParseDestinations(" , "); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty destination accepted: %v", err)
	}
	if err := s.DeleteAlias(ctx, "SALES@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAlias(ctx, "sales@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("alias not deleted: %v", err)
	}
	wantErr(t, s.DeleteAlias(ctx, "sales@example.com"), store.ErrNotFound, "")
}

func TestManagersAndTokens(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	must(s.CreateUser(ctx, "boss", "example.com", "pw"))
	if err := s.SetManager(ctx, "example.com", "boss"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetManager(ctx, "EXAMPLE.COM", "Boss@example.com"); err != nil {
		t.Fatalf("adding an existing manager again: %v", err)
	}
	ms := must(st.ListManagers(ctx, "example.com"))
	if len(ms) != 1 || ms[0] != "boss@example.com" {
		t.Fatalf("managers %v", ms)
	}
	wantErr(t, s.SetManager(ctx, "example.com", "nobody"), store.ErrNotFound, "nobody@example.com")
	wantErr(t, s.SetManager(ctx, "missing.example", "boss@example.com"), store.ErrNotFound, "missing.example")
	if err := s.RemoveManager(ctx, "example.com", "boss"); err != nil {
		t.Fatal(err)
	}

	clear, tok, err := s.CreateToken(ctx, "boss@example.com", "phone", []string{"10.0.0.0/8", "192.0.2.1", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	got := must(st.GetToken(ctx, tok.ID))
	if ok, _ := auth.VerifyToken(got.Password, clear); !ok {
		t.Fatal("token hash does not verify the clear token")
	}
	if strings.Join(got.IP, ",") != "10.0.0.0/8,192.0.2.1" {
		t.Fatalf("token ips %v", got.IP)
	}
	_, _, err = s.CreateToken(ctx, "boss@example.com", "", []string{"not-ip"})
	wantErr(t, err, ErrInvalid, "not-ip")
	_, _, err = s.CreateToken(ctx, "ghost@example.com", "", nil)
	wantErr(t, err, store.ErrNotFound, "")
	if err := s.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteToken(ctx, tok.ID), store.ErrNotFound, "")
}

// failingStore fails CreateUser inside transactions, to prove that a
// multi-step change leaves nothing half-written.
type failingStore struct{ store.Store }

type failingAccounts struct{ store.Accounts }

func (failingAccounts) CreateUser(context.Context, *store.User) error {
	return errors.New("injected failure")
}

func (f failingStore) InTx(ctx context.Context, fn func(store.Accounts) error) error {
	return f.Store.InTx(ctx, func(tx store.Accounts) error { return fn(failingAccounts{tx}) })
}

func TestRollbackOnFailure(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	s := New(failingStore{st}, Options{CredentialRounds: 4})
	_, err := s.AddUser(ctx, s.NewUser("a", "new.example"), "pw", CreateOptions{CreateDomain: true})
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("want the injected failure, got %v", err)
	}
	if _, err := st.GetDomain(ctx, "new.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("domain created before the failing step was kept: %v", err)
	}
	_, err = s.CreateAdmin(ctx, "root", "admin.example", "pw", ModeCreate)
	if err == nil {
		t.Fatal("admin creation should fail")
	}
	if ds := must(st.ListDomains(ctx)); len(ds) != 0 {
		t.Fatalf("domains left behind: %v", ds)
	}
}

func TestCreateAdminModes(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	verify := func(pw string) bool {
		u := must(st.GetUser(ctx, "root@example.com"))
		ok, _, _ := auth.VerifyPassword(u.Password, pw)
		return ok && u.GlobalAdmin
	}
	if r, err := s.EnsureInitialAdmin(ctx, "", "example.com", "x", ""); err != nil || r != 0 {
		t.Fatalf("empty account: %v %v", r, err)
	}
	if r := must(s.EnsureInitialAdmin(ctx, "root", "example.com", "first", "")); r != AdminCreated {
		t.Fatalf("ifmissing on a new user: %v", r)
	}
	if _, err := st.GetDomain(ctx, "example.com"); err != nil {
		t.Fatalf("admin did not create its domain: %v", err)
	}
	if !verify("first") {
		t.Fatal("first password does not verify")
	}
	if r := must(s.EnsureInitialAdmin(ctx, "root", "example.com", "second", ModeIfMissing)); r != AdminUnchanged {
		t.Fatalf("ifmissing on an existing user: %v", r)
	}
	if !verify("first") {
		t.Fatal("ifmissing changed the password")
	}
	_, err := s.CreateAdmin(ctx, "root", "example.com", "third", ModeCreate)
	wantErr(t, err, store.ErrExists, "root@example.com exists")
	if r := must(s.CreateAdmin(ctx, "root", "example.com", "fourth", ModeUpdate)); r != AdminUpdated {
		t.Fatalf("update: %v", r)
	}
	if !verify("fourth") {
		t.Fatal("update did not set the password")
	}
	// update makes an existing ordinary user an admin.
	must(s.CreateUser(ctx, "plain", "example.com", "pw"))
	must(s.CreateAdmin(ctx, "plain", "example.com", "pw2", ModeUpdate))
	if u := must(st.GetUser(ctx, "plain@example.com")); !u.GlobalAdmin {
		t.Fatal("update did not make the user an admin")
	}
	_, err = s.CreateAdmin(ctx, "x", "example.com", "pw", "sometimes")
	wantErr(t, err, ErrInvalid, "invalid mode")
	_, err = s.EnsureInitialAdmin(ctx, "x", "example.com", "", "")
	wantErr(t, err, ErrInvalid, "INITIAL_ADMIN_PW")
}

// scramMatches reports whether c are password's SCRAM-SHA-256
// credentials (RFC 5802 3).
func scramMatches(c store.ScramCredentials, password string) bool {
	if !c.Valid() {
		return false
	}
	salted, err := pbkdf2.Key(sha256.New, password, c.Salt, c.Iterations, 32)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, salted)
	m.Write([]byte("Client Key"))
	stored := sha256.Sum256(m.Sum(nil))
	return hmac.Equal(stored[:], c.StoredKey)
}
