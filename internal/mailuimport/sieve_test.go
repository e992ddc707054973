package mailuimport

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/store"
)

func newUser(t *testing.T, st store.Accounts, local, domain string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := st.GetDomain(ctx, domain); err != nil {
		if err := st.CreateDomain(ctx, &store.Domain{Name: domain, MaxUsers: -1, MaxAliases: -1}); err != nil {
			t.Fatal(err)
		}
	}
	u := store.NewUser(local, domain, 0, 80)
	u.Password = "x"
	if err := st.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	return u.Email
}

const (
	sieveFile1 = "require \"fileinto\";\nif header :contains \"subject\" \"[list]\" { fileinto \"Lists\"; }\n"
	sieveFile2 = "require \"vacation\";\nvacation :days 3 \"away\";\n"
)

// TestImportSieve: every sieve/*.sieve comes across by name, the one
// .dovecot.sieve points to active; compiled binaries and tmp/ are not
// scripts; a script Petrel cannot run is reported with its line; a
// regular .dovecot.sieve becomes the active "dovecot.orig" as Pigeonhole
// makes it; a second run changes nothing.
func TestImportSieve(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	anna := newUser(t, st, "anna", "one.test")
	bert := newUser(t, st, "bert", "one.test")
	mail := t.TempDir()
	ar := filepath.Join(mail, anna)
	write(t, filepath.Join(ar, "sieve", "roundcube.sieve"), sieveFile1)
	write(t, filepath.Join(ar, "sieve", "away.sieve"), sieveFile2)
	write(t, filepath.Join(ar, "sieve", "broken.sieve"), "keep;\n\nfileinto \"x\";\n")
	write(t, filepath.Join(ar, "sieve", "roundcube.svbin"), "\x00binary")
	write(t, filepath.Join(ar, "sieve", "tmp", "new.sieve"), "keep;")
	write(t, filepath.Join(ar, ".dovecot.svbin"), "\x00binary")
	if err := os.Symlink("sieve/away.sieve", filepath.Join(ar, ".dovecot.sieve")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mail, bert, ".dovecot.sieve"), sieveFile1)
	// cleo's link is absolute, to where Mailu mounted /mail.
	cleo := newUser(t, st, "cleo", "one.test")
	write(t, filepath.Join(mail, cleo, "sieve", "filters.sieve"), sieveFile1)
	if err := os.Symlink("/mail/cleo@one.test/sieve/filters.sieve", filepath.Join(mail, cleo, ".dovecot.sieve")); err != nil {
		t.Fatal(err)
	}

	rep, err := Run(ctx, st, Options{MailDir: mail, DryRun: true})
	if err != nil || rep.Created["Sieve script"] != 4 {
		t.Fatalf("dry run: %v %+v", err, rep)
	}
	if l, _ := st.ListSieveScripts(ctx, anna); len(l) != 0 {
		t.Fatalf("the dry run stored %v", l)
	}

	rep, err = Run(ctx, st, Options{MailDir: mail})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created["Sieve script"] != 4 || len(rep.Skips) != 1 {
		t.Fatalf("report %+v", rep)
	}
	if s := rep.Skips[0]; !strings.Contains(s.What, `"broken" of anna@one.test`) || !strings.Contains(s.Reason, "line 3") || s.Unsupported {
		t.Errorf("skip %+v", s)
	}
	check := func() {
		t.Helper()
		l, err := st.ListSieveScripts(ctx, anna)
		if err != nil || len(l) != 2 || l[0].Name != "away" || !l[0].Active || l[1].Name != "roundcube" || l[1].Active {
			t.Fatalf("anna's scripts %+v %v", l, err)
		}
		if b, err := st.GetSieveScript(ctx, anna, "roundcube"); err != nil || string(b) != sieveFile1 {
			t.Errorf("roundcube = %q %v", b, err)
		}
		name, b, err := st.SieveActiveScript(ctx, bert)
		if err != nil || name != origScript || string(b) != sieveFile1 {
			t.Errorf("bert's active script %q %q %v", name, b, err)
		}
		if name, _, err := st.SieveActiveScript(ctx, cleo); err != nil || name != "filters" {
			t.Errorf("cleo's active script %q %v", name, err)
		}
	}
	check()

	for _, dry := range []bool{true, false} {
		rep, err = Run(ctx, st, Options{MailDir: mail, DryRun: dry})
		if err != nil || rep.Created["Sieve script"] != 0 || rep.Present["Sieve script"] != 4 {
			t.Fatalf("second run (dry run %v): %v %+v", dry, err, rep)
		}
	}
	check()
}

