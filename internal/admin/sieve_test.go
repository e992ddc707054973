package admin

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

const sieveBase = `
domain:
- name: example.com
user:
- email: alice@example.com
  password: secret
  hash_password: true
- email: bob@example.com
  password: secret
  hash_password: true
`

func sieveOf(t *testing.T, ss store.SieveScripts, user string) []sieveScript {
	t.Helper()
	l, err := readSieve(context.Background(), ss, user)
	if err != nil {
		t.Fatalf("read scripts of %s: %v", user, err)
	}
	return l
}

// TestSieveExportImportRoundTrip: the scripts and the active one survive
// config-export into a fresh store with config-import, in YAML and JSON,
// CRLF line ends and trailing blanks included.
func TestSieveExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, st := newService(t)
	if _, err := src.Import(ctx, []byte(sieveBase), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	scripts := []sieveScript{
		{name: "crlf", script: []byte("require \"fileinto\";\r\nif header :contains \"subject\" \"x\" {\r\n  fileinto \"X\";\r\n}\r\n")},
		{name: "junk", active: true, script: []byte("require [\"fileinto\", \"spamtest\", \"relational\"];  \n\n# Junk\nif spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"5\" { fileinto \"Junk\"; }")},
		{name: "mit Ümlaut", script: []byte("keep;\n")},
	}
	for _, sc := range scripts {
		if err := st.PutSieveScript(ctx, "alice@example.com", sc.name, sc.script, store.SieveLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetActiveSieveScript(ctx, "alice@example.com", "junk"); err != nil {
		t.Fatal(err)
	}
	doc, err := src.Export(ctx, ExportOptions{Secrets: true})
	if err != nil {
		t.Fatal(err)
	}
	y, err := doc.YAML()
	if err != nil {
		t.Fatal(err)
	}
	j, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "sieve_scripts:") || !strings.Contains(string(y), "# Junk") {
		t.Fatalf("export lacks the scripts:\n%s", y)
	}
	for what, data := range map[string][]byte{"yaml": y, "json": j} {
		dst, dst1 := newService(t)
		res, err := dst.Import(ctx, data, ImportOptions{})
		if err != nil {
			t.Fatalf("%s: import: %v", what, err)
		}
		if got := sieveOf(t, dst1, "alice@example.com"); !reflect.DeepEqual(got, scripts) {
			t.Errorf("%s: scripts after import:\n%s\nwant\n%s", what, got, scripts)
		}
		if got := sieveOf(t, dst1, "bob@example.com"); len(got) != 0 {
			t.Errorf("%s: bob has scripts: %s", what, got)
		}
		n := 0
		for _, c := range res.Changes {
			if c.Table == "sieve_script" {
				n++
			}
		}
		if n != 4 || !strings.Contains(res.Summary(), "sieve_script(3)") {
			t.Errorf("%s: summary %q, want 3 created and the activation", what, res.Summary())
		}
		// Importing the same again changes nothing.
		res, err = dst.Import(ctx, data, ImportOptions{})
		if err != nil || res.Summary() != "No changes." {
			t.Errorf("%s: second import: %v %v", what, res.Changes, err)
		}
	}
}

// TestSieveImportModes: what is listed replaces the user's scripts; left
// out, they go in replace mode and stay in update mode; a dry run changes
// nothing.
func TestSieveImportModes(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	in := sieveBase + `  sieve_scripts:
  - name: a
    script: "keep;"
  - name: b
    active: true
    script: "discard;"
`
	if _, err := s.Import(ctx, []byte(in), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []sieveScript{{name: "a", script: []byte("keep;")}, {name: "b", active: true, script: []byte("discard;")}}
	if got := sieveOf(t, st, "bob@example.com"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after import: %s", got)
	}
	upd := "user:\n- email: bob@example.com\n  sieve_scripts:\n  - name: a\n    active: true\n    script: \"stop;\"\n"
	res, err := s.Import(ctx, []byte(upd), ImportOptions{Update: true, DryRun: true})
	if err != nil || len(res.Changes) != 3 {
		t.Fatalf("dry run: %v %v", res, err)
	}
	if got := sieveOf(t, st, "bob@example.com"); !reflect.DeepEqual(got, want) {
		t.Fatalf("dry run changed the scripts: %s", got)
	}
	if _, err := s.Import(ctx, []byte(upd), ImportOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	want = []sieveScript{{name: "a", active: true, script: []byte("stop;")}}
	if got := sieveOf(t, st, "bob@example.com"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update: %s", got)
	}
	// Update mode without the attribute leaves the scripts alone.
	if _, err := s.Import(ctx, []byte("user:\n- email: bob@example.com\n  comment: hi\n"), ImportOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	if got := sieveOf(t, st, "bob@example.com"); !reflect.DeepEqual(got, want) {
		t.Fatalf("update without sieve_scripts: %s", got)
	}
	// Replace mode without it: the user has none, as with any attribute.
	if _, err := s.Import(ctx, []byte(sieveBase), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := sieveOf(t, st, "bob@example.com"); len(got) != 0 {
		t.Fatalf("replace without sieve_scripts: %s", got)
	}
}

// TestSieveImportErrors: bad scripts are reported with their path and
// line, all at once, and nothing is changed.
func TestSieveImportErrors(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	in := sieveBase + `  sieve_scripts:
  - name: bad
    script: "keep;\nif true { fileinto \"x\"; }\n"
  - name: one
    active: true
    script: "keep;"
  - name: two
    active: true
    script: "keep;"
  - name: one
    script: "keep;"
  - script: "keep;"
    colour: red
  - name: "a\u0001b"
    script: "keep;"
  - not a script
`
	_, err := s.Import(ctx, []byte(in), ImportOptions{})
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("want an ImportError, got %v", err)
	}
	for _, w := range []string{
		"user.1.sieve_scripts.0.script: Line 2: ",
		`user.1.sieve_scripts.2.active: Scripts "one" and "two" are both active`,
		`user.1.sieve_scripts.3.name: Script "one" is listed twice.`,
		"user.1.sieve_scripts.4.colour: Unknown field.",
		"user.1.sieve_scripts.4.name: Missing data for required field.",
		"user.1.sieve_scripts.5.name: Script name contains a control character.",
		"user.1.sieve_scripts.6: Invalid input type.",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if u, err := st.GetUser(ctx, "bob@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed import created bob: %v %v", u, err)
	}
}

func (sc sieveScript) String() string {
	return fmt.Sprintf("{%q active=%v %q}", sc.name, sc.active, sc.script)
}
