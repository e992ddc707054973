package cli_test

import (
	"strings"
	"testing"
)

// TestFetchesConfigRoundTrip: fetched accounts in Mailu's config-export
// form (clear passwords) go in with config-import and are stored sealed;
// config-export hides them, or with --secrets writes the sealed form,
// which another installation with the same SECRET_KEY imports as is; one
// with another SECRET_KEY refuses it.
func TestFetchesConfigRoundTrip(t *testing.T) {
	t.Parallel()
	const mailu = `domain:
- name: example.com
user:
- email: alice@example.com
  password: pw
  hash_password: true
  fetches:
  - id: 3
    protocol: imap
    host: imap.remote.test
    port: 993
    tls: true
    username: alice@remote.test
    password: clear-remote-pw
    keep: true
    scan: true
    folders: [INBOX, Archive]
`
	a := newEnv(t)
	a.ok(mailu, "config-import", "-")
	plain := a.ok("", "config-export").stdout
	if !strings.Contains(plain, "fetches:") || !strings.Contains(plain, "host: imap.remote.test") ||
		!strings.Contains(plain, "password: <hidden>") || strings.Contains(plain, "clear-remote-pw") {
		t.Fatalf("export without secrets:\n%s", plain)
	}
	exp := a.ok("", "config-export", "--secrets").stdout
	if strings.Contains(exp, "clear-remote-pw") || !strings.Contains(exp, "password: v1:") {
		t.Fatalf("export with secrets does not carry the sealed password:\n%s", exp)
	}

	b := newEnv(t) // the same SECRET_KEY
	b.ok(exp, "config-import", "-")
	if got := b.ok("", "config-export", "--secrets").stdout; got != exp {
		t.Errorf("export after the round trip differs:\n%s\n---\n%s", exp, got)
	}

	c := newEnv(t)
	c.vars["SECRET_KEY"] = "another-secret-key-0123"
	r := c.run(exp, "config-import", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "another SECRET_KEY") {
		t.Errorf("import under another SECRET_KEY: exit %d, stderr %q", r.code, r.stderr)
	}
}
