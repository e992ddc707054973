// Package filtertest starts real scanners for tests: rspamd (with its own
// redis-server) and clamd, each on private loopback ports with private
// configuration and run directories under the test's temp dir, from the
// files in internal/filter/testdata. A test is skipped, with a message
// that says which package to install, only when a binary is missing.
package filtertest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EICAR is the EICAR anti-virus test file (68 bytes).
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// GTUBE makes rspamd reject a message (score 15, "Gtube pattern").
const GTUBE = `XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X`

// Password is the test rspamd controller's password.
const Password = "petrel-test"

// testdata is internal/filter/testdata, found from this file's path.
func testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func need(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, bin)); err == nil {
				return filepath.Join(dir, bin)
			}
		}
		t.Skipf("%s not installed (Debian package %s): scanner integration test skipped", bin, pkg)
	}
	return p
}

// start runs cmd until the test ends, logging its output on failure.
func start(t testing.TB, name string, cmd *exec.Cmd) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// The whole process group: rspamd's workers too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return out
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitTCP waits until addr accepts connections and ok (if set) agrees.
func waitTCP(t testing.TB, name, addr string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			if ok == nil || ok() {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not come up on %s within %s", name, addr, within)
}

// Rspamd is a running private rspamd.
type Rspamd struct {
	Check      string // host:port of the normal worker (/checkv2)
	Controller string // host:port of the controller (learning)
	Redis      string // host:port of its redis-server
}

// StartRspamd starts redis-server and rspamd for the test.
func StartRspamd(t testing.TB) *Rspamd {
	t.Helper()
	rspamdBin := need(t, "rspamd", "rspamd")
	redisBin := need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	// rspamd's workers run as _rspamd: they must reach the directories.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := &Rspamd{Check: freePort(t), Controller: freePort(t), Redis: freePort(t)}
	_, redisPort, _ := net.SplitHostPort(r.Redis)
	start(t, "redis-server", exec.Command(redisBin, "--port", redisPort, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--daemonize", "no"))
	waitTCP(t, "redis-server", r.Redis, 10*time.Second, nil)

	local := filepath.Join(dir, "local")
	run := filepath.Join(dir, "run")
	db := filepath.Join(dir, "db")
	for _, d := range []string{local, filepath.Join(local, "local.d"), run, db} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(testdata(), "rspamd")
	copyFile(t, filepath.Join(src, "rspamd.local.lua"), filepath.Join(local, "rspamd.local.lua"))
	entries, err := os.ReadDir(filepath.Join(src, "local.d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(src, "local.d", e.Name()), filepath.Join(local, "local.d", e.Name()))
	}
	args := []string{"-f", "-c", filepath.Join(src, "rspamd.conf"),
		"--var", "LOCAL_CONFDIR=" + local, "--var", "RUNDIR=" + run, "--var", "DBDIR=" + db, "--var", "LOGDIR=" + run,
		"--var", "PETREL_CHECK=" + r.Check, "--var", "PETREL_CONTROLLER=" + r.Controller, "--var", "PETREL_REDIS=" + r.Redis}
	if os.Geteuid() == 0 {
		// rspamd refuses to run its workers as root.
		u, err := user.Lookup("_rspamd")
		if err != nil {
			t.Skipf("running as root and no _rspamd user to run rspamd as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{run, db} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		args = append(args, "-u", "_rspamd", "-g", u.Gid)
		if g, err := user.LookupGroupId(u.Gid); err == nil {
			args[len(args)-1] = g.Name
		}
	}
	start(t, "rspamd", exec.Command(rspamdBin, args...))
	ping := func() bool {
		resp, err := http.Get("http://" + r.Check + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	waitTCP(t, "rspamd", r.Check, 3*time.Minute, ping) // slow on a busy machine
	waitTCP(t, "rspamd controller", r.Controller, 30*time.Second, nil)
	return r
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// StartClamd starts clamd with a database holding only the EICAR
// signature (testdata/clamd/petrel-test.ndb) and returns its address.
func StartClamd(t testing.TB) string {
	t.Helper()
	bin := need(t, "clamd", "clamav-daemon")
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(testdata(), "clamd", "petrel-test.ndb"), filepath.Join(dbDir, "petrel-test.ndb"))
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	tmpl, err := os.ReadFile(filepath.Join(testdata(), "clamd", "clamd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{PORT}}", port, "{{DBDIR}}", dbDir).Replace(string(tmpl))
	if os.Geteuid() == 0 {
		// clamd drops to its User (Debian: clamav) when started as
		// root; stay root so it can read the test's temp dir.
		conf += "User root\n"
	}
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "clamd", exec.Command(bin, "-c", confPath))
	ping := func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("zPING\x00"))
		b := make([]byte, 16)
		n, _ := c.Read(b)
		return strings.HasPrefix(string(b[:n]), "PONG")
	}
	waitTCP(t, "clamd", addr, 60*time.Second, ping)
	return addr
}

// Context returns a context for one scanner call in a test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
