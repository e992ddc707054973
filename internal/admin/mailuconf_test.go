package admin

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readSample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/mailu-export.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func importSample(t *testing.T, s *Service) *ImportResult {
	t.Helper()
	res, err := s.Import(context.Background(), readSample(t), ImportOptions{})
	if err != nil {
		t.Fatalf("import sample: %v", err)
	}
	return res
}

func exportText(t *testing.T, s *Service, opt ExportOptions) string {
	t.Helper()
	doc, err := s.Export(context.Background(), opt)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	y, err := doc.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return string(y)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestImportMailuSample(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	res := importSample(t, s)
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "fetches ignored") {
		t.Errorf("no warning about fetches: %v", res.Warnings)
	}
	if got, want := res.Summary(), "Created: alias(3) alternative(2) domain(2) manager(1) relay(2) token(2) user(3) / Modified: domain(1)"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}

	d := must(st.GetDomain(ctx, "xn--bcher-kva.example"))
	if d.MaxUsers != 5 || d.MaxAliases != -1 || d.MaxQuotaBytes != 0 {
		t.Errorf("bücher.example limits %+v", d)
	}
	d = must(st.GetDomain(ctx, "example.com"))
	if d.MaxUsers != 20 || d.MaxAliases != 50 || d.MaxQuotaBytes != 5000000000 || !d.SignupEnabled || d.Comment != "Main domain" {
		t.Errorf("example.com %+v", d)
	}
	if a := must(st.GetAlternative(ctx, "mail.example.org")); a.DomainName != "example.com" {
		t.Errorf("alternative %+v", a)
	}

	a := must(st.GetUser(ctx, "alice@example.com"))
	checks := []struct {
		name string
		ok   bool
	}{
		{"allow_spoofing", a.AllowSpoofing},
		{"change_pw_next_login", a.ChangePwNextLogin},
		{"comment", a.Comment == "every attribute set"},
		{"displayed_name", a.DisplayedName == "Alice Example"},
		{"enable_imap", !a.EnableIMAP},
		{"enable_pop", !a.EnablePOP},
		{"enabled", !a.Enabled},
		{"forward_destination", strings.Join(a.ForwardDestination, ",") == "alice@remote.example.org,archive@example.net"},
		{"forward_enabled", a.ForwardEnabled},
		{"forward_keep", !a.ForwardKeep},
		{"quota_bytes", a.QuotaBytes == 3000000000},
		{"reply_body", a.ReplyBody == "I am away until February.\nMail is read on return."},
		{"reply_enabled", a.ReplyEnabled},
		{"reply_startdate", a.ReplyStartDate.Equal(time.Date(2024, 12, 24, 0, 0, 0, 0, time.UTC))},
		{"reply_enddate", a.ReplyEndDate.Equal(time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC))},
		{"reply_subject", a.ReplySubject == "Out of office"},
		{"spam_enabled", !a.SpamEnabled},
		{"spam_mark_as_read", !a.SpamMarkAsRead},
		{"spam_threshold", a.SpamThreshold == 60},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("alice: %s not imported: %+v", c.name, a)
		}
	}
	for email, pw := range map[string]string{
		"admin@example.com":         "correct horse battery staple",
		"alice@example.com":         "password",
		"bob@xn--bcher-kva.example": "password",
	} {
		u := must(st.GetUser(ctx, email))
		if ok, _, err := auth.VerifyPassword(u.Password, pw); !ok || err != nil {
			t.Errorf("%s: imported hash %q does not verify: %v", email, u.Password, err)
		}
	}
	b := must(st.GetUser(ctx, "bob@xn--bcher-kva.example"))
	if b.QuotaBytes != mailuUserQuota || !b.Enabled || b.SpamThreshold != 80 {
		t.Errorf("bob defaults %+v", b)
	}
	toks := must(st.ListTokens(ctx, "admin@example.com"))
	if len(toks) != 2 {
		t.Fatalf("tokens %+v", toks)
	}
	for i, clear := range []string{"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"} {
		if ok, _ := auth.VerifyToken(toks[i].Password, clear); !ok {
			t.Errorf("token %d does not verify", i)
		}
	}
	if strings.Join(toks[1].IP, ",") != "10.0.0.7" || toks[0].Comment != "thunderbird" {
		t.Errorf("tokens %+v", toks)
	}
	if ms := must(st.ManagedDomains(ctx, "admin@example.com")); len(ms) != 1 || ms[0] != "example.com" {
		t.Errorf("managers %v", ms)
	}
	w := must(st.GetAlias(ctx, "%@xn--bcher-kva.example"))
	if !w.Wildcard || strings.Join(w.Destination, ",") != "bob@xn--bcher-kva.example" {
		t.Errorf("catch-all %+v", w)
	}
	if r := must(st.GetRelay(ctx, "backup.example.org")); r.SMTP != "mx.example.org" || r.Comment != "secondary MX" {
		t.Errorf("relay %+v", r)
	}
	fi, err := os.Stat(must(s.keys.Path("example.com")))
	if err != nil {
		t.Fatalf("dkim key not written: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("dkim key mode %v", fi.Mode())
	}
	key := must(s.readDKIM(context.Background(), "example.com"))
	if _, err := parseDKIMKey(key); err != nil {
		t.Errorf("written dkim key does not parse: %v", err)
	}
	// bücher.example came without a dkim_key: as a new domain it got one.
	if !keyExists(t, s, "xn--bcher-kva.example") {
		t.Error("the new domain without dkim_key got no DKIM key")
	}
}

