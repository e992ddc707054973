package admin

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// A user with two fetched accounts as Mailu's config-export writes them
// (passwords in clear, folders as a list).
const fetchMailu = `
domain:
- name: example.com
user:
- email: alice@example.com
  password: secret
  hash_password: true
  fetches:
  - id: 7
    protocol: imap
    host: IMAP.Remote.test
    port: 993
    tls: true
    username: alice@remote.test
    password: remote-pw-1
    keep: true
    scan: false
    folders: [INBOX, Junk]
    comment: old provider
  - id: 8
    protocol: pop3
    host: pop.remote.test
    port: 110
    tls: false
    username: alice2
    password: remote-pw-2
    keep: false
    scan: true
    folders: []
`

func fetchService(t *testing.T, key byte) (*Service, *sqlstore.Store, *fetch.Sealer) {
	t.Helper()
	svc, st := newService(t)
	sealer, err := fetch.NewSealer(bytes.Repeat([]byte{key}, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc.opt.FetchSealer = sealer
	return svc, st, sealer
}

func fetchesOf(t *testing.T, st *sqlstore.Store, user string) []store.Fetch {
	t.Helper()
	l, err := st.ListFetches(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l, func(a, b store.Fetch) int { return strings.Compare(a.Protocol, b.Protocol) })
	return l
}

// TestFetchesExportImportRoundTrip: Mailu's clear passwords are sealed on
// import; an export hides them, or with --secrets writes the sealed form
// (never the clear one), which imports into another store with the same
// SECRET_KEY; re-importing a hidden export keeps the accounts (id,
// password, what they fetched); a password sealed under another key is
// refused; a user listed without fetches loses them.
func TestFetchesExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, st, sealer := fetchService(t, 1)
	if _, err := src.Import(ctx, []byte(fetchMailu), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	got := fetchesOf(t, st, "alice@example.com")
	if len(got) != 2 {
		t.Fatalf("imported %d fetched accounts, want 2", len(got))
	}
	im, pop := got[0], got[1]
	if im.Host != "imap.remote.test" || im.Port != 993 || !im.TLS || !im.Keep || im.Scan || !slices.Equal(im.Folders, []string{"INBOX", "Junk"}) ||
		im.Comment != "old provider" || pop.Port != 110 || pop.TLS || pop.Keep || !pop.Scan || len(pop.Folders) != 0 {
		t.Fatalf("imported accounts: %+v", got)
	}
	for i, want := range []string{"remote-pw-1", "remote-pw-2"} {
		if strings.Contains(got[i].Password, want) {
			t.Fatalf("password stored in clear: %q", got[i].Password)
		}
		if pw, err := sealer.Open(got[i].Password); err != nil || pw != want {
			t.Fatalf("stored password opens to %q, %v; want %q", pw, err, want)
		}
	}

	// Mailu's file again: the same clear passwords change nothing.
	res, err := src.Import(ctx, []byte(fetchMailu), ImportOptions{})
	must(t, err)
	for _, c := range res.Changes {
		if c.Table == "fetch" {
			t.Errorf("re-import of Mailu's file changed %+v", c)
		}
	}

	hiddenDoc, err := src.Export(ctx, ExportOptions{})
	must(t, err)
	hy := string(must(hiddenDoc.YAML()))
	if !strings.Contains(hy, "fetches:") || !strings.Contains(hy, "password: <hidden>") || strings.Contains(hy, "v1:") {
		t.Fatalf("export without secrets:\n%s", hy)
	}
	secretDoc, err := src.Export(ctx, ExportOptions{Secrets: true})
	must(t, err)
	sy := must(secretDoc.YAML())
	sj := must(secretDoc.JSON())
	if !bytes.Contains(sy, []byte(im.Password)) || bytes.Contains(sy, []byte("remote-pw")) {
		t.Fatalf("export with secrets does not carry the sealed password (only):\n%s", sy)
	}

	// Same SECRET_KEY elsewhere: the accounts come across as they are.
	for what, data := range map[string][]byte{"yaml": sy, "json": sj} {
		dst, dst1, _ := fetchService(t, 1)
		if _, err := dst.Import(ctx, data, ImportOptions{}); err != nil {
			t.Fatalf("%s: import: %v", what, err)
		}
		back := fetchesOf(t, dst1, "alice@example.com")
		if len(back) != 2 {
			t.Fatalf("%s: %d accounts after the round trip", what, len(back))
		}
		for i := range back {
			a, b := back[i], got[i]
			if !sameFetch(&a, &b) {
				t.Errorf("%s: account %d after the round trip\n%+v\nwant\n%+v", what, i, a, b)
			}
		}
	}

	// A hidden export into the same store changes nothing.
	must(t, st.AddFetchSeen(ctx, im.ID, "INBOX/1/1"))
	res, err = src.Import(ctx, []byte(hy), ImportOptions{})
	must(t, err)
	for _, c := range res.Changes {
		if c.Table == "fetch" {
			t.Errorf("re-import of the hidden export changed %+v", c)
		}
	}
	again := fetchesOf(t, st, "alice@example.com")
	if len(again) != 2 || again[0].ID != im.ID || again[0].Password != im.Password {
		t.Fatalf("after re-import: %+v", again)
	}
	if seen, _ := st.ListFetches(ctx, ""); len(seen) != 2 {
		t.Fatal("accounts lost")
	}
	if keys, _ := st.FetchSeen(ctx, im.ID); len(keys) != 1 {
		t.Fatalf("the account's fetched keys were lost: %v", keys)
	}

	// Sealed under another SECRET_KEY: refused, nothing changed.
	other, _, _ := fetchService(t, 2)
	_, err = other.Import(ctx, sy, ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "another SECRET_KEY") {
		t.Fatalf("a password sealed under another key: %v", err)
	}
	// A hidden password for a new account cannot be imported.
	fresh, _, _ := fetchService(t, 1)
	if _, err := fresh.Import(ctx, []byte(hy), ImportOptions{}); err == nil || !strings.Contains(err.Error(), "fetches.0.password") {
		t.Fatalf("hidden password of a new account: %v", err)
	}

	// Replacing with the user listed without fetches removes them.
	res, err = src.Import(ctx, []byte(sieveBase), ImportOptions{})
	must(t, err)
	if n := len(fetchesOf(t, st, "alice@example.com")); n != 0 {
		t.Fatalf("%d accounts left after an import without them (changes %+v)", n, res.Changes)
	}
}
