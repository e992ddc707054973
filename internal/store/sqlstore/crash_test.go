package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestSQLiteCrash commits messages in a child process that then dies by
// SIGKILL, without Close: a re-opened store must hold all of it (WAL
// recovery), including the blob-stored body.
func TestSQLiteCrash(t *testing.T) {
	if dir := os.Getenv("PETREL_SQLSTORE_CRASH_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteCrash$")
	cmd.Env = append(os.Environ(), "PETREL_SQLSTORE_CRASH_DIR="+dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v (%s)", err, out)
	}
	if strings.TrimSpace(string(out)) != "committed" {
		t.Fatalf("child said %q", out)
	}
	s, err := Open(t.Context(), crashOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.ListMessages(t.Context(), "a@example.com", "INBOX")
	if err != nil || len(l) != 2 {
		t.Fatalf("after crash: %d messages, %v; want 2", len(l), err)
	}
	for i, want := range crashBodies() {
		r, err := s.OpenBody(t.Context(), l[i].BodyID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("body %d after crash: %d bytes, want %d identical", i, len(got), len(want))
		}
	}
	if u, err := s.GetUser(t.Context(), "a@example.com"); err != nil || u.QuotaBytesUsed != l[0].Size+l[1].Size {
		t.Fatalf("user after crash: %+v, %v", u, err)
	}
}

func crashOptions(dir string) Options {
	return Options{Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs"), InlineMax: 1000}
}

func crashBodies() [][]byte {
	return [][]byte{[]byte("Subject: small\r\n\r\nx\r\n"), bytes.Repeat([]byte("large body line\r\n"), 200)}
}

func crashChild(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, crashOptions(dir))
	if err != nil {
		os.Exit(2)
	}
	u := store.NewUser("a", "example.com", 0, 80)
	var msgs []*store.NewMessage
	for _, b := range crashBodies() {
		msgs = append(msgs, &store.NewMessage{ID: "c", Body: b, Targets: []store.MailboxTarget{{User: u.Email}}})
	}
	if s.CreateDomain(ctx, &store.Domain{Name: "example.com"}) != nil || s.CreateUser(ctx, &u) != nil ||
		s.CommitMessages(ctx, msgs) != nil {
		os.Exit(3)
	}
	os.Stdout.WriteString("committed\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
