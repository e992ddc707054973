package cli_test

// These tests build the real binary once and run every command as a
// subprocess against a temporary DATA_DIR.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/cli"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "petrel-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "petrel")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goBin, "build", "-o", binary, "github.com/petrelmail/petrel/cmd/petrel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building petrel:", err)
		return 1
	}
	return m.Run()
}

// env is one isolated installation: its own DATA_DIR and settings.
type env struct {
	t    *testing.T
	dir  string
	vars map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{t: t, dir: dir, vars: map[string]string{
		"DATA_DIR":          filepath.Join(dir, "data"),
		"DOMAIN":            "example.com",
		"HOSTNAMES":         "mail.example.com",
		"SECRET_KEY":        "0123456789abcdefghij",
		"CREDENTIAL_ROUNDS": "4",
	}}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs petrel with args, stdin as standard input and only e.vars as
// the environment.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run petrel %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs a command that must succeed.
func (e *env) ok(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("petrel %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs a command that must fail with code and print exactly one line
// to stderr containing want.
func (e *env) fails(code int, want string, args ...string) result {
	e.t.Helper()
	r := e.run("", args...)
	e.checkFail(r, code, want, args)
	return r
}

func (e *env) checkFail(r result, code int, want string, args []string) {
	e.t.Helper()
	if r.code != code {
		e.t.Fatalf("petrel %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		e.t.Errorf("petrel %s: stderr is not one line: %q", strings.Join(args, " "), r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		e.t.Errorf("petrel %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, want)
	}
}

// store opens the installation's database (between commands).
func (e *env) store() *sqlstore.Store {
	e.t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{
		Flavor: "sqlite", Path: filepath.Join(e.vars["DATA_DIR"], "main.db"), BlobDir: filepath.Join(e.vars["DATA_DIR"], "blobs"),
	})
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

func (e *env) user(email string) *store.User {
	e.t.Helper()
	st := e.store()
	defer st.Close()
	u, err := st.GetUser(context.Background(), email)
	if err != nil {
		e.t.Fatalf("get user %s: %v", email, err)
	}
	return u
}

func (e *env) noUser(email string) {
	e.t.Helper()
	st := e.store()
	defer st.Close()
	if _, err := st.GetUser(context.Background(), email); !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("user %s should not exist: %v", email, err)
	}
}

func verifies(t *testing.T, u *store.User, password string) {
	t.Helper()
	ok, _, err := auth.VerifyPassword(u.Password, password)
	if !ok || err != nil {
		t.Fatalf("password of %s does not verify (%v)", u.Email, err)
	}
}

func TestHelpVersionUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := e.ok("", args...)
		for _, c := range cli.Commands() {
			if !strings.Contains(r.stdout, "  "+c.Name+" ") {
				t.Errorf("petrel %v does not list %s", args, c.Name)
			}
		}
		if !strings.Contains(r.stdout, "serve") || !strings.Contains(r.stdout, "--env-file") {
			t.Errorf("petrel %v: %s", args, r.stdout)
		}
	}
	r := e.ok("", "version")
	if !strings.HasPrefix(r.stdout, "petrel dev (go1.") {
		t.Errorf("version: %q", r.stdout)
	}
	e.fails(2, `unknown command "frobnicate"`, "frobnicate")
	e.fails(2, "unknown option --bogus", "--bogus", "user")
	e.fails(2, `unknown command "nope"`, "help", "nope")
	if r := e.run(""); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("no command: %d %q", r.code, r.stderr)
	}
}

