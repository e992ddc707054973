package imapd

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sortMailbox generates a mailbox the way real ones look to SORT and
// THREAD: replies and forwards with list tags, encoded subjects and
// names, dates in many zones (some missing or broken), groups and empty
// address fields, reference chains with holes, duplicates, loops and
// In-Reply-To only. Each entry is a message and its internal date.
func sortMailbox(n int, seed uint64) (msgs []string, dates []string) {
	rng := rand.New(rand.NewPCG(seed, 7))
	subjects := []string{"hello", "Meeting notes", "[petrel] release 1.0", "budget", "=?iso-8859-1?q?caf=E9?=",
		"=?utf-8?b?w6l0w6k=?=", "", "Re:", "   spaced    out  ", "_underscore", "Zeta", "ärger"}
	prefixes := []string{"", "", "Re: ", "RE: ", "Fwd: ", "[list] Re: ", "Re: [list] ", "FW: ", "re[2]: ", "[fwd: "}
	people := []string{"Alice <alice@a.test>", "bob@b.test", "=?utf-8?q?J=C3=BCrgen?= <j@c.test>", `"Zoe, Q." <zoe@d.test>`,
		"team: carol@e.test, dave@e.test;", "undisclosed-recipients:;", "<bare@f.test>", "Émile <emile@g.test>", "x"}
	zones := []string{"+0000", "-0800", "+0530", "+1400", "-1200", "+0100"}
	for i := 1; i <= n; i++ {
		var h strings.Builder
		subj := subjects[rng.IntN(len(subjects))]
		p := prefixes[rng.IntN(len(prefixes))]
		if p == "[fwd: " {
			subj = p + subj + "]"
		} else {
			subj = p + subj
		}
		if rng.IntN(10) == 0 {
			subj += " (fwd)"
		}
		if rng.IntN(15) != 0 {
			fmt.Fprintf(&h, "Subject: %s\r\n", subj)
		}
		day := 1 + rng.IntN(28)
		switch rng.IntN(12) {
		case 0: // no Date
		case 1:
			h.WriteString("Date: not a date\r\n")
		default:
			fmt.Fprintf(&h, "Date: %d Mar 2024 %02d:%02d:%02d %s\r\n", day, rng.IntN(24), rng.IntN(60), rng.IntN(60), zones[rng.IntN(len(zones))])
		}
		for _, f := range []string{"From", "To", "Cc"} {
			if rng.IntN(6) != 0 {
				fmt.Fprintf(&h, "%s: %s\r\n", f, people[rng.IntN(len(people))])
			}
		}
		// Message-IDs: m<i>, with now and then a duplicate or none.
		switch rng.IntN(20) {
		case 0:
		case 1:
			fmt.Fprintf(&h, "Message-ID: <m%d@x.test>\r\n", 1+rng.IntN(i))
		default:
			fmt.Fprintf(&h, "Message-ID: <m%d@x.test>\r\n", i)
		}
		if i > 1 {
			switch rng.IntN(6) {
			case 0, 1: // a chain of references, maybe with a missing message
				var refs []string
				for r := 1 + rng.IntN(i); r < i && len(refs) < 4; r += 1 + rng.IntN(5) {
					refs = append(refs, fmt.Sprintf("<m%d@x.test>", r))
				}
				if rng.IntN(4) == 0 {
					refs = append(refs, fmt.Sprintf("<gone%d@x.test>", rng.IntN(5)))
				}
				if len(refs) > 0 {
					fmt.Fprintf(&h, "References: %s\r\n", strings.Join(refs, "\r\n "))
				}
			case 2: // In-Reply-To only
				fmt.Fprintf(&h, "In-Reply-To: <m%d@x.test> (sent by someone)\r\n", 1+rng.IntN(i-1))
			case 3: // a reference to a later message: loops are possible
				fmt.Fprintf(&h, "References: <m%d@x.test>\r\n", 1+rng.IntN(n))
			}
		}
		h.WriteString("\r\n")
		h.WriteString(strings.Repeat("body text\r\n", 1+rng.IntN(20)))
		msgs = append(msgs, h.String())
		dates = append(dates, fmt.Sprintf("%02d-Mar-2024 %02d:%02d:00 %s", 1+rng.IntN(28), rng.IntN(24), rng.IntN(4)*15, zones[rng.IntN(len(zones))]))
	}
	return msgs, dates
}

// sortCommands are compared with Dovecot's answers.
var sortCommands = []string{
	"SORT (ARRIVAL) UTF-8 ALL",
	"SORT (DATE) UTF-8 ALL",
	"SORT (REVERSE DATE) UTF-8 ALL",
	"SORT (SUBJECT) UTF-8 ALL",
	"SORT (REVERSE SUBJECT DATE) UTF-8 ALL",
	"SORT (FROM) UTF-8 ALL",
	"SORT (TO REVERSE ARRIVAL) UTF-8 ALL",
	"SORT (CC) UTF-8 ALL",
	"SORT (SIZE) UTF-8 ALL",
	"SORT (DISPLAYFROM) UTF-8 ALL",
	"SORT (DISPLAYTO SIZE) UTF-8 ALL",
	"UID SORT (SUBJECT FROM) UTF-8 ALL",
	"SORT (DATE) UTF-8 SUBJECT hello",
	"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL",
	"SORT RETURN (ALL) (ARRIVAL) UTF-8 1:40",
	"THREAD ORDEREDSUBJECT UTF-8 ALL",
	"THREAD REFERENCES UTF-8 ALL",
	"UID THREAD REFERENCES UTF-8 ALL",
	"THREAD REFERENCES UTF-8 NOT SUBJECT budget",
}

