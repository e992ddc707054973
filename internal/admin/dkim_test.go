package admin

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

func keyFile(t *testing.T, s *Service, domain string) []byte {
	t.Helper()
	b, err := os.ReadFile(must(s.keys.Path(domain)))
	if err != nil {
		t.Fatalf("key of %s: %v", domain, err)
	}
	return b
}

// Every way of creating a domain gives it a DKIM key in Mailu's format.
func TestNewDomainsGetDKIMKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)

	must(s.CreateDomain(ctx, "one.example", DefaultLimits()))
	must(s.AddDomain(ctx, NewDomain("two.example")))
	must(s.AddUser(ctx, s.NewUser("u", "three.example"), "pw", CreateOptions{CreateDomain: true}))
	must(s.CreateAdmin(ctx, "admin", "four.example", "pw", ModeCreate))
	must(s.AddAlias(ctx, store.Alias{Localpart: "a", DomainName: "five.example", Destination: []string{"x@remote.test"}}, CreateOptions{CreateDomain: true}))
	must(s.ImportUser(ctx, "imp", "six.example", "{BLF-CRYPT}$2b$04$abcdefghijklmnopqrstuuQ3o4dcmJ8.tD1U/0lQm3Jm0y2qL5j0W"))
	must(s.CreateDomain(ctx, "Bücher.Example", DefaultLimits()))
	for _, d := range []string{"one.example", "two.example", "three.example", "four.example", "five.example", "six.example", "xn--bcher-kva.example"} {
		pemKey := keyFile(t, s, d)
		if !bytes.HasPrefix(pemKey, []byte("-----BEGIN PRIVATE KEY-----\n")) {
			t.Errorf("%s: not a PKCS#8 PEM key (Mailu's format):\n%s", d, pemKey)
			continue
		}
		k, err := msgauth.ParsePrivateKey(pemKey)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if n := k.(*rsa.PrivateKey).N.BitLen(); n != 2048 {
			t.Errorf("%s: %d-bit key, want 2048", d, n)
		}
		info := must(s.DKIM(ctx, d))
		if !strings.HasPrefix(info.Record, "v=DKIM1; k=rsa; p=") || info.KeyDomain != d || info.Selector != "dkim" {
			t.Errorf("%s: DKIM info %+v", d, info)
		}
	}

	// A user in an existing domain does not touch its key.
	before := keyFile(t, s, "one.example")
	must(s.AddUser(ctx, s.NewUser("v", "one.example"), "pw", CreateOptions{CreateDomain: true}))
	must(s.CreateAdmin(ctx, "boss", "one.example", "pw", ModeCreate))
	if !bytes.Equal(before, keyFile(t, s, "one.example")) {
		t.Error("the key of an existing domain changed")
	}
	// An existing domain given to CreateDomain keeps its key too.
	if _, err := s.CreateDomain(ctx, "one.example", DefaultLimits()); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateDomain: %v", err)
	}
	if !bytes.Equal(before, keyFile(t, s, "one.example")) {
		t.Error("CreateDomain of an existing domain changed its key")
	}
}

// A Mailu key copied in before the domain is created is kept.
func TestNewDomainKeepsCopiedKey(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	other := secondService(t)
	must(other.CreateDomain(ctx, "example.com", DefaultLimits()))
	mailuKey := keyFile(t, other, "example.com")
	if err := s.keys.Store(context.Background(), "example.com", mailuKey); err != nil {
		t.Fatal(err)
	}
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	if !bytes.Equal(mailuKey, keyFile(t, s, "example.com")) {
		t.Error("the copied key was replaced")
	}
}

// secondService is newService for a second service in one test.
func secondService(t *testing.T) *Service {
	s, _ := newService(t)
	return s
}