// TestImportSieveActivatesAfterInterruption: a run that stopped after
// storing the active script but before activating it is finished by the
// next; a user who already has an active script keeps it.
func TestImportSieveActivatesAfterInterruption(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	anna := newUser(t, st, "anna", "one.test")
	bert := newUser(t, st, "bert", "one.test")
	mail := t.TempDir()
	for _, u := range []string{anna, bert} {
		write(t, filepath.Join(mail, u, "sieve", "away.sieve"), sieveFile2)
		if err := os.Symlink("sieve/away.sieve", filepath.Join(mail, u, ".dovecot.sieve")); err != nil {
			t.Fatal(err)
		}
		if err := st.PutSieveScript(ctx, u, "away", []byte(sieveFile2), store.SieveLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutSieveScript(ctx, bert, "mine", []byte("keep;"), store.SieveLimits{}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetActiveSieveScript(ctx, bert, "mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, st, Options{MailDir: mail}); err != nil {
		t.Fatal(err)
	}
	if name, _, err := st.SieveActiveScript(ctx, anna); err != nil || name != "away" {
		t.Errorf("anna's active script %q %v", name, err)
	}
	if name, _, err := st.SieveActiveScript(ctx, bert); err != nil || name != "mine" {
		t.Errorf("bert's active script %q %v", name, err)
	}
}

// mailuFetchDB writes a main.db with Mailu's fetch table and two
// accounts of one user.
func mailuFetchDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "main.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		`CREATE TABLE domain (created_at DATE NOT NULL, updated_at DATE, comment VARCHAR(255), name VARCHAR(80) PRIMARY KEY,
  max_users INTEGER NOT NULL, max_aliases INTEGER NOT NULL, max_quota_bytes BIGINT NOT NULL, signup_enabled BOOLEAN NOT NULL)`,
		`CREATE TABLE fetch (created_at DATE NOT NULL, updated_at DATE, comment VARCHAR(255), id INTEGER NOT NULL PRIMARY KEY,
  user_email VARCHAR(255) NOT NULL, protocol VARCHAR(4) NOT NULL, host VARCHAR(255) NOT NULL, port INTEGER NOT NULL,
  tls BOOLEAN NOT NULL, username VARCHAR(255) NOT NULL, password VARCHAR(255) NOT NULL, keep BOOLEAN NOT NULL,
  scan BOOLEAN NOT NULL, folders VARCHAR(1023), last_check DATETIME, error VARCHAR(1023))`,
		`INSERT INTO domain VALUES ('2020-01-02', NULL, NULL, 'one.test', -1, -1, 0, 0)`,
		`INSERT INTO fetch VALUES ('2021-03-04', NULL, 'old box', 1, 'anna@one.test', 'imap', 'imap.remote.test', 993, 1,
  'anna', 'remote-secret', 1, 0, 'INBOX,Junk', '2024-01-01 10:00:00', 'timeout')`,
		`INSERT INTO fetch VALUES ('2021-03-04', NULL, NULL, 2, 'anna@one.test', 'pop3', 'pop.remote.test', 110, 0,
  'a', 'p2', 0, 1, NULL, NULL, NULL)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
	return path
}

// TestImportFetch: Mailu's fetched accounts come across with their
// settings and the password sealed (it opens with the same key, and is
// nowhere in the report); a second run changes nothing.
func TestImportFetch(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	anna := newUser(t, st, "anna", "one.test")
	db := mailuFetchDB(t)
	sealer, err := fetch.NewSealerFor([]byte("test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, st, Options{DB: db, SealPassword: sealer.Seal})
	if err != nil || rep.Created["fetched account"] != 2 || rep.Failed() {
		t.Fatalf("%v %+v", err, rep)
	}
	var out strings.Builder
	rep.Write(&out)
	if strings.Contains(out.String(), "remote-secret") {
		t.Errorf("the report shows a password:\n%s", out.String())
	}
	fs, err := st.ListFetches(ctx, anna)
	if err != nil || len(fs) != 2 {
		t.Fatalf("fetches %+v %v", fs, err)
	}
	f := fs[0]
	if f.Host != "imap.remote.test" {
		f = fs[1]
	}
	if f.Protocol != "imap" || f.Port != 993 || !f.TLS || f.Username != "anna" || !f.Keep || f.Scan ||
		strings.Join(f.Folders, ",") != "INBOX,Junk" || f.Comment != "old box" {
		t.Errorf("fetch %+v", f)
	}
	if strings.Contains(f.Password, "remote-secret") {
		t.Fatal("password stored in clear")
	}
	if pw, err := sealer.Open(f.Password); err != nil || pw != "remote-secret" {
		t.Errorf("sealed password opens to %q, %v", pw, err)
	}
	other, _ := fetch.NewSealerFor([]byte("another-secret"))
	if _, err := other.Open(f.Password); err == nil {
		t.Error("another SECRET_KEY opens the password")
	}

	rep, err = Run(ctx, st, Options{DB: db, SealPassword: sealer.Seal})
	if err != nil || rep.Present["fetched account"] != 2 || rep.Created["fetched account"] != 0 {
		t.Fatalf("second run: %v %+v", err, rep)
	}
	if fs2, _ := st.ListFetches(ctx, anna); len(fs2) != 2 || fs2[0].Password != fs[0].Password {
		t.Errorf("second run changed the accounts: %+v", fs2)
	}

	// Without a key the accounts are reported, not stored in clear.
	st2 := openStore(t)
	newUser(t, st2, "anna", "one.test")
	rep, err = Run(ctx, st2, Options{DB: db})
	if err != nil || !rep.Failed() || !strings.Contains(rep.Skips[0].Reason, "no key") {
		t.Errorf("no key: %v %+v", err, rep)
	}
}
