package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/fetch"
	_ "modernc.org/sqlite"
)

// The password of every test user, and its hash in the schemes Mailu has
// stored over the years (passlib, internal/auth/testdata/vectors.json),
// with and without Dovecot's {SCHEME} prefix.
const mailuPassword = "correct horse battery staple"

var mailuUsers = []struct{ email, hash string }{
	{"anna@one.test", "$bcrypt-sha256$v=2,t=2b,r=4$dv/PG7lBjFboxVcVLhd7Xe$EAE/1HNyg0uCX5khSY44wZJpvd51qdm"},
	{"bert@one.test", "{SHA512-CRYPT}$6$rounds=1000$fWPBOVIPEGfqnFeo$Tt8j7B4dl7EzHG7aC2rh8HM87PduSmNxtWtA.M.dJ1sk8drVeyLivNMuTWzTKnKOHgoAvzvLf8ODcuJDU3UVi/"},
	{"cleo@two.test", "{BLF-CRYPT}$2b$04$06BoQfUg7AMvfqHF11lBie/s6VK2Gv5RGkzt8JorJ/.gE3.veAgBG"},
	{"dora@two.test", "{PBKDF2}$pbkdf2-sha512$1000$k/JeCwEA4Ly3VmothXCOcQ$.2kSLW7eAowTNL0nW108iu/TsdbqzOZiZ0tntIditEhWjKdA.ifKs3V2tK2UOm9oEhkpS3N1Se0zIyOstRDHBQ"},
	{"emil@three.test", "{CRYPT}abhfCpXqd4GrI"}, // Mailu 1.x PASSWORD_SCHEME=CRYPT (DES, libxcrypt)
}

// zlibSave is Mailu's COMPRESSION per user (Dovecot's zlib_save): the
// first three users' mail is written compressed by Dovecot itself.
var zlibSave = []string{"gz", "bz2", "zstd", "", ""}

func mailuUserList() string {
	var us []string
	for _, u := range mailuUsers {
		us = append(us, u.email)
	}
	return strings.Join(us, ",")
}

// dovecotBin finds Debian's dovecot (dovecot-imapd), or skips.
func dovecotBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"dovecot", "/usr/sbin/dovecot"} {
		if path, err := exec.LookPath(p); err == nil {
			if _, err := os.Stat("/usr/lib/dovecot/imap"); err == nil {
				return path
			}
		}
	}
	t.Skip("dovecot (Debian dovecot-imapd) is not installed; .ci/run installs it")
	return ""
}

// freePort picks a loopback port for a daemon that cannot take a
// listener from us.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dovecot is a private Dovecot laid out as Mailu's: mail_location
// maildir:/mail/%u, the four special-use folders, the zlib plugin, and
// maildir_stat_dirs = yes (without it Dovecot would list the
// .dovecot.sieve symlink as a folder "dovecot/sieve").
type dovecot struct {
	port int
	mail string
	cmd  *exec.Cmd
	done chan struct{}
}

