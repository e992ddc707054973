package tests

import (
	"context"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestManageSievePython: an independent ManageSieve client written from
// RFC 5804 (tests/testdata/managesieve_client.py, Python stdlib only)
// checks every reply of port 4190, which Mailu's default PORTS enables.
func TestManageSievePython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	s := withUsers(t, nil)
	if !s.waitLog("port 4190 (sieve): on at " + s.addr[4190]) {
		t.Fatalf("start-up log does not say 4190 is served:\n%s", s.logs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/managesieve_client.py")
	cmd.Env = append(os.Environ(), "SIEVE_ADDR="+s.addr[4190], "SIEVE_USER=alice@example.test",
		"SIEVE_PASS=Secret-Alice-1", "SIEVE_MAXSIZE="+strconv.Itoa(1<<20))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ALL CHECKS PASSED") {
		t.Fatalf("python client: %v\n%s\nserver log:\n%s", err, out, s.logs())
	}
	if logs := s.logs(); strings.Contains(logs, "Secret-Alice-1") || !strings.Contains(logs, "sieve login") {
		t.Fatalf("log shows the password or lacks the login:\n%s", logs)
	}
}

// TestSieveConnect: Debian's sieve-connect, an independent client, uploads
// a script over STARTTLS, activates it, lists and downloads it.
func TestSieveConnect(t *testing.T) {
	sc, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed (.ci/run installs Debian's sieve-connect)")
	}
	s := withUsers(t, nil)
	dir := t.TempDir()
	script := "require [\"fileinto\", \"mailbox\"];\r\nif header :contains \"subject\" \"[lists]\" {\r\n  fileinto :create \"Lists\";\r\n  stop;\r\n}\r\n"
	local := filepath.Join(dir, "filter.sieve")
	if err := os.WriteFile(local, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.addr[4190], ":")
	run := func(password string, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		go func() { w.WriteString(password + "\n"); w.Close() }()
		cmd := exec.CommandContext(ctx, sc, append([]string{"--server", host, "--port", port,
			"--user", "alice@example.test", "--notlsverify", "--passwordfd", "3"}, args...)...)
		cmd.ExtraFiles = []*os.File{r} // fd 3
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, step := range [][]string{
		{"--localsieve", local, "--remotesieve", "filter", "--upload"},
		{"--remotesieve", "filter", "--activate"},
	} {
		if out, err := run("Secret-Alice-1", step...); err != nil {
			t.Fatalf("sieve-connect %v: %v\n%s\nserver log:\n%s", step, err, out, s.logs())
		}
	}
	out, err := run("Secret-Alice-1", "--list")
	if err != nil || !strings.Contains(out, "filter") || !strings.Contains(out, "<- active") && !strings.Contains(out, "ACTIVE") {
		t.Fatalf("sieve-connect --list: %v\n%s", err, out)
	}
	got := filepath.Join(dir, "got.sieve")
	if out, err := run("Secret-Alice-1", "--remotesieve", "filter", "--localsieve", got, "--download"); err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(got); err != nil || strings.ReplaceAll(string(b), "\r\n", "\n") != strings.ReplaceAll(script, "\r\n", "\n") {
		t.Fatalf("downloaded %q (%v), want %q", b, err, script)
	}
	// A script with an error is refused, and sieve-connect says why.
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(bad, []byte("keep;\nfrobnicate;\n"), 0o600)
	if out, err := run("Secret-Alice-1", "--localsieve", bad, "--remotesieve", "bad", "--upload"); err == nil || !strings.Contains(out, "line 2") {
		t.Fatalf("bad script: err=%v\n%s", err, out)
	}
	if out, err := run("wrong-password", "--list"); err == nil {
		t.Fatalf("wrong password accepted:\n%s", out)
	}
	if logs := s.logs(); strings.Contains(logs, "Secret-Alice-1") || !strings.Contains(logs, "sieve script activated") {
		t.Fatalf("server log:\n%s", logs)
	}
}

// TestSieveConnectThenDelivery: a script uploaded and activated with
// sieve-connect decides where mail arriving on port 25 lands.
func TestSieveConnectThenDelivery(t *testing.T) {
	sc, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed (.ci/run installs Debian's sieve-connect)")
	}
	s := withUsers(t, nil)
	dir := t.TempDir()
	local := filepath.Join(dir, "lists.sieve")
	script := "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"[lists]\" {\n  fileinto :create \"Lists\";\n  stop;\n}\n"
	if err := os.WriteFile(local, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.addr[4190], ":")
	for _, step := range [][]string{{"--localsieve", local, "--remotesieve", "lists", "--upload"}, {"--remotesieve", "lists", "--activate"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { w.WriteString("Secret-Alice-1\n"); w.Close() }()
		cmd := exec.Command(sc, append([]string{"--server", host, "--port", port, "--user", "alice@example.test",
			"--notlsverify", "--passwordfd", "3"}, step...)...)
		cmd.ExtraFiles = []*os.File{r}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		r.Close()
		if err != nil {
			t.Fatalf("sieve-connect %v: %v\n%s", step, err, out)
		}
	}
	for _, subject := range []string{"[lists] weekly digest", "hello"} {
		c, err := smtp.Dial(s.addr[25])
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("someone@sender.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("alice@example.test"); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("From: someone@sender.test\r\nTo: alice@example.test\r\nSubject: " + subject + "\r\n\r\nbody\r\n"))
		if err := w.Close(); err != nil {
			t.Fatalf("DATA: %v\n%s", err, s.logs())
		}
		c.Quit()
	}
	s.stopClean()
	st := openStore(t, s)
	defer st.Close()
	for box, want := range map[string]int{"Lists": 1, "INBOX": 1} {
		msgs, err := st.ListMessages(context.Background(), "alice@example.test", box)
		if err != nil || len(msgs) != want {
			t.Errorf("%s: %d messages (%v), want %d\n%s", box, len(msgs), err, want, s.logs())
		}
	}
}
