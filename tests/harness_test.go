// Package tests holds black-box tests: they build the real petrel binary,
// run it with a temporary DATA_DIR on loopback ports, and talk to it with
// real protocol clients (our Go clients, Python's smtplib, swaks).
package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
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

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
)

// binary is the petrel binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "petrel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "petrel")
	// CGO_ENABLED=0: the binary must stay a static, pure-Go build.
	build := exec.Command("go", "build", "-o", binary, "../cmd/petrel")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building petrel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// roles are the listeners a test server gets a loopback port for.
var roles = []int{25, 465, 587, 993, 143, 995, 110, 80, 443, 4190}

// server is one running petrel process.
type server struct {
	t       *testing.T
	dataDir string
	env     map[string]string
	dns     *dnstest.Server // RESOLVER_ADDRESS
	addr    map[int]string  // role port -> 127.0.0.1:N
	cmd     *exec.Cmd
	logMu   sync.Mutex
	log     bytes.Buffer
	exited  chan struct{} // closed when the process has ended
	waitErr error         // its exit status, valid once exited is closed
}

// newServer prepares (but does not start) a server with a fresh DATA_DIR,
// loopback listeners for every role, cheap bcrypt and the settings given.
func newServer(t *testing.T, settings map[string]string) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), addr: map[int]string{}}
	// DNS is an in-process server (DESIGN.md): hermetic, and fast even
	// where the machine's resolver is slow or unreachable.
	dns := dnstest.New(t)
	s.dns = dns
	s.env = map[string]string{
		"RESOLVER_ADDRESS":  dns.Addr,
		"DATA_DIR":          s.dataDir,
		"DOMAIN":            "example.test",
		"HOSTNAMES":         "mail.example.test",
		"CREDENTIAL_ROUNDS": "4",
		"LOG_LEVEL":         "DEBUG",
		"SECRET_KEY":        "test-secret-key-0123456789",
	}
	// Hold every socket until all are chosen, so no two roles get the
	// same port.
	var held []net.Listener
	for _, p := range roles {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		s.addr[p] = ln.Addr().String()
		s.env[fmt.Sprintf("LISTEN_%d", p)] = s.addr[p]
	}
	for _, ln := range held {
		ln.Close()
	}
	for k, v := range settings {
		s.env[k] = v
	}
	return s
}

func (s *server) environ() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	return env
}

// cli runs a petrel subcommand against the server's DATA_DIR.
func (s *server) cli(stdin string, args ...string) (string, error) {
	s.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = s.environ()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustCLI runs a subcommand and fails the test if it fails.
func (s *server) mustCLI(stdin string, args ...string) string {
	s.t.Helper()
	out, err := s.cli(stdin, args...)
	if err != nil {
		s.t.Fatalf("petrel %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// ready reports whether the server answers on port 25 and has bound
// every other listener (they come after 25): it says "petrel is running"
// then, and where LOG_LEVEL hides that line, every port in PORTS answers.
func (s *server) ready() bool {
	if !answers(s.addr[25]) {
		return false
	}
	if strings.Contains(s.logs(), "petrel is running") {
		return true
	}
	switch strings.ToUpper(s.env["LOG_LEVEL"]) {
	case "WARNING", "WARN", "ERROR", "CRITICAL":
	default:
		return false
	}
	ports := s.env["PORTS"]
	if ports == "" {
		ports = "25,80,443,465,993,995,4190" // Mailu's default
	}
	for _, p := range strings.Split(ports, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || s.addr[n] == "" {
			continue
		}
		if !answers(s.addr[n]) {
			return false
		}
	}
	return true
}

func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// start runs `petrel serve` and waits until it is ready. A role's port
// is chosen free in newServer but released before the process binds it,
// so any connection of a parallel test may take it meanwhile (outgoing
// connections draw from the same ephemeral range); when the process
// stops on exactly that, start moves the role to a fresh port and tries
// again. The log keeps the failed attempts' lines: what they did at
// start (a key import, a migration) is done, and is not logged again.
func (s *server) start() {
	s.t.Helper()
	earlier := ""
	for attempt := 1; ; attempt++ {
		err := s.launch()
		if err == nil {
			s.logMu.Lock()
			now := s.log.String()
			s.log.Reset()
			s.log.WriteString(earlier + now)
			s.logMu.Unlock()
			return
		}
		port := portTaken(s.logs())
		if port == 0 || attempt == 3 {
			s.t.Fatalf("%v\n%s", err, earlier+s.logs())
		}
		earlier += s.logs()
		s.t.Logf("port %d's address %s was taken before petrel bound it; moving it", port, s.addr[port])
		s.movePort(port)
	}
}

// launch starts the process and waits until it is ready; the error says
// why not.
func (s *server) launch() error {
	s.logMu.Lock()
	s.log.Reset()
	s.logMu.Unlock()
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = s.environ()
	s.cmd.Stdout = &lockedWriter{mu: &s.logMu, w: &s.log}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(cmd *exec.Cmd) {
		s.waitErr = cmd.Wait()
		close(exited)
	}(s.cmd)
	s.t.Cleanup(s.kill)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("petrel serve exited early: %v", s.waitErr)
		default:
		}
		if s.ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("petrel serve did not listen on %s", s.addr[25])
}

// portTakenLine is how petrel reports a listener it could not bind
// because something else holds the address.
var portTakenLine = regexp.MustCompile(`port (\d+): cannot listen on \S+: listen tcp \S+: bind: address already in use`)

// portTaken returns the role port whose address was in use, or 0.
func portTaken(logs string) int {
	m := portTakenLine.FindStringSubmatch(logs)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// movePort gives role a fresh loopback port.
func (s *server) movePort(role int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr[role] = ln.Addr().String()
	ln.Close()
	s.env[fmt.Sprintf("LISTEN_%d", role)] = s.addr[role]
}

// kill ends the process with SIGKILL (a crash) if it still runs.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and returns the exit error.
func (s *server) stop() error {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(30 * time.Second):
		s.t.Fatalf("petrel did not stop within 30s after SIGTERM\n%s", s.logs())
		return nil
	}
}

func (s *server) logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// waitLog waits until the log contains substr.
func (s *server) waitLog(substr string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.logs(), substr) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// dialog is a minimal line-oriented SMTP client for exact reply checks.
type dialog struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *dialog {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &dialog{t: t, conn: c, r: bufio.NewReader(c)}
}

// reply reads one (possibly multi-line) reply and returns it whole.
func (d *dialog) reply() string {
	d.t.Helper()
	var all strings.Builder
	for {
		line, err := d.r.ReadString('\n')
		if err != nil {
			d.t.Fatalf("reading reply: %v (so far %q)", err, all.String())
		}
		all.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			return all.String()
		}
	}
}

// expect reads a reply and checks that it starts with prefix.
func (d *dialog) expect(prefix string) string {
	d.t.Helper()
	r := d.reply()
	last := r[strings.LastIndex(strings.TrimRight(r, "\r\n"), "\n")+1:]
	if !strings.HasPrefix(last, prefix) {
		d.t.Fatalf("want reply %q..., got %q", prefix, r)
	}
	return r
}

// send writes one command line and checks the reply prefix.
func (d *dialog) send(line, prefix string) string {
	d.t.Helper()
	if _, err := io.WriteString(d.conn, line+"\r\n"); err != nil {
		d.t.Fatalf("write %q: %v", line, err)
	}
	return d.expect(prefix)
}

// runPython runs a Python script with the given environment additions and
// returns its output; the test is skipped when python3 is missing.
func runPython(t *testing.T, script string, env map[string]string) (string, error) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", script)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