func startDovecot(t *testing.T, dir string) *dovecot {
	t.Helper()
	bin := dovecotBin(t)
	// Dovecot runs its login and mail processes as other users when
	// started as root: they need to reach the directory.
	mailUID, mailGID := os.Getuid(), os.Getgid()
	loginUser, internalUser, internalGroup := "", "", ""
	if mailUID == 0 {
		if _, err := user.Lookup("dovenull"); err != nil {
			t.Skip("dovecot runs as root but its dovenull user is missing")
		}
		mailUID, mailGID = 65534, 65534
		loginUser, internalUser, internalGroup = "dovenull", "dovecot", "dovecot"
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		g, err := user.LookupGroupId(strconv.Itoa(mailGID))
		if err != nil {
			t.Fatal(err)
		}
		loginUser, internalUser, internalGroup = u.Username, u.Username, g.Name
	}
	for p := dir; p != "/" && p != "."; p = filepath.Dir(p) {
		if strings.HasPrefix(p, os.TempDir()) && p != os.TempDir() {
			os.Chmod(p, 0o755)
		}
	}
	d := &dovecot{port: freePort(t), mail: filepath.Join(dir, "mail"), done: make(chan struct{})}
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(d.mail, mailUID, mailGID); err != nil {
		t.Fatal(err)
	}
	var pw strings.Builder
	for i, u := range mailuUsers {
		extra := ""
		if zlibSave[i] != "" {
			extra = "userdb_zlib_save=" + zlibSave[i]
		}
		fmt.Fprintf(&pw, "%s:{PLAIN}%s:%d:%d::%s::%s\n", u.email, mailuPassword, mailUID, mailGID, filepath.Join(d.mail, u.email), extra)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
default_login_user = %[2]s
default_internal_user = %[3]s
default_internal_group = %[4]s
listen = 127.0.0.1
protocols = imap
ssl = no
auth_mechanisms = plain
disable_plaintext_auth = no
mail_fsync = never
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}
mail_location = maildir:%[1]s/mail/%%u
maildir_stat_dirs = yes
mail_plugins = zlib
namespace inbox {
  inbox = yes
  mailbox Trash {
    auto = subscribe
    special_use = \Trash
  }
  mailbox Drafts {
    auto = subscribe
    special_use = \Drafts
  }
  mailbox Sent {
    auto = subscribe
    special_use = \Sent
  }
  mailbox Junk {
    auto = subscribe
    special_use = \Junk
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
`, dir, loginUser, internalUser, internalGroup, d.port)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", confPath)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		// Dovecot's master ends its children on SIGTERM.
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.port), time.Second)
		if err == nil {
			r := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, _ := r.ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "* OK") {
				return d
			}
		}
		select {
		case <-d.done:
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot exited:\n%s", log)
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
	t.Fatalf("dovecot did not answer on %d:\n%s", d.port, log)
	return nil
}

// writeMailuDB creates main.db from Mailu's schema with accounts of
// every kind the import carries; it returns the app token it stored.
func writeMailuDB(t *testing.T, path string) string {
	t.Helper()
	schema, err := os.ReadFile("testdata/mailu/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	token, tokenHash, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{string(schema),
		`INSERT INTO alembic_version VALUES ('f4f0f89e0047')`,
		`INSERT INTO config VALUES ('motd', '"hello"')`,
		`INSERT INTO domain VALUES ('2021-03-04', NULL, 'first', 'one.test', 10, -1, 2000000000, 0),
  ('2021-03-04', NULL, NULL, 'two.test', -1, 20, 0, 1),
  ('2022-01-01', '2023-05-06', NULL, 'three.test', -1, -1, 0, 0)`,
		`INSERT INTO alternative VALUES ('2021-03-04', NULL, NULL, 'alt-one.test', 'one.test')`,
		`INSERT INTO relay VALUES ('2021-03-04', NULL, 'backup MX', 'relayed.test', 'mx.relayed.test:2525')`,
	}
	for i, u := range mailuUsers {
		local, domain, _ := strings.Cut(u.email, "@")
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO user VALUES ('2021-03-04', NULL, NULL, '%s', '%s', '%s', '%s',
  %d, 12345, %d, 1, 0, 1, %d, 0, %d, '%s', %d, %d, '%s', '%s', '2024-01-01', '2030-12-31', '%s', 1, %d, %d)`,
			local, domain, u.email, u.hash,
			[]int64{5_000_000_000, 0, 1_000_000_000, 2_000_000_000, 3_000_000_000}[i],
			map[bool]int{true: 1}[i == 0], // anna is a global admin
			map[bool]int{true: 0, false: 1}[i == 4],
			map[bool]int{true: 1}[i == 1],
			map[bool]string{true: "bert@elsewhere.test,x@other.test"}[i == 1],
			map[bool]int{true: 0, false: 1}[i == 1],
			map[bool]int{true: 1}[i == 2],
			map[bool]string{true: "Away"}[i == 2],
			map[bool]string{true: "Back on Monday"}[i == 2],
			"User "+local,
			map[bool]int{true: 0, false: 1}[i == 3],
			70+i))
	}
	stmts = append(stmts,
		`INSERT INTO alias VALUES ('2021-03-04', NULL, NULL, 'postmaster', 'one.test', 'postmaster@one.test', 0, 'anna@one.test'),
  ('2021-03-04', NULL, NULL, '%', 'two.test', '%@two.test', 1, 'cleo@two.test,dora@two.test')`,
		`INSERT INTO manager VALUES ('two.test', 'cleo@two.test')`,
		fmt.Sprintf(`INSERT INTO token VALUES ('2021-03-04', NULL, 'phone', 7, 'dora@two.test', '%s', '127.0.0.0/8')`, tokenHash),
		`INSERT INTO fetch VALUES ('2021-03-04', NULL, NULL, 1, 'emil@three.test', 'imap', 'imap.remote.test', 993, 1,
  'emil', 'remote-secret', 1, 0, 'INBOX,Junk', NULL, NULL)`,
	)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
	return token
}

