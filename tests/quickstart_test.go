package tests

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQuickstartGivesARunningServer follows the README: `petrel quickstart`
// on an empty directory prints an admin password and the client settings,
// and that login works for submission right away.
func TestQuickstartGivesARunningServer(t *testing.T) {
	dir := t.TempDir()
	ports := newServer(t, nil).addr // free loopback ports for every role
	cmd := exec.Command(binary, "quickstart")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "CREDENTIAL_ROUNDS=4"}
	for p, a := range ports {
		cmd.Env = append(cmd.Env, "LISTEN_"+strconv.Itoa(p)+"="+a)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	pwLine := regexp.MustCompile(`Password:\s+(\S+)\s+\(shown only now`)
	password := ""
	var welcome strings.Builder
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		welcome.WriteString(sc.Text() + "\n")
		if m := pwLine.FindStringSubmatch(sc.Text()); m != nil {
			password = m[1]
		}
		if strings.Contains(sc.Text(), "Check setup:") {
			break
		}
	}
	if password == "" {
		t.Fatalf("quickstart printed no password:\n%s", welcome.String())
	}
	for _, want := range []string{"admin@example.test", "SSL/TLS", "petrel.env"} {
		if !strings.Contains(welcome.String(), want) {
			t.Errorf("welcome text lacks %q:\n%s", want, welcome.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "petrel-data", "main.db")); err != nil {
		t.Errorf("no database under ./petrel-data: %v", err)
	}

	// The server comes up right after the welcome text.
	var conn *tls.Conn
	for i := 0; i < 100; i++ {
		if conn, err = tls.Dial("tcp", ports[465], &tls.Config{InsecureSkipVerify: true}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("465 never answered: %v", err)
	}
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(smtp.PlainAuth("", "admin@example.test", password, "localhost")); err != nil {
		t.Fatalf("the printed admin login does not work: %v", err)
	}
}