func TestExportGolden(t *testing.T) {
	s, _ := newService(t)
	importSample(t, s)
	// The import gave bücher.example (no dkim_key in the sample) a new
	// random key, which no golden file can hold.
	if err := s.keys.Remove(context.Background(), "xn--bcher-kva.example"); err != nil {
		t.Fatal(err)
	}
	golden(t, "export-secrets.golden.yaml", exportText(t, s, ExportOptions{Secrets: true}))
	plain := exportText(t, s, ExportOptions{})
	if strings.Contains(plain, "$bcrypt") || strings.Contains(plain, "$pbkdf2") || strings.Contains(plain, "PRIVATE KEY") {
		t.Errorf("secrets in an export without --secrets:\n%s", plain)
	}
	if strings.Count(plain, "password: <hidden>") != 5 {
		t.Errorf("want 5 hidden passwords (3 users, 2 tokens):\n%s", plain)
	}
	doc := must(s.Export(context.Background(), ExportOptions{Only: []string{"domain.name", "relay"}}))
	j := string(must(doc.JSON()))
	if want := `{"domain":[{"name":"example.com"},{"name":"bücher.example"}],"relay":[{"name":"backup.example.org","comment":"secondary MX","smtp":"mx.example.org"},{"name":"lists.example.org"}]}` + "\n"; j != want {
		t.Errorf("filtered json\n got %s\nwant %s", j, want)
	}
}