// writeDKIM writes a Mailu-style key (/dkim/<domain>.dkim.key, PKCS8).
func writeDKIM(t *testing.T, dir, domain string) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, domain+".dkim.key"), pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return pemBytes
}

// bertSieve is bert's scripts in Mailu; roundcube is the active one.
var bertSieve = map[string]string{
	"roundcube": "require [\"fileinto\"];\nif header :contains \"subject\" \"[list]\" {\n  fileinto \"Lists\";\n}\n",
	"holiday":   "require \"vacation\";\nvacation :days 2 \"Back soon\";\n",
}

// checkImportedSieveAndFetch reads, with the server stopped, what the
// import made of bert's scripts and emil's fetched account, and returns
// it for the comparison after a second run.
func checkImportedSieveAndFetch(t *testing.T, s *server) string {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, s)
	defer st.Close()
	scripts, err := st.ListSieveScripts(ctx, "bert@one.test")
	if err != nil || len(scripts) != 2 || scripts[0].Name != "holiday" || scripts[0].Active ||
		scripts[1].Name != "roundcube" || !scripts[1].Active {
		t.Fatalf("bert's scripts: %+v %v", scripts, err)
	}
	for name, want := range bertSieve {
		if got, err := st.GetSieveScript(ctx, "bert@one.test", name); err != nil || string(got) != want {
			t.Errorf("script %s = %q, %v; want %q", name, got, err, want)
		}
	}
	fs, err := st.ListFetches(ctx, "emil@three.test")
	if err != nil || len(fs) != 1 {
		t.Fatalf("emil's fetched accounts: %+v %v", fs, err)
	}
	f := fs[0]
	if f.Protocol != "imap" || f.Host != "imap.remote.test" || f.Port != 993 || !f.TLS || f.Username != "emil" ||
		!f.Keep || f.Scan || strings.Join(f.Folders, ",") != "INBOX,Junk" {
		t.Errorf("fetched account %+v", f)
	}
	// Sealed with the server's SECRET_KEY, as serve opens it.
	sealer, err := fetch.NewSealerFor([]byte(s.env["SECRET_KEY"]))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(f.Password, "remote-secret") {
		t.Error("the fetched account's password is stored in clear")
	}
	if pw, err := sealer.Open(f.Password); err != nil || pw != "remote-secret" {
		t.Errorf("the sealed password opens to %q, %v", pw, err)
	}
	return fmt.Sprintf("%+v %d %s", scripts, f.ID, f.Password)
}

// mailuInstall is a Mailu-shaped install the tests build once per test.
type mailuInstall struct {
	dir, db, mail, dkim string
	token               string
	key                 []byte
	dovecot             *dovecot
	messages            int
}

func newMailuInstall(t *testing.T, perUser int) *mailuInstall {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	m := &mailuInstall{dir: dir, db: filepath.Join(dir, "main.db"), dkim: filepath.Join(dir, "dkim")}
	m.dovecot = startDovecot(t, dir)
	m.mail = m.dovecot.mail
	m.token = writeMailuDB(t, m.db)
	m.key = writeDKIM(t, m.dkim, "one.test")
	// One client per user, all at once: Dovecot then writes on every
	// core. The long form may take a while on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute+time.Duration(perUser)*500*time.Millisecond)
	defer cancel()
	errs := make(chan error, len(mailuUsers))
	for i, u := range mailuUsers {
		go func() {
			cmd := exec.CommandContext(ctx, "python3", "testdata/mailu/fill_dovecot.py")
			cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(m.dovecot.port), "USERS="+u.email,
				"PASSWORD="+mailuPassword, "COUNT="+strconv.Itoa(perUser), "SEED="+strconv.Itoa(i+1))
			out, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("filling dovecot for %s: %v\n%s", u.email, err, out)
			}
			errs <- err
		}()
	}
	for range mailuUsers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Sieve scripts as Mailu's Dovecot keeps them (sieve = file:~/sieve;
	// active=~/.dovecot.sieve): bert has two, the first one active.
	home := filepath.Join(m.mail, "bert@one.test")
	for name, body := range bertSieve {
		p := filepath.Join(home, "sieve", name+".sieve")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sieve/roundcube.sieve", filepath.Join(home, ".dovecot.sieve")); err != nil {
		t.Fatal(err)
	}
	return m
}