func TestEverySubcommandHasHelp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars = map[string]string{} // help needs no configuration
	names := []string{"serve", "version", "help"}
	summaries := map[string]string{}
	for _, c := range cli.Commands() {
		names = append(names, c.Name)
		summaries[c.Name] = c.Summary
	}
	for _, n := range names {
		for _, h := range []string{"--help", "-h"} {
			r := e.ok("", n, h)
			if !strings.HasPrefix(r.stdout, "Usage: petrel") || !strings.Contains(r.stdout, n) {
				t.Errorf("petrel %s %s: %q", n, h, r.stdout)
			}
			if s := summaries[n]; s != "" && !strings.Contains(r.stdout, s) {
				t.Errorf("petrel %s %s lacks its summary %q", n, h, s)
			}
		}
		r := e.ok("", "help", n)
		if !strings.Contains(r.stdout, "Usage: petrel") {
			t.Errorf("petrel help %s: %q", n, r.stdout)
		}
	}
	// Help comes first even with missing arguments and options anywhere.
	r := e.ok("", "admin", "x", "-m", "update", "--help")
	if !strings.Contains(r.stdout, "--mode MODE") {
		t.Errorf("admin help lacks --mode: %s", r.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fails(2, "expected 3 argument(s) (LOCALPART DOMAIN PASSWORD), got 2", "user", "alice", "example.com")
	e.fails(2, "got 4", "user", "a", "b", "c", "d")
	e.fails(2, "no such option: -x", "user", "-x", "a", "b", "c")
	e.fails(2, "no such option: --nope", "alias-delete", "--nope", "a@b.c")
	e.fails(2, "MAX_USERS must be an integer", "setlimits", "example.com", "ten", "1", "1")
	e.fails(2, "MAX_ALIASES must be an integer", "domain", "example.com", "-a", "many")
	e.fails(2, `invalid mode "always"`, "admin", "root", "example.com", "pw", "-m", "always")
	e.fails(2, "option -m requires an argument", "admin", "root", "example.com", "pw", "-m")
	e.fails(2, "option --wildcard does not take a value", "alias", "--wildcard=yes", "a", "example.com", "b@example.com")
	// A broken configuration is a usage error too, with a pointer to config-check.
	delete(e.vars, "DOMAIN")
	e.fails(2, "configuration: DOMAIN: is required", "user", "alice", "example.com", "pw")
}

func TestDomainAndLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("", "domain", "Example.COM", "-u", "2", "--max-aliases=1", "-q", "5000")
	if !strings.Contains(r.stdout, "created domain example.com") {
		t.Errorf("domain: %q", r.stdout)
	}
	if fi, err := os.Stat(e.vars["DATA_DIR"]); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("DATA_DIR not created 0700: %v %v", fi.Mode(), err)
	}
	r = e.ok("", "domain", "example.com")
	if !strings.Contains(r.stdout, "exists, not changed") {
		t.Errorf("second domain: %q", r.stdout)
	}
	e.fails(1, `invalid domain name "bad..name"`, "domain", "bad..name")
	e.ok("", "user", "a", "example.com", "pw")
	e.ok("", "user", "b", "example.com", "pw")
	e.fails(1, "petrel user: domain example.com has reached max_users (2)", "user", "c", "example.com", "pw")
	if u := e.user("a@example.com"); u.QuotaBytes != 5000 {
		t.Errorf("default quota not capped by max_quota_bytes: %d", u.QuotaBytes)
	}
	e.ok("", "setlimits", "example.com", "-1", "-1", "0")
	e.ok("", "user", "c", "example.com", "pw")
	e.fails(1, "domain missing.example does not exist", "setlimits", "missing.example", "1", "1", "1")
	e.fails(1, "max_users must be -1 (unlimited) or more", "setlimits", "example.com", "-5", "1", "1")
	// A relay name cannot become a domain: import one, then try.
	e.ok("relay:\n  - name: relay.example.org\n", "config-import", "-u", "-q")
	e.fails(1, "relay.example.org is already a relayed domain", "domain", "relay.example.org")
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("", "user", "Alice", "Bücher.example", "pw1")
	if !strings.Contains(r.stdout, "created user alice@xn--bcher-kva.example") {
		t.Errorf("user: %q", r.stdout)
	}
	verifies(t, e.user("alice@xn--bcher-kva.example"), "pw1")
	e.fails(1, "alice@xn--bcher-kva.example is already a user", "user", "alice", "bücher.example", "pw")
	e.fails(1, "empty password refused", "user", "empty", "bücher.example", "")

	// The password from stdin never shows in ps.
	e.ok("s3cret from stdin\n", "user", "bob", "example.com", "-")
	verifies(t, e.user("bob@example.com"), "s3cret from stdin")
	if r := e.run("", "user", "carol", "example.com", "-"); r.code != 1 || !strings.Contains(r.stderr, "no password on standard input") {
		t.Errorf("empty stdin: %+v", r)
	}

	e.ok("n3w\r\n", "password", "bob", "example.com", "-")
	verifies(t, e.user("bob@example.com"), "n3w")
	e.ok("", "password", "bob", "EXAMPLE.com", "n4w")
	verifies(t, e.user("bob@example.com"), "n4w")
	e.fails(1, "user ghost@example.com does not exist", "password", "ghost", "example.com", "x")

	const hash = "$bcrypt-sha256$v=2,t=2b,r=5$9KAadbPPsPzRFPjdgr9ZVO$7z/grM.vMKMXCDDMC5fIqOUqSMTiNci"
	e.ok("", "user-import", "dave", "imported.example", hash)
	d := e.user("dave@imported.example")
	if d.Password != hash {
		t.Errorf("user-import changed the hash: %q", d.Password)
	}
	verifies(t, d, "correct horse battery staple")
	e.ok("{SHA512-CRYPT}$6$279eNYuRaK7aWw8c$RDW9bGXoat/e3k/7lg2Fo7gIjaAHQMWSc7xIBTQbFuxVs1PSpz1oMbd0UVYoExKoxUM0DrSg1uMnacwt19N7Q0\n", "user-import", "erin", "imported.example", "-")
	verifies(t, e.user("erin@imported.example"), "password")
	e.fails(1, "empty password hash refused", "user-import", "frank", "imported.example", " ")

	r = e.ok("", "user-delete", "bob@example.com")
	if !strings.Contains(r.stdout, "disabled") || e.user("bob@example.com").Enabled {
		t.Errorf("user-delete did not disable: %q", r.stdout)
	}
	e.ok("", "user-delete", "-r", "bob@example.com")
	e.noUser("bob@example.com")
	e.fails(1, "user bob@example.com does not exist", "user-delete", "--really", "bob@example.com")
	e.fails(1, "invalid email address", "user-delete", "not-an-address")
}

func TestAdminCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("", "admin", "root", "new.example", "first")
	if strings.TrimSpace(r.stdout) != "created admin user" {
		t.Errorf("admin: %q", r.stdout)
	}
	u := e.user("root@new.example")
	if !u.GlobalAdmin {
		t.Error("not a global admin")
	}
	verifies(t, u, "first")
	e.fails(1, "user root@new.example exists, not created", "admin", "root", "new.example", "second")
	r = e.ok("", "admin", "-m", "ifmissing", "root", "new.example", "second")
	if !strings.Contains(r.stdout, "exists, not updating") {
		t.Errorf("ifmissing: %q", r.stdout)
	}
	verifies(t, e.user("root@new.example"), "first")
	r = e.ok("third\n", "admin", "root", "--mode", "update", "new.example", "-")
	if strings.TrimSpace(r.stdout) != "updated admin password" {
		t.Errorf("update: %q", r.stdout)
	}
	verifies(t, e.user("root@new.example"), "third")
}

func TestManagerAndAliasCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "user", "alice", "example.com", "pw")
	e.ok("", "user", "bob", "example.com", "pw")
	r := e.ok("", "setmanager", "example.com", "alice")
	if !strings.Contains(r.stdout, "alice now manages example.com") {
		t.Errorf("setmanager: %q", r.stdout)
	}
	st := e.store()
	if ms, _ := st.ManagedDomains(context.Background(), "alice@example.com"); len(ms) != 1 || ms[0] != "example.com" {
		t.Errorf("managed domains %v", ms)
	}
	st.Close()
	e.fails(1, "user ghost@example.com does not exist", "setmanager", "example.com", "ghost")
	e.fails(1, "domain missing.example does not exist", "setmanager", "missing.example", "alice@example.com")

	r = e.ok("", "alias", "Info", "example.com", "bob@example.com,Alice@Example.com")
	if !strings.Contains(r.stdout, "created alias info@example.com -> alice@example.com,bob@example.com") {
		t.Errorf("alias: %q", r.stdout)
	}
	e.ok("", "alias", "-w", "sales_%", "example.com", "alice@example.com")
	e.ok("", "alias", "%", "other.example", "alice@example.com", "--wildcard")
	st = e.store()
	a, err := st.GetAlias(context.Background(), "sales_%@example.com")
	if err != nil || !a.Wildcard {
		t.Errorf("wildcard alias: %+v %v", a, err)
	}
	if _, err := st.GetDomain(context.Background(), "other.example"); err != nil {
		t.Errorf("alias did not create its domain: %v", err)
	}
	st.Close()
	e.fails(1, `destination: invalid address "not an address"`, "alias", "x", "example.com", "not an address")
	e.fails(1, "alice@example.com is already a user", "alias", "alice", "example.com", "bob@example.com")
	e.fails(1, "info@example.com is already an alias", "alias", "info", "example.com", "bob@example.com")
	e.ok("", "alias-delete", "INFO@example.com")
	e.fails(1, "alias info@example.com does not exist", "alias-delete", "info@example.com")
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := writeFile(t, e.dir, "mailu.env", "# settings\nDOMAIN=file.example\nHOSTNAMES=mx.file.example\nCREDENTIAL_ROUNDS=4\n")
	delete(e.vars, "DOMAIN")
	delete(e.vars, "HOSTNAMES")
	r := e.ok("", "--env-file", file, "config-check")
	if !strings.Contains(r.stdout, "OK: domain file.example, hostnames mx.file.example") {
		t.Errorf("--env-file not read: %q", r.stdout)
	}
	r = e.ok("", "--env-file="+file, "config-check")
	if !strings.Contains(r.stdout, "domain file.example") {
		t.Errorf("--env-file=FILE not read: %q", r.stdout)
	}
	e.vars["DOMAIN"] = "env.example"
	r = e.ok("", "--env-file", file, "config-check")
	if !strings.Contains(r.stdout, "domain env.example, hostnames mx.file.example") {
		t.Errorf("process environment should win over the file: %q", r.stdout)
	}
	delete(e.vars, "DOMAIN")
	e.vars["ENV_FILE"] = file
	r = e.ok("", "config-check")
	if !strings.Contains(r.stdout, "domain file.example") {
		t.Errorf("ENV_FILE not read: %q", r.stdout)
	}
	e.ok("", "user", "alice", "file.example", "pw")
	e.user("alice@file.example")
	e.fails(2, "no such file", "--env-file", filepath.Join(e.dir, "missing.env"), "config-check")
	e.fails(2, "--env-file requires a file name", "--env-file")
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("", "config-check")
	if !strings.HasPrefix(r.stdout, "OK: domain example.com") || !strings.Contains(r.stdout, "25/smtp on :25") {
		t.Errorf("OK case: %q", r.stdout)
	}
	e.vars = map[string]string{"PORTS": "25,abc", "LOG_LEVEL": "LOUD", "DATA_DIR": e.vars["DATA_DIR"]}
	r = e.run("", "config-check")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: %+v", r.code, r)
	}
	for _, want := range []string{"DOMAIN: is required", "HOSTNAMES: is required", `PORTS="25,abc"`, "LOG_LEVEL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("problem %q not listed:\n%s", want, r.stdout)
		}
	}
	if strings.Count(r.stdout, "\n") < 4 {
		t.Errorf("want one line per problem:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "error(s) in the configuration") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = e.ok("", "config-check", "--list")
	for _, want := range []string{"SETTING", "DOMAIN", "DATA_DIR", "CREDENTIAL_ROUNDS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--list lacks %s", want)
		}
	}
}

