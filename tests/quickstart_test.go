package tests

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestQuickstartGivesARunningServer follows the README: `petrel quickstart`
// on an empty directory prints an admin password and the client settings,
// and that login works for submission right away. The first start is clean
// (no warning about settings quickstart chose itself), the banner gives the
// incoming IMAP and POP3 settings as well as the outgoing server, and its
// commands name the binary that ran (petrel is not on PATH here).
func TestQuickstartGivesARunningServer(t *testing.T) {
	dir := t.TempDir()
	ports := newServer(t, nil).addr // free loopback ports for every role
	cmd := exec.Command(binary, "quickstart")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "CREDENTIAL_ROUNDS=4"}
	// Only the ports quickstart turns on: an address for a port that is
	// off is the user's own mistake and rightly warned about.
	for _, p := range []int{25, 465, 993, 995, 80, 443} {
		cmd.Env = append(cmd.Env, "LISTEN_"+strconv.Itoa(p)+"="+ports[p])
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
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
	for _, want := range []string{"admin@example.test", "SSL/TLS", "petrel.env",
		"incoming (IMAP): server localhost, port " + port(ports[993]) + ", SSL/TLS, username admin@example.test",
		"incoming (POP3): server localhost, port " + port(ports[995]) + ", SSL/TLS, username admin@example.test",
		"outgoing (SMTP): server localhost, port " + port(ports[465]) + ", SSL/TLS, username admin@example.test",
		"More users:     " + binary + " --env-file ",
		"Check setup:    " + binary + " --env-file "} {
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

	// By now every start-up line is written: none warns about a setting
	// quickstart chose (SECRET_KEY, LISTEN_ for a port left off, 4190).
	// The self-signed certificate warning stays: it is real, and the
	// banner explains it.
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "warning:") || strings.HasPrefix(line, "error:") ||
			(strings.Contains(line, "level=WARN") && !strings.Contains(line, "self-signed certificate")) {
			t.Errorf("quickstart's first start warns: %s", line)
		}
	}
	if !strings.Contains(stderr.String(), "port 465 (submissions): on") {
		t.Errorf("start-up lines missing from stderr:\n%s", stderr.String())
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// syncBuffer is a bytes.Buffer safe for the process's writer goroutine
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