// compare runs the IMAP comparison between Dovecot and Petrel.
func (m *mailuInstall) compare(t *testing.T, s *server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	_, port, _ := net.SplitHostPort(s.addr[143])
	cmd := exec.CommandContext(ctx, "python3", "testdata/mailu/compare_imap.py")
	cmd.Env = append(os.Environ(), "A_PORT="+strconv.Itoa(m.dovecot.port), "B_PORT="+port,
		"USERS="+mailuUserList(), "PASSWORD="+mailuPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Dovecot and Petrel differ: %v\n%s", err, out)
	}
	return string(out)
}

func importServer(t *testing.T) *server {
	return newServer(t, map[string]string{"TLS_FLAVOR": "notls", "PORTS": "25,143,587"})
}

// runImport runs petrel import-mailu and returns its output and exit code.
func (m *mailuInstall) runImport(t *testing.T, s *server, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"import-mailu", "--db", m.db, "--mail", m.mail, "--dkim", m.dkim}, extra...)
	out, err := s.cli("", args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out, 0
}

func storedMessages(t *testing.T, out string) int {
	t.Helper()
	for _, ln := range strings.Split(out, "\n") {
		f := strings.Fields(ln)
		if len(f) >= 2 && f[0] == "messages:" {
			n, err := strconv.Atoi(f[1])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no message count in the summary:\n%s", out)
	return 0
}

// TestImportMailu: a Mailu install whose Maildirs a real Dovecot wrote
// comes across whole: accounts with their hashes and settings, DKIM key,
// and every message with its UID, flags, date and bytes, as Dovecot
// serves them; a second run changes nothing. PETREL_IMPORT_LONG=N runs it
// with N messages per user (the long form: 4000 for 20,000).
func TestImportMailu(t *testing.T) {
	perUser := 60
	if v := os.Getenv("PETREL_IMPORT_LONG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		perUser = n
	}
	m := newMailuInstall(t, perUser)
	s := importServer(t)

	dry, code := m.runImport(t, s, "--dry-run")
	if code != ExitPartialCode || !strings.Contains(dry, "would import") {
		t.Fatalf("dry run: exit %d\n%s", code, dry)
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "dkim", "one.test.dkim.key")); err == nil {
		t.Error("the dry run copied the DKIM key")
	}

	start, cpu0 := time.Now(), childCPU()
	out, code := m.runImport(t, s)
	took, cpu := time.Since(start), childCPU()-cpu0
	load, _ := os.ReadFile("/proc/loadavg")
	n := storedMessages(t, out)
	// CPU time (user + system of the import process) is the figure that
	// compares on a shared machine; the load average says what the wall
	// time was up against.
	t.Logf("import of %d messages took %v (%.0f messages/s), %v of CPU (%.0f µs per message), load average %s:\n%s",
		n, took, float64(n)/took.Seconds(), cpu, float64(cpu.Microseconds())/float64(max(n, 1)), strings.TrimSpace(string(load)), out)
	// Mailu's config table has no place in Petrel (settings come from
	// the environment): exit 3, and the summary says so.
	if code != ExitPartialCode {
		t.Fatalf("import: exit %d, want %d\n%s", code, ExitPartialCode, out)
	}
	for _, want := range []string{"users:       5 new", "domains:     3 new", "aliases:     2 new", "tokens:      1 new",
		"managers:    1 new", "relays:      1 new", "alternatives: 1 new", "DKIM keys:   1 new",
		"Sieve scripts: 2 new", "fetched accounts: 1 new", "config entry motd"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "remote-secret") {
		t.Error("the summary shows a fetched account's password")
	}
	if strings.Contains(out, "Sieve scripts of") || strings.Contains(out, "fetched account emil") {
		t.Errorf("the summary still lists Sieve scripts or the fetched account as not imported:\n%s", out)
	}
	imported := checkImportedSieveAndFetch(t, s)
	// The key went into the store as it was (config-export prints it).
	keyLine := strings.Split(string(m.key), "\n")[1]
	if out := s.mustCLI("", "config-export", "--secrets"); !strings.Contains(out, keyLine) {
		t.Errorf("DKIM key not imported as it was:\n%s", out)
	}

	// Settings came across (config-export speaks Mailu's names).
	exp := s.mustCLI("", "config-export", "--full", "--secrets", "--json")
	var cfg struct {
		User []map[string]any `json:"user"`
	}
	if err := json.Unmarshal([]byte(exp), &cfg); err != nil {
		t.Fatalf("config-export: %v\n%s", err, exp)
	}
	byEmail := map[string]map[string]any{}
	for _, u := range cfg.User {
		byEmail[fmt.Sprint(u["email"])] = u
	}
	checks := []struct {
		email, field string
		want         any
	}{
		{"anna@one.test", "global_admin", true},
		{"anna@one.test", "quota_bytes", float64(5_000_000_000)},
		// Stored as Mailu had it; exported without the {SCHEME} (as Mailu).
		{"bert@one.test", "password", auth.StripDovecotPrefix(mailuUsers[1].hash)},
		{"bert@one.test", "forward_enabled", true},
		{"bert@one.test", "forward_keep", false},
		{"cleo@two.test", "reply_enabled", true},
		{"cleo@two.test", "reply_subject", "Away"},
		{"dora@two.test", "spam_mark_as_read", false},
		{"dora@two.test", "spam_threshold", float64(73)},
		{"emil@three.test", "enable_pop", false},
	}
	for _, c := range checks {
		if got := byEmail[c.email][c.field]; fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s %s = %v, want %v", c.email, c.field, got, c.want)
		}
	}

	s.start()
	report := m.compare(t, s)
	t.Log(report)
	if !strings.Contains(report, "compared") {
		t.Fatalf("comparison did not run:\n%s", report)
	}
	// Every hash scheme logs in with the old password, and the token too.
	out2, err := runPython(t, `
import imaplib, os
port = int(os.environ["PORT"])
for u in os.environ["USERS"].split(","):
    m = imaplib.IMAP4("127.0.0.1", port); m.login(u, os.environ["PW"]); m.logout()
m = imaplib.IMAP4("127.0.0.1", port); m.login("dora@two.test", os.environ["TOKEN"]); m.logout()
print("logins ok")
`, map[string]string{"PORT": strings.Split(s.addr[143], ":")[1], "USERS": mailuUserList(), "PW": mailuPassword, "TOKEN": m.token})
	if err != nil || !strings.Contains(out2, "logins ok") {
		t.Fatalf("login with Mailu's hashes: %v\n%s", err, out2)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}

	// A second run finds everything there and stores nothing.
	again, code := m.runImport(t, s)
	if code != ExitPartialCode || storedMessages(t, again) != 0 || !strings.Contains(again, "users:       0 new, 5 already there") {
		t.Fatalf("second run: exit %d\n%s", code, again)
	}
	for _, want := range []string{"Sieve scripts: 0 new, 2 already there", "fetched accounts: 0 new, 1 already there"} {
		if !strings.Contains(again, want) {
			t.Errorf("second run: summary lacks %q:\n%s", want, again)
		}
	}
	if got := checkImportedSieveAndFetch(t, s); got != imported {
		t.Errorf("the second run changed scripts or the fetched account:\n%s\nthen:\n%s", got, imported)
	}
	s.start()
	if r := m.compare(t, s); r != report {
		t.Errorf("the second run changed what IMAP shows:\n%s\nthen:\n%s", r, report)
	}
}

// ExitPartialCode is import-mailu's exit status when only data Petrel
// has no place for was left out (cli.ExitPartial).
const ExitPartialCode = 3

// TestImportMailuResumes: an import killed in the middle resumes on the
// next run without storing a message twice.
func TestImportMailuResumes(t *testing.T) {
	m := newMailuInstall(t, 40)
	s := importServer(t)
	cmd := exec.Command(binary, "import-mailu", "--db", m.db, "--mail", m.mail, "--dkim", m.dkim, "--batch", "5")
	cmd.Env = s.environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it (SIGKILL, no clean-up) once the first folder is done.
	sc := bufio.NewScanner(stderr)
	killed := false
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.HasPrefix(sc.Text(), "import: folder ") {
			cmd.Process.Kill()
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("the import ended before it could be interrupted:\n%s", strings.Join(seen, "\n"))
	}
	out, code := m.runImport(t, s)
	if code != ExitPartialCode {
		t.Fatalf("resumed import: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "already there") || strings.Contains(out, "; 0 already there") {
		t.Errorf("the resumed run did not find the first run's messages:\n%s", out)
	}
	s.start()
	t.Log(m.compare(t, s))
}

// childCPU is the user + system CPU time of the test's finished child
// processes.
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