func TestExportFilters(t *testing.T) {
	s, _ := newService(t)
	importSample(t, s)
	got := exportText(t, s, ExportOptions{Only: []string{"user.email", "user.password", "user.quota_bytes"}})
	if strings.Contains(got, "domain:") || strings.Contains(got, "<hidden>") || !strings.Contains(got, "$bcrypt-sha256$") {
		t.Errorf("named attributes should be shown, secrets too:\n%s", got)
	}
	if strings.Count(got, "quota_bytes:") != 3 {
		t.Errorf("named attribute at its default left out:\n%s", got)
	}
	full := exportText(t, s, ExportOptions{Full: true, Only: []string{"relay"}})
	if !strings.Contains(full, "smtp: null") || !strings.Contains(full, "comment: \"\"") {
		t.Errorf("full export lacks defaults:\n%s", full)
	}
	for _, bad := range []string{"users", "user.nothing", "config"} {
		if _, err := s.Export(context.Background(), ExportOptions{Only: []string{bad}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("filter %q: %v", bad, err)
		}
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	for _, opt := range []ExportOptions{{Secrets: true}, {Secrets: true, Full: true}} {
		a, _ := newService(t)
		importSample(t, a)
		first := exportText(t, a, opt)
		b, _ := newService(t)
		if _, err := b.Import(context.Background(), []byte(first), ImportOptions{}); err != nil {
			t.Fatalf("re-import (%+v): %v", opt, err)
		}
		if second := exportText(t, b, opt); second != first {
			t.Errorf("round trip (%+v) changed the export:\n--- first\n%s\n--- second\n%s", opt, first, second)
		}
		// JSON imports too.
		c, _ := newService(t)
		doc := must(a.Export(context.Background(), opt))
		if _, err := c.Import(context.Background(), must(doc.JSON()), ImportOptions{}); err != nil {
			t.Fatalf("json import: %v", err)
		}
		if third := exportText(t, c, opt); third != first {
			t.Errorf("json round trip changed the export")
		}
	}
}

func TestImportOwnExportWithoutSecretsChangesNothing(t *testing.T) {
	s, _ := newService(t)
	importSample(t, s)
	plain := exportText(t, s, ExportOptions{})
	res, err := s.Import(context.Background(), []byte(plain), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary() != "No changes." {
		t.Errorf("re-import of own export changed things: %v", res.Changes)
	}
	// A new user with a hidden password cannot be imported.
	fresh, _ := newService(t)
	_, err = fresh.Import(context.Background(), []byte(plain), ImportOptions{})
	var ie *ImportError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "--secrets") {
		t.Errorf("hidden password for a new user: %v", err)
	}
}

func TestImportReplace(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	importSample(t, s)
	before := must(st.GetUser(ctx, "admin@example.com"))
	doc := `
domain:
  - name: example.com
user:
  - email: admin@example.com
    password: <hidden>
    global_admin: true
`
	res, err := s.Import(ctx, []byte(doc), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Summary(), "Deleted: alias(3) alternative(2) domain(1) manager(1) relay(2) token(2) user(2) / Modified: domain(1) user(1)"; got != want {
		t.Errorf("summary %q\n want %q", got, want)
	}
	after := must(st.GetUser(ctx, "admin@example.com"))
	if after.Password != before.Password || !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("listed user was recreated or lost its hash: %+v", after)
	}
	if after.QuotaBytes != mailuUserQuota {
		t.Errorf("unlisted attribute not reset to default: quota %d", after.QuotaBytes)
	}
	d := must(st.GetDomain(ctx, "example.com"))
	if d.MaxUsers != -1 || d.Comment != "" || d.SignupEnabled {
		t.Errorf("domain not reset to defaults: %+v", d)
	}
	for _, n := range []int{len(must(st.ListRelays(ctx))), len(must(st.ListAliases(ctx, ""))), len(must(st.ListTokens(ctx, ""))), len(must(st.ListAlternatives(ctx, "")))} {
		if n != 0 {
			t.Errorf("unlisted rows kept")
		}
	}
	if !keyExists(t, s, "example.com") {
		t.Error("a domain without dkim_key lost its key")
	}
}

func TestImportUpdateNotation(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	importSample(t, s)
	doc := `
domain:
  - name: example.com
    alternatives: ['-example.net', 'New.Example.com']
    -max_users: null
  - -name: bücher.example
user:
  - email: alice@example.com
    -spam_threshold: null
    forward_destination: ['-archive@example.net']
    hash_password: true
    password: NewPass1
  - email: admin@example.com
    tokens:
      - -id: 2
      - comment: added
        hash_password: true
        password: '00000000000000000000000000000000'
relay:
  - -name: null
  - name: lists.example.org
    comment: kept
`
	res, err := s.Import(ctx, []byte(doc), ImportOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	alts := must(st.ListAlternatives(ctx, "example.com"))
	if len(alts) != 2 || alts[0].Name != "mail.example.org" && alts[1].Name != "mail.example.org" {
		t.Errorf("alternatives %+v", alts)
	}
	if _, err := st.GetAlternative(ctx, "new.example.com"); err != nil {
		t.Errorf("new alternative: %v", err)
	}
	if d := must(st.GetDomain(ctx, "example.com")); d.MaxUsers != -1 || d.MaxAliases != 50 {
		t.Errorf("reset max_users / kept max_aliases: %+v", d)
	}
	if _, err := st.GetDomain(ctx, "xn--bcher-kva.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted domain still there: %v", err)
	}
	if _, err := st.GetUser(ctx, "bob@xn--bcher-kva.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user of the deleted domain still there: %v", err)
	}
	a := must(st.GetUser(ctx, "alice@example.com"))
	if a.SpamThreshold != 80 || strings.Join(a.ForwardDestination, ",") != "alice@remote.example.org" || a.DisplayedName != "Alice Example" {
		t.Errorf("alice after update %+v", a)
	}
	if ok, _, _ := auth.VerifyPassword(a.Password, "NewPass1"); !ok {
		t.Error("hash_password did not set the new password")
	}
	toks := must(st.ListTokens(ctx, "admin@example.com"))
	if len(toks) != 2 || toks[0].ID != 1 || toks[1].Comment != "added" {
		t.Fatalf("tokens after update %+v", toks)
	}
	if ok, _ := auth.VerifyToken(toks[1].Password, "00000000000000000000000000000000"); !ok {
		t.Error("hashed token does not verify")
	}
	rs := must(st.ListRelays(ctx))
	if len(rs) != 1 || rs[0].Name != "lists.example.org" || rs[0].Comment != "kept" {
		t.Errorf("relays after prune %+v", rs)
	}
	// The same password again keeps the hash (Mailu: _add_instance).
	a1 := must(st.GetUser(ctx, "alice@example.com")).Password
	if _, err := s.Import(ctx, []byte("user:\n  - email: alice@example.com\n    hash_password: true\n    password: NewPass1\n"), ImportOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	if a2 := must(st.GetUser(ctx, "alice@example.com")).Password; a2 != a1 {
		t.Error("unchanged plain password re-hashed")
	}
}

func TestImportReportsEveryProblem(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	doc := `
domain:
  - name: example.com
    colour: blue
  - name: example.com
user:
  - email: nopass@example.com
  - email: x@missing.example
    password: $bcrypt-sha256$v=2,t=2b,r=5$9KAadbPPsPzRFPjdgr9ZVO$7z/grM.vMKMXCDDMC5fIqOUqSMTiNci
  - email: bad@example.com
    password: not-a-hash
    reply_startdate: someday
    quota_bytes: lots
alias:
  - email: nopass@example.com
    destination: [not-an-address]
relay:
  - name: example.com
config:
  - name: x
`
	_, err := s.Import(ctx, []byte(doc), ImportOptions{})
	var ie *ImportError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ImportError, got %v", err)
	}
	msg := err.Error()
	for _, part := range []string{
		"config: Unknown field.",
		"domain.0.colour: Unknown field.",
		"domain.1.name: duplicate domain",
		"user.0.password: Missing data",
		"user.1.email: domain missing.example does not exist",
		"user.2.password: invalid password hash",
		"user.2.reply_startdate: Not a valid date.",
		"user.2.quota_bytes: Not a valid integer.",
		"alias.0.destination",
	} {
		if !strings.Contains(msg, part) {
			t.Errorf("problem %q not reported in:\n%s", part, strings.Join(ie.Problems, "\n"))
		}
	}
	if strings.Contains(msg, "\n") {
		t.Error("error message spans lines")
	}
	if ds := must(st.ListDomains(ctx)); len(ds) != 0 {
		t.Errorf("failed import left rows: %v", ds)
	}
	// Cross-reference problems show up once the syntax is right.
	_, err = s.Import(ctx, []byte("domain:\n  - name: example.com\nrelay:\n  - name: example.com\n"), ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "relay.0.name: example.com is already a domain") {
		t.Errorf("name collision: %v", err)
	}
	_, err = s.Import(ctx, []byte("[1, 2]"), ImportOptions{})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("list input: %v", err)
	}
	_, err = s.Import(ctx, []byte("domain:\n  - -name: example.com\n"), ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "Missing data") {
		t.Errorf("delete notation outside update mode: %v", err)
	}
}