func sample(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../admin/testdata/mailu-export.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigImportMailuSample(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("", "config-import", sample(t))
	if !strings.HasPrefix(r.stdout, "Committing changes. Created: alias(3) alternative(2) domain(2) fetch(1) manager(1) relay(2) token(2) user(3)") {
		t.Errorf("summary: %q", r.stdout)
	}
	verifies(t, e.user("admin@example.com"), "correct horse battery staple")
	verifies(t, e.user("bob@xn--bcher-kva.example"), "password")
	a := e.user("alice@example.com")
	verifies(t, a, "password")
	if a.SpamThreshold != 60 || a.Enabled || a.ReplySubject != "Out of office" {
		t.Errorf("alice %+v", a)
	}
	st := e.store()
	ctx := context.Background()
	if al, err := st.GetAlias(ctx, "%@xn--bcher-kva.example"); err != nil || !al.Wildcard {
		t.Errorf("catch-all: %+v %v", al, err)
	}
	if rs, _ := st.ListRelays(ctx); len(rs) != 2 {
		t.Errorf("relays %v", rs)
	}
	if ts, _ := st.ListTokens(ctx, "admin@example.com"); len(ts) != 2 {
		t.Errorf("tokens %v", ts)
	} else if ok, _ := auth.VerifyToken(ts[0].Password, "0123456789abcdef0123456789abcdef"); !ok {
		t.Error("imported token does not verify")
	}
	if _, err := st.GetDKIMKey(ctx, "example.com", "dkim"); err != nil {
		t.Errorf("dkim key not written to the store: %v", err)
	}
	st.Close()
	// DKIM_PATH is not set: the store alone holds the key.
	if _, err := os.Stat(filepath.Join(e.vars["DATA_DIR"], "dkim", "example.com.dkim.key")); !os.IsNotExist(err) {
		t.Errorf("dkim key written to the default DKIM_PATH: %v", err)
	}
	// Importing the same file again changes nothing.
	r = e.ok("", "config-import", sample(t))
	if strings.TrimSpace(r.stdout) != "Committing changes. No changes." {
		t.Errorf("second import: %q", r.stdout)
	}
}

func TestConfigExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	a.ok("", "config-import", "-q", sample(t))
	out := filepath.Join(a.dir, "export.yaml")
	a.ok("", "config-export", "--secrets", "-o", out)
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", fi.Mode(), err)
	}
	first, _ := os.ReadFile(out)
	if !strings.Contains(string(first), "$bcrypt-sha256$") {
		t.Fatalf("secrets missing from -s export:\n%s", first)
	}

	b := newEnv(t)
	b.ok(string(first), "config-import", "-")
	second := b.ok("", "config-export", "-s").stdout
	if second != string(first) {
		t.Errorf("round trip changed the export:\n--- first\n%s\n--- second\n%s", first, second)
	}

	// JSON, and the full form, round-trip too.
	j := a.ok("", "config-export", "-s", "-f", "-j").stdout
	if !strings.HasPrefix(j, `{"domain":[{"name":"example.com"`) || strings.Count(j, "\n") != 1 {
		t.Errorf("json export: %.200q", j)
	}
	c := newEnv(t)
	c.ok(j, "config-import")
	if got := c.ok("", "config-export", "-sfj").stdout; got != j {
		t.Errorf("json round trip differs:\n%s\n%s", j, got)
	}

	// Without -s secrets are hidden; filters pick sections and attributes.
	plain := a.ok("", "config-export").stdout
	if strings.Contains(plain, "$bcrypt") || !strings.Contains(plain, "password: <hidden>") {
		t.Errorf("export without -s:\n%s", plain)
	}
	f := a.ok("", "config-export", "user.email", "relay").stdout
	if strings.Contains(f, "domain:") || strings.Contains(f, "password") || !strings.Contains(f, "relay:") {
		t.Errorf("filtered export:\n%s", f)
	}
	r := a.ok("", "config-export", "-d", "domain.name")
	if !strings.Contains(r.stderr, "--dns ignored") {
		t.Errorf("-d warning: %q", r.stderr)
	}
	a.fails(1, "invalid filter: users", "config-export", "users")
}

func TestConfigImportModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Dry run changes nothing.
	r := e.ok("", "config-import", "-n", sample(t))
	if !strings.HasPrefix(r.stdout, "Dry run. Not committing changes. Created: alias(3)") {
		t.Errorf("dry run: %q", r.stdout)
	}
	empty := "domain: []\n\nuser: []\n\nalias: []\n\nrelay: []\n"
	if got := e.ok("", "config-export").stdout; got != empty {
		t.Errorf("dry run left data:\n%s", got)
	}
	// Verbose prints every change; grouped short flags work.
	r = e.ok("", "config-import", "-v", sample(t))
	for _, want := range []string{"Created domain: example.com", "Created user: alice@example.com", "Created alias: %@bücher.example", "Committing changes."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("-v output lacks %q:\n%s", want, r.stdout)
		}
	}
	upd := "user:\n  - email: alice@example.com\n    spam_threshold: 99\n"
	r = e.ok(upd, "config-import", "-uvn")
	if !strings.Contains(r.stdout, "Modified user: alice@example.com spam_threshold: 60 -> 99") || !strings.Contains(r.stdout, "Dry run.") {
		t.Errorf("-uvn: %q", r.stdout)
	}
	if e.user("alice@example.com").SpamThreshold != 60 {
		t.Error("dry run changed a user")
	}
	e.ok(upd, "config-import", "--update", "-q")
	if e.user("alice@example.com").SpamThreshold != 99 {
		t.Error("update did not apply")
	}
	// Full replace (the default) deletes what the input does not list.
	r = e.ok("domain:\n  - name: example.com\n", "config-import")
	if !strings.Contains(r.stdout, "Deleted:") {
		t.Errorf("replace: %q", r.stdout)
	}
	e.noUser("alice@example.com")
	// Bad input: every problem on one line, exit 1, nothing changed.
	bad := "domain:\n  - name: example.com\n    colour: red\nuser:\n  - email: x@missing.example\n"
	r = e.run(bad, "config-import")
	e.checkFail(r, 1, "3 errors in input: domain.0.colour: Unknown field.; user.0.password: Missing data for required field.; user.0.email: domain missing.example does not exist", []string{"config-import"})
	e.fails(1, "read input", "config-import", filepath.Join(e.dir, "missing.yaml"))
}

func TestServe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	delete(e.vars, "DOMAIN")
	e.vars["PORTS"] = "25,nope"
	r := e.run("", "serve")
	if r.code != 2 || !strings.Contains(r.stderr, "DOMAIN: is required") || !strings.Contains(r.stderr, `PORTS="25,nope"`) {
		t.Fatalf("serve with a bad config: %+v", r)
	}
	if _, err := os.Stat(e.vars["DATA_DIR"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve opened DATA_DIR before refusing a bad config: %v", err)
	}
	e.fails(2, `unexpected argument "now"`, "serve", "now")

	// A good configuration serves until SIGTERM and exits 0.
	e.vars["DOMAIN"] = "example.com"
	e.vars["PORTS"] = "25"
	e.vars["TLS"] = ""
	e.vars["TLS_FLAVOR"] = "notls"
	e.vars["LISTEN_25"] = "127.0.0.1:0"
	cmd := exec.Command(binary, "serve")
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait until it has started (it logs), or exited early.
	deadline := time.Now().Add(time.Minute)
	for errb.Len() == 0 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, errb.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve did not exit 0 after SIGTERM: %v\n%s", err, errb.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("serve did not stop after SIGTERM\n%s", errb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and
// the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
