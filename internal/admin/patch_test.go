package admin

import (
	"context"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

func TestAddDomainWithAlternativesIsAtomic(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	must(s.CreateRelay(ctx, store.Relay{Name: "taken.example"}))
	_, err := s.AddDomainWithAlternatives(ctx, NewDomain("new.example"), []string{"ok.example", "taken.example"})
	wantErr(t, err, store.ErrNameInUse, "taken.example")
	if _, err := st.GetDomain(ctx, "new.example"); err == nil {
		t.Fatal("domain created although an alternative clashed")
	}
	if _, err := st.GetAlternative(ctx, "ok.example"); err == nil {
		t.Fatal("first alternative created although the second clashed")
	}
	_, err = s.AddDomainWithAlternatives(ctx, NewDomain("new.example"), []string{"a.example", "A.example"})
	wantErr(t, err, store.ErrNameInUse, "duplicate")
	_, err = s.AddDomainWithAlternatives(ctx, NewDomain("new.example"), []string{"bad..example"})
	wantErr(t, err, ErrInvalid, "not a valid domain")
	d := must(s.AddDomainWithAlternatives(ctx, NewDomain("Bücher.example"), []string{"alt.example"}))
	if d.Name != "xn--bcher-kva.example" {
		t.Fatalf("name %q", d.Name)
	}
	if alts := must(s.Alternatives(ctx, "bücher.example")); len(alts) != 1 || alts[0].Name != "alt.example" {
		t.Fatalf("alternatives %v", alts)
	}
	if _, err := s.DKIM(ctx, d.Name); err != nil {
		t.Fatalf("no DKIM for the new domain: %v", err)
	}
}

func TestPatchDomainAddsAlternativesAtomically(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	must(s.CreateDomain(ctx, "other.example", DefaultLimits()))
	err := s.PatchDomain(ctx, "example.com", func(d *store.Domain) { d.MaxUsers = 7 }, []string{"fresh.example", "other.example"})
	wantErr(t, err, store.ErrNameInUse, "other.example")
	if d := must(st.GetDomain(ctx, "example.com")); d.MaxUsers != -1 {
		t.Fatalf("max_users changed to %d by a refused patch", d.MaxUsers)
	}
	if _, err := st.GetAlternative(ctx, "fresh.example"); err == nil {
		t.Fatal("alternative of a refused patch exists")
	}
	err = s.PatchDomain(ctx, "example.com", func(d *store.Domain) { d.MaxAliases = -5 }, nil)
	wantErr(t, err, ErrInvalid, "max_aliases")
	if err := s.PatchDomain(ctx, "example.com", func(d *store.Domain) { d.Name = "renamed.example"; d.Comment = "c" }, []string{"fresh.example"}); err != nil {
		t.Fatal(err)
	}
	if d := must(st.GetDomain(ctx, "example.com")); d.Comment != "c" {
		t.Fatalf("comment %q (and the rename must be ignored)", d.Comment)
	}
	wantErr(t, s.PatchDomain(ctx, "none.example", func(*store.Domain) {}, nil), store.ErrNotFound, "none.example")
}

func TestPatchUser(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	must(s.CreateDomain(ctx, "example.com", Limits{MaxUsers: -1, MaxAliases: -1, MaxQuotaBytes: 5000}))
	u := s.NewUser("alice", "example.com")
	u.QuotaBytes = 1000
	must(s.AddUser(ctx, u, "old-pw", CreateOptions{}))
	before := must(st.GetUser(ctx, "alice@example.com"))

	// A refused change leaves everything, the password included, as it was.
	err := s.PatchUser(ctx, "alice@example.com", func(u *store.User) { u.QuotaBytes = 9000; u.Comment = "x" }, "new-pw")
	wantErr(t, err, store.ErrLimit, "max_quota_bytes")
	err = s.PatchUser(ctx, "alice@example.com", func(u *store.User) { u.ForwardEnabled = true }, "")
	wantErr(t, err, ErrInvalid, "forward_destination")
	after := must(st.GetUser(ctx, "alice@example.com"))
	if after.Password != before.Password || after.Comment != before.Comment || after.QuotaBytes != before.QuotaBytes {
		t.Fatal("refused patches changed the user")
	}
	// Renames are ignored; the password is set in the same step.
	if err := s.PatchUser(ctx, "Alice@Example.com", func(u *store.User) { u.Email = "eve@example.com"; u.DisplayedName = "Alice" }, "new-pw"); err != nil {
		t.Fatal(err)
	}
	got := must(st.GetUser(ctx, "alice@example.com"))
	if ok, _, _ := auth.VerifyPassword(got.Password, "new-pw"); !ok || got.DisplayedName != "Alice" {
		t.Fatalf("after patch: %+v", got)
	}
	if !scramMatches(got.Scram, "new-pw") {
		t.Fatal("PatchUser did not store SCRAM credentials for the new password")
	}
	wantErr(t, s.PatchUser(ctx, "none@example.com", func(*store.User) {}, "pw"), store.ErrNotFound, "none@example.com")
}

func TestAddManagerAndReads(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	must(s.CreateDomain(ctx, "example.com", DefaultLimits()))
	must(s.CreateUser(ctx, "alice", "example.com", "pw"))
	if err := s.AddManager(ctx, "example.com", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.AddManager(ctx, "example.com", "alice@example.com"), store.ErrExists, "already a manager")
	wantErr(t, s.AddManager(ctx, "example.com", "bob@example.com"), store.ErrNotFound, "bob@example.com")
	if ok := must(s.IsManager(ctx, "example.com", "ALICE@example.com")); !ok {
		t.Fatal("IsManager false for a manager")
	}
	_, err := s.Domain(ctx, "bad..example")
	wantErr(t, err, ErrInvalid, "")
	_, err = s.Users(ctx, "none.example")
	wantErr(t, err, store.ErrNotFound, "none.example")
	_, err = s.Token(ctx, 42)
	wantErr(t, err, store.ErrNotFound, "42")
	recs := must(s.DNSRecords(ctx, "example.com", DNSOptions{Hostnames: []string{"mail.example.com"}, Ports: []int{25, 443}, TLS: true}))
	found := false
	for _, r := range recs {
		found = found || r.Name == "_autodiscover._tcp.example.com."
	}
	if !found {
		t.Fatalf("no _autodiscover SRV record: %v", recs)
	}
}