func TestImportDryRun(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	res, err := s.Import(ctx, readSample(t), ImportOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || len(res.Changes) < 10 {
		t.Fatalf("dry run reported %+v", res)
	}
	if ds := must(st.ListDomains(ctx)); len(ds) != 0 {
		t.Errorf("dry run wrote domains: %v", ds)
	}
	if us := must(st.ListUsers(ctx, "")); len(us) != 0 {
		t.Errorf("dry run wrote users: %v", us)
	}
	if keyExists(t, s, "example.com") {
		t.Error("dry run wrote a dkim key")
	}
}

func TestDKIMKeyForms(t *testing.T) {
	s, _ := newService(t)
	if _, err := s.Import(context.Background(), []byte("domain:\n  - name: gen.example\n    dkim_key: -generate-\n"), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	pemKey := must(s.readDKIM(context.Background(), "gen.example"))
	if !strings.Contains(pemKey, "BEGIN PRIVATE KEY") {
		t.Fatalf("-generate- wrote %q", pemKey)
	}
	lines := strings.Split(strings.TrimSpace(pemKey), "\n")
	body := strings.Join(lines[1:len(lines)-1], "")
	for name, in := range map[string]string{"pem": pemKey, "bare base64": body} {
		out, err := parseDKIMKey(in)
		if err != nil || strings.TrimSpace(out) != strings.TrimSpace(pemKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := parseDKIMKey("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"); err == nil {
		t.Error("garbage key accepted")
	}
	doc := "domain:\n  - name: gen.example\n    dkim_key: ''\n"
	if _, err := s.Import(context.Background(), []byte(doc), ImportOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	if keyExists(t, s, "gen.example") {
		t.Error("empty dkim_key did not remove the key")
	}
	_, err := s.Import(context.Background(), []byte("domain:\n  - name: gen.example\n    dkim_key: not a key\n"), ImportOptions{Update: true})
	if err == nil || !strings.Contains(err.Error(), "invalid dkim key") {
		t.Errorf("bad key: %v", err)
	}
}

// FuzzImportParse feeds arbitrary documents to the import parser and the
// state builder; neither may panic, and a document either yields problems
// or a state.
func FuzzImportParse(f *testing.F) {
	f.Add(readSampleF(f))
	f.Add([]byte("domain:\n  - name: example.com\n    alternatives: ['-x', '-prune-']\n"))
	f.Add([]byte(`{"user":[{"email":"a@b.c","password":"<hidden>","tokens":[{"-id":null}]}]}`))
	f.Add([]byte("user:\n  - -email: null\n  - email: x@y.z\n    -quota_bytes: null\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, upd := range []bool{false, true} {
			s := New(nil, Options{CredentialRounds: 4})
			im := &importer{s: s, opt: ImportOptions{Update: upd}, res: &ImportResult{}, paths: map[string]string{}, dkim: map[string]dkimOp{}}
			secs := im.parse(data)
			if secs == nil {
				if len(im.probs) == 0 {
					t.Fatal("no sections and no problem")
				}
				continue
			}
			old := newState()
			want := im.build(old, secs)
			if want == nil {
				t.Fatal("nil state")
			}
		}
	})
}

func readSampleF(f testing.TB) []byte {
	b, err := os.ReadFile("testdata/mailu-export.yaml")
	if err != nil {
		f.Fatal(err)
	}
	return b
}