// A key that cannot be written is reported; the domain stays.
func TestNewDomainKeyFailure(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(st, Options{CredentialRounds: 4, DKIMPath: filepath.Join(blocker, "{domain}.{selector}.key")})

	d, err := s.CreateDomain(ctx, "example.com", DefaultLimits())
	if d == nil || d.Name != "example.com" {
		t.Fatalf("domain not returned: %+v", d)
	}
	wantErr(t, err, ErrDKIMKey, "petrel dkim example.com")
	var ae *Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Msg, "domain example.com was created") {
		t.Errorf("message %q", err)
	}
	if _, err := st.GetDomain(ctx, "example.com"); err != nil {
		t.Errorf("the domain was undone: %v", err)
	}
	u, err := s.AddUser(ctx, s.NewUser("u", "other.example"), "pw", CreateOptions{CreateDomain: true})
	wantErr(t, err, ErrDKIMKey, "other.example")
	if u == nil {
		t.Error("user not returned")
	}
	if _, err := st.GetUser(ctx, "u@other.example"); err != nil {
		t.Errorf("the user was undone: %v", err)
	}
}

// Without DKIM_PATH nothing is generated and nothing fails.
func TestNoDKIMPath(t *testing.T) {
	ctx := context.Background()
	s := New(newStore(t), Options{CredentialRounds: 4})
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	if info := must(s.DKIM(ctx, "example.com")); info.Record != "" {
		t.Errorf("record without keys: %+v", info)
	}
	_, err := s.RegenerateDKIM(ctx, "example.com")
	wantErr(t, err, ErrInvalid, "DKIM_PATH")
}

func TestImportNewDomainKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	in := "domain:\n  - name: fresh.example\n  - name: removed.example\n    dkim_key: ''\n"
	if _, err := s.Import(ctx, []byte(in), ImportOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if keyExists(t, s, "fresh.example") {
		t.Error("a dry run wrote a key")
	}
	if _, err := s.Import(ctx, []byte(in), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !keyExists(t, s, "fresh.example") {
		t.Error("imported domain without dkim_key got no key")
	}
	if keyExists(t, s, "removed.example") {
		t.Error("dkim_key '' (no key) was overridden")
	}
	// A second import of the same domains creates nothing and keeps keys.
	before := keyFile(t, s, "fresh.example")
	if _, err := s.Import(ctx, []byte(in), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, keyFile(t, s, "fresh.example")) {
		t.Error("re-import changed the key")
	}
}

func TestDKIMAndRegenerate(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	must(s.CreateAlternative(ctx, "Alt.Example", "example.com"))
	must(s.CreateRelay(ctx, store.Relay{Name: "relay.example"}))

	dom := must(s.DKIM(ctx, "EXAMPLE.com"))
	alt := must(s.DKIM(ctx, "alt.example"))
	if alt.Domain != "alt.example" || alt.KeyDomain != "example.com" || alt.Record != dom.Record || dom.Record == "" {
		t.Errorf("alternative %+v, domain %+v", alt, dom)
	}
	for _, name := range []string{"unknown.example", "relay.example"} {
		_, err := s.DKIM(ctx, name)
		wantErr(t, err, store.ErrNotFound, name)
	}

	re := must(s.RegenerateDKIM(ctx, "example.com"))
	if re.Record == dom.Record || !strings.HasPrefix(re.Record, "v=DKIM1; k=rsa; p=") {
		t.Errorf("regenerated record %q (old %q)", re.Record, dom.Record)
	}
	if now := must(s.DKIM(ctx, "alt.example")); now.Record != re.Record {
		t.Error("the alternative does not follow its domain's new key")
	}
	_, err := s.RegenerateDKIM(ctx, "alt.example")
	wantErr(t, err, ErrInvalid, "regenerate the key of example.com")
	_, err = s.RegenerateDKIM(ctx, "unknown.example")
	wantErr(t, err, store.ErrNotFound, "unknown.example")

	// A domain whose key file was removed has no record until regenerated.
	if err := s.keys.Remove(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	if info := must(s.DKIM(ctx, "example.com")); info.Record != "" {
		t.Errorf("record without key: %+v", info)
	}
	if info := must(s.RegenerateDKIM(ctx, "example.com")); info.Record == "" {
		t.Error("no record after regenerating")
	}
}

func keyExists(t *testing.T, s *Service, domain string) bool {
	t.Helper()
	ok, err := s.keys.Exists(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