// TestSortThreadDovecot sends the same generated mailbox to Petrel and to
// Debian's Dovecot (its imap binary in PREAUTH mode over a socket pair)
// and compares every SORT and THREAD answer.
func TestSortThreadDovecot(t *testing.T) {
	dc := startDovecotIMAP(t)
	ts := startServer(t, nil)
	pc := ts.login(alice, alicePass)
	seed := uint64(2026)
	if v := os.Getenv("PETREL_SORT_SEED"); v != "" { // other mailboxes on demand
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	msgs, dates := sortMailbox(300, seed)
	for _, c := range []*client{dc, pc} {
		for i, m := range msgs {
			c.ok(fmt.Sprintf("APPEND INBOX \"%s\" {%d+}\r\n%s", dates[i], len(m), m))
		}
		c.ok("SELECT INBOX")
	}
	for _, cmd := range sortCommands {
		want := answer(dc, cmd)
		got := answer(pc, cmd)
		if got != want {
			t.Errorf("%s:\n dovecot %s\n petrel  %s", cmd, want, got)
		}
	}
}

// answer runs cmd and returns its SORT, THREAD or ESEARCH answer in upper
// case, without the ESEARCH tag (tags differ between the two clients).
func answer(c *client, cmd string) string {
	c.t.Helper()
	var out []string
	for _, u := range c.ok(cmd) {
		u = strings.ToUpper(u)
		if i := strings.Index(u, "(TAG "); i >= 0 {
			j := strings.IndexByte(u[i:], ')')
			u = u[:i] + u[i+j+1:]
		}
		if strings.HasPrefix(u, "* SORT") || strings.HasPrefix(u, "* THREAD") || strings.HasPrefix(u, "* ESEARCH") {
			out = append(out, u)
		}
	}
	return strings.Join(out, "\n")
}

// startDovecotIMAP runs Dovecot's imap binary in PREAUTH mode on one end
// of a socket pair and returns a client on the other end, logged in. It
// skips when Debian's dovecot-imapd is not installed.
func startDovecotIMAP(t *testing.T) *client {
	t.Helper()
	const bin = "/usr/lib/dovecot/imap"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("Dovecot's imap (Debian dovecot-imapd) is not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(home, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{home, filepath.Join(dir, "run")} {
		_ = os.Chmod(p, 0o777) // Dovecot runs as nobody when we are root
	}
	for p := dir; strings.HasPrefix(p, os.TempDir()) && p != os.TempDir(); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755) // and must reach its configuration
	}
	conf := filepath.Join(dir, "dovecot.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf("base_dir = %s/run\nlog_path = /dev/stderr\nmail_location = maildir:%s/mail\nssl = no\nmail_fsync = never\n", dir, home)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	args := []string{"env", "USER=t", "HOME=" + home, bin, "-c", conf}
	if os.Getuid() == 0 {
		args = append([]string{"runuser", "-u", "nobody", "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	// A group of its own: runuser's child, the imap process, is killed
	// with it (a slow exit once left it running after the test).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin, cmd.Stdout = theirs, theirs
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("dovecot stderr: %s", stderr.String())
		}
	})
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.read(); !strings.HasPrefix(g, "* PREAUTH") {
		t.Fatalf("dovecot greeting: %q (stderr %s)", g, stderr.String())
	}
	return c
}

// TestSortThreadErrors: bad criteria, charsets and algorithms get BAD or
// NO, and an empty result is an empty answer.
func TestSortThreadErrors(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.expect("SORT (FOO) UTF-8 ALL", "BAD")
	c.expect("SORT (REVERSE) UTF-8 ALL", "BAD")
	c.expect("SORT () UTF-8 ALL", "BAD")
	c.expect("SORT (DATE) KOI8-R ALL", "NO [BADCHARSET")
	c.expect("SORT RETURN (FOO) (DATE) UTF-8 ALL", "BAD")
	c.expect("THREAD XYZ UTF-8 ALL", "BAD")
	c.expect("THREAD REFERENCES UTF-8", "BAD")
	mustHave(t, c.ok("SORT (DATE) UTF-8 ALL"), "* SORT")
	mustHave(t, c.ok("THREAD REFERENCES UTF-8 ALL"), "* THREAD")
	mustHave(t, c.ok("SORT RETURN (COUNT) (DATE) UTF-8 ALL"), "* ESEARCH (TAG \"A012\") COUNT 0")
	c.ok("UNSELECT")
	c.expect("SORT (DATE) UTF-8 ALL", "BAD")
}
