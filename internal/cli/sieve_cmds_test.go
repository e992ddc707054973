package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestSieveCommand runs every `petrel sieve` action against a real store
// and checks what the store holds afterwards.
func TestSieveCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "user", "alice", "example.com", "pw")
	const user = "alice@example.com"

	if r := e.ok("", "sieve", user); !strings.Contains(r.stdout, "no Sieve scripts") {
		t.Errorf("empty list: %q", r.stdout)
	}
	junk := "require \"fileinto\";\nif header :contains \"subject\" \"spam\" { fileinto \"Junk\"; }\n"
	e.ok(junk, "sieve", user, "put", "junk")
	file := writeFile(t, e.dir, "keep.sieve", "keep;\n")
	e.ok("", "sieve", "Alice@Example.com", "put", "keep", file)

	if r := e.ok("", "sieve", user, "show", "junk"); r.stdout != junk {
		t.Errorf("show: %q, want %q", r.stdout, junk)
	}
	e.ok("", "sieve", user, "activate", "junk")
	r := e.ok("", "sieve", user, "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		strings.Join(strings.Fields(lines[1]), " ") != fmt.Sprintf("junk %d active", len(junk)) ||
		strings.Join(strings.Fields(lines[2]), " ") != "keep 6" {
		t.Errorf("list:\n%s", r.stdout)
	}
	st := e.store()
	name, body, err := st.SieveActiveScript(context.Background(), user)
	if err != nil || name != "junk" || string(body) != junk {
		t.Errorf("active script in the store: %q %q %v", name, body, err)
	}
	st.Close()

	// A bad script names the line and is not stored.
	r = e.run("keep;\nif true { fileinto \"x\"; }\n", "sieve", user, "put", "bad")
	e.checkFail(r, 1, "line 2", []string{"sieve", user, "put", "bad"})
	e.fails(1, `has no Sieve script "bad"`, "sieve", user, "show", "bad")
	// The limits are ManageSieve's (1 MiB per script).
	r = e.run(strings.Repeat("#", 1<<20+1), "sieve", user, "put", "big")
	e.checkFail(r, 1, "larger than 1048576 bytes", []string{"sieve", user, "put", "big"})

	e.fails(1, "is active", "sieve", user, "delete", "junk")
	e.ok("", "sieve", user, "delete", "keep")
	e.ok("", "sieve", user, "deactivate")
	if r := e.ok("", "sieve", user); strings.Contains(r.stdout, "active\n") || !strings.Contains(r.stdout, "junk") {
		t.Errorf("after deactivate: %q", r.stdout)
	}
	e.ok("", "sieve", user, "delete", "junk")
	if r := e.ok("", "sieve", user); !strings.Contains(r.stdout, "no Sieve scripts") {
		t.Errorf("after delete: %q", r.stdout)
	}

	e.fails(1, "no such user: bob@example.com", "sieve", "bob@example.com")
	e.fails(1, `has no Sieve script "nope"`, "sieve", user, "activate", "nope")
	e.fails(2, `unknown action "rename"`, "sieve", user, "rename", "a", "b")
	e.fails(2, "wrong number of arguments for show", "sieve", user, "show")
	e.fails(2, "expected", "sieve")
}

// TestSieveConfigRoundTrip: scripts stored with `petrel sieve` travel
// through config-export and config-import into another installation,
// with the active one; a bad script in the input fails the import.
func TestSieveConfigRoundTrip(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	a.ok("", "user", "alice", "example.com", "pw")
	const user = "alice@example.com"
	spam := "require \"fileinto\";\r\nif header :contains \"X-Spam\" \"yes\" { fileinto \"Junk\"; }\r\n"
	a.ok(spam, "sieve", user, "put", "spam")
	a.ok("keep;\n", "sieve", user, "put", "plain")
	a.ok("", "sieve", user, "activate", "spam")
	exp := a.ok("", "config-export", "--secrets").stdout
	if !strings.Contains(exp, "sieve_scripts:") {
		t.Fatalf("export lacks sieve_scripts:\n%s", exp)
	}

	b := newEnv(t)
	b.ok(exp, "config-import", "-")
	if got := b.ok("", "sieve", user, "show", "spam").stdout; got != spam {
		t.Errorf("spam after import: %q, want %q", got, spam)
	}
	if got := b.ok("", "sieve", user, "show", "plain").stdout; got != "keep;\n" {
		t.Errorf("plain after import: %q", got)
	}
	if got := b.ok("", "sieve", user).stdout; !strings.Contains(got, "active") ||
		!strings.HasPrefix(strings.Split(got, "\n")[2], "spam") {
		t.Errorf("list after import:\n%s", got)
	}
	if got := b.ok("", "config-export", "--secrets").stdout; got != exp {
		t.Errorf("second export differs:\n%s\n---\n%s", exp, got)
	}

	bad := strings.Replace(exp, "keep;", "keep", 1)
	r := b.run(bad, "config-import", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "sieve_scripts.0.script: Line 1") {
		t.Errorf("bad script: exit %d, stderr %q", r.code, r.stderr)
	}
}
