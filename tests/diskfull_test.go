package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountSmallFS mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when the test ends (after the server, whose clean-up is
// registered later and so runs first). It skips the test when not root.
func mountSmallFS(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full test skipped: it mounts a small tmpfs, which needs root (run the tests as root to include it)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("disk-full test skipped: cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes path until the filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// Smaller writes take the last blocks.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// tryDeliver sends one message on port 25 and returns the first reply that
// is not a success (its code and enhanced code), or "250" when accepted.
func tryDeliver(t *testing.T, addr, body string) string {
	t.Helper()
	d := dial(t, addr)
	defer d.conn.Close()
	d.expect("220")
	d.send("EHLO mx.example.org", "250")
	for _, cmd := range []string{"MAIL FROM:<bob@example.org>", "RCPT TO:<alice@example.test>", "DATA"} {
		r := d.send(cmd, "")
		if !strings.HasPrefix(r, "250") && !strings.HasPrefix(r, "354") {
			return strings.TrimSpace(r)
		}
	}
	r := d.send(body+".", "")
	if strings.HasPrefix(r, "250") {
		return "250"
	}
	return strings.TrimSpace(r)
}

// TestDiskReserve: with DATA_DIR on a small filesystem, mail is accepted
// until the free space falls below DISK_RESERVE, then refused with
// "452 4.3.1" (logged once, not per message); IMAP APPEND gets NO
// [OVERQUOTA]; EXPUNGE still works, even once something else has filled the
// disk to the last byte (Petrel gives up its ballast file), and the space
// freed lets mail in again (issue 17).
func TestDiskReserve(t *testing.T) {
	const fsSize = 24 << 20
	const reserve = 6 << 20
	dir := mountSmallFS(t, fsSize)
	s := newServer(t, map[string]string{
		"DATA_DIR":           dir,
		"DISK_RESERVE":       fmt.Sprint(reserve),
		"MESSAGE_SIZE_LIMIT": "2000000",
	})
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.start()

	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	body := "From: bob@example.org\r\nTo: alice@example.test\r\nSubject: filler\r\n\r\n" + strings.Repeat(line, (700<<10)/len(line))
	accepted, refusal := 0, ""
	for i := 0; i < 60 && refusal == ""; i++ {
		if r := tryDeliver(t, s.addr[25], body); r == "250" {
			accepted++
		} else {
			refusal = r
		}
	}
	free := freeBytes(t, dir)
	t.Logf("accepted %d messages of 700 KiB, then %q; %d KiB free", accepted, refusal, free>>10)
	if accepted < 5 {
		t.Fatalf("only %d messages accepted before the refusal %q\n%s", accepted, refusal, s.logs())
	}
	if !strings.HasPrefix(refusal, "452 4.3.1") {
		t.Fatalf("refusal %q, want 452 4.3.1\n%s", refusal, s.logs())
	}
	if free < reserve/2 {
		t.Errorf("only %d KiB free when mail was refused; the reserve is %d KiB", free>>10, reserve>>10)
	}
	// More attempts are refused without another loud log line.
	for i := 0; i < 3; i++ {
		if r := tryDeliver(t, s.addr[25], body); !strings.HasPrefix(r, "452 4.3.1") {
			t.Errorf("attempt %d while low: %q", i, r)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if n := strings.Count(s.logs(), "free disk space below DISK_RESERVE"); n != 1 {
		t.Errorf("the low-space line was logged %d times, want once\n%s", n, s.logs())
	}

	// Something else fills the disk to the last byte: Petrel gives up its
	// ballast file, so that EXPUNGE still finds room for SQLite's WAL.
	// A restart on the full disk is the hard case: SQLite removed its WAL
	// at the clean stop, and the first write must grow it again.
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.logs())
	}
	fillDisk(t, filler+"2")
	s.start()
	if !s.waitLog("ballast file removed") {
		t.Fatalf("the ballast was not given up on a full disk (%d bytes free)\n%s", freeBytes(t, dir), s.logs())
	}

	// IMAP: APPEND is refused, EXPUNGE works.
	script := `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
try:
    typ, data = m.append("INBOX", None, None, b"Subject: appended\r\n\r\n" + b"x" * 300000 + b"\r\n")
    print("APPEND", typ, data[0].decode())
except imaplib.IMAP4.error as e:
    print("APPEND NO", e)
typ, data = m.select("INBOX")
print("EXISTS", data[0].decode())
typ, data = m.store("1:*", "+FLAGS", "\\Deleted")
print("STORE", typ)
typ, data = m.expunge()
print("EXPUNGE", typ, len([d for d in data if d]))
typ, data = m.select("INBOX")
print("AFTER", data[0].decode())
m.logout()
`
	out, err := runPython(t, script, map[string]string{"A993": s.addr[993]})
	if err != nil {
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, s.logs())
	}
	t.Logf("imaplib:\n%s", out)
	if !strings.Contains(out, "APPEND NO") || !strings.Contains(out, "OVERQUOTA") {
		t.Errorf("APPEND below the reserve was not refused with OVERQUOTA:\n%s", out)
	}
	if !strings.Contains(out, "EXPUNGE OK") || !strings.Contains(out, "AFTER 0") {
		t.Fatalf("EXPUNGE below the reserve failed:\n%s\n%s", out, s.logs())
	}

	for _, f := range []string{filler, filler + "2"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}

	// The freed space lets mail in again, and the recovery is logged once.
	deadline := time.Now().Add(10 * time.Second)
	r := ""
	for time.Now().Before(deadline) {
		if r = tryDeliver(t, s.addr[25], body); r == "250" {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if r != "250" {
		t.Fatalf("after EXPUNGE freed %d KiB, delivery still gets %q\n%s", freeBytes(t, dir)>>10, r, s.logs())
	}
	if n := strings.Count(s.logs(), "free disk space back above DISK_RESERVE"); n != 1 {
		t.Errorf("the recovery line was logged %d times, want once\n%s", n, s.logs())
	}
}
