package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newDir(t *testing.T) *Dir {
	t.Helper()
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func commit(t *testing.T, d *Dir, data []byte) string {
	t.Helper()
	w, err := d.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", w.Size(), len(data))
	}
	name, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func readAll(t *testing.T, d *Dir, name string) []byte {
	t.Helper()
	f, err := d.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tmpEntries(t *testing.T, d *Dir) []os.DirEntry {
	t.Helper()
	e, err := os.ReadDir(filepath.Join(d.Path(), tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCommitOpenRemove(t *testing.T) {
	d := newDir(t)
	data := bytes.Repeat([]byte("hello blob\r\n"), 1000)
	name := commit(t, d, data)
	if !ValidName(name) {
		t.Fatalf("Commit returned invalid name %q", name)
	}
	if _, err := os.Stat(filepath.Join(d.Path(), name[:2], name)); err != nil {
		t.Fatalf("committed file not in its fan-out dir: %v", err)
	}
	if got := readAll(t, d, name); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want %d identical", len(got), len(data))
	}
	if fi, err := d.Stat(name); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("Stat = %v, %v", fi, err)
	}
	if n := len(tmpEntries(t, d)); n != 0 {
		t.Fatalf("%d temp files left after commit", n)
	}
	if err := d.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open after Remove: %v, want not-exist", err)
	}
	if err := d.Remove(name); err != nil {
		t.Fatalf("second Remove: %v (want nil: removal is idempotent)", err)
	}
}

func TestEmptyBlob(t *testing.T) {
	d := newDir(t)
	name := commit(t, d, nil)
	if got := readAll(t, d, name); len(got) != 0 {
		t.Fatalf("empty blob read back %d bytes", len(got))
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	d := newDir(t)
	w, err := d.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("discard me")); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort() // twice is harmless
	if n := len(tmpEntries(t, d)); n != 0 {
		t.Fatalf("%d temp files left after Abort", n)
	}
	count := 0
	if err := d.Names(context.Background(), func(string, time.Time) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count != 0 {
		t.Fatalf("Names found %d blobs after Abort", count)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	if _, err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

func TestAbortAfterCommitKeepsBlob(t *testing.T) {
	d := newDir(t)
	w, err := d.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("keep"))
	name, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if got := readAll(t, d, name); string(got) != "keep" {
		t.Fatalf("got %q after Abort-after-Commit", got)
	}
}

func TestBadNames(t *testing.T) {
	d := newDir(t)
	// A file outside the blob dir that a traversal would reach.
	secret := filepath.Join(filepath.Dir(d.Path()), "secret")
	os.WriteFile(secret, []byte("x"), 0o600)
	for _, name := range []string{
		"", "..", "../secret", "tmp", "0123456789abcdef0123456789abcdeg",
		"0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde",
		"0123456789abcdef0123456789abcdef0", "01/23456789abcdef0123456789abcdef",
		"/etc/passwd", "..\\..\\x",
	} {
		if ValidName(name) {
			t.Errorf("ValidName(%q) = true", name)
		}
		if _, err := d.Open(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Open(%q) = %v, want ErrBadName", name, err)
		}
		if err := d.Remove(name); !errors.Is(err, ErrBadName) {
			t.Errorf("Remove(%q) = %v, want ErrBadName", name, err)
		}
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("file outside the dir was touched: %v", err)
	}
}

func TestNames(t *testing.T) {
	d := newDir(t)
	want := map[string]bool{}
	for i := 0; i < 40; i++ {
		want[commit(t, d, []byte{byte(i)})] = true
	}
	// Stray files are ignored.
	os.WriteFile(filepath.Join(d.Path(), "README"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(d.Path(), "zz"), 0o750)
	os.WriteFile(filepath.Join(d.Path(), "zz", "junk"), []byte("x"), 0o600)
	w, _ := d.Create() // an uncommitted temp file is not a name
	defer w.Abort()

	got := map[string]bool{}
	err := d.Names(context.Background(), func(name string, mod time.Time) error {
		if mod.IsZero() || time.Since(mod) > time.Hour {
			t.Errorf("%s: implausible mod time %v", name, mod)
		}
		got[name] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Names returned %d names, want %d", len(got), len(want))
	}
	for n := range want {
		if !got[n] {
			t.Errorf("Names missed %s", n)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = d.Names(context.Background(), func(string, time.Time) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Names with failing fn: err=%v calls=%d", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Names(ctx, func(string, time.Time) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Names with cancelled ctx: %v", err)
	}
}

func TestCleanTemp(t *testing.T) {
	d := newDir(t)
	old, _ := d.Create()
	old.Write([]byte("old"))
	fresh, _ := d.Create()
	defer fresh.Abort()
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old.f.Name(), past, past); err != nil {
		t.Fatal(err)
	}
	n, err := d.CleanTemp(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("CleanTemp removed %d, want 1", n)
	}
	if _, err := os.Stat(old.f.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old temp file still there: %v", err)
	}
	if _, err := os.Stat(fresh.f.Name()); err != nil {
		t.Fatalf("fresh temp file removed: %v", err)
	}
	// The fresh writer still commits fine.
	fresh.Write([]byte("fresh"))
	name, err := fresh.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d, name); string(got) != "fresh" {
		t.Fatalf("got %q", got)
	}
}

func TestConcurrentCommits(t *testing.T) {
	d := newDir(t)
	var wg sync.WaitGroup
	names := make([]string, 64)
	errs := make([]error, 64)
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := d.Create()
			if err != nil {
				errs[i] = err
				return
			}
			w.Write(bytes.Repeat([]byte{byte(i)}, 100+i))
			names[i], errs[i] = w.Commit()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, n := range names {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[n] {
			t.Fatalf("duplicate name %s", n)
		}
		seen[n] = true
		if got := readAll(t, d, n); !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 100+i)) {
			t.Fatalf("blob %d corrupted", i)
		}
	}
}

func TestReopenKeepsBlobs(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	name := commit(t, d1, []byte("persist"))
	d2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d2, name); string(got) != "persist" {
		t.Fatalf("got %q", got)
	}
}

// TestCrash runs a child process that commits one blob, starts a second
// and is then killed with SIGKILL. The committed blob must be readable by
// a fresh Dir; the half-written one must not appear as a name.
func TestCrash(t *testing.T) {
	if dir := os.Getenv("PETREL_BLOB_CRASH_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$")
	cmd.Env = append(os.Environ(), "PETREL_BLOB_CRASH_DIR="+dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	name := strings.TrimSpace(string(out))
	if !ValidName(name) {
		t.Fatalf("child printed %q", out)
	}
	d, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d, name); string(got) != "survives the crash" {
		t.Fatalf("after crash got %q", got)
	}
	var names []string
	d.Names(context.Background(), func(n string, _ time.Time) error { names = append(names, n); return nil })
	if len(names) != 1 || names[0] != name {
		t.Fatalf("Names after crash = %v, want only %s", names, name)
	}
	if n := len(tmpEntries(t, d)); n != 1 {
		t.Fatalf("%d temp files after crash, want the 1 half-written", n)
	}
	if n, err := d.CleanTemp(context.Background(), -time.Second); err != nil || n != 1 {
		t.Fatalf("CleanTemp = %d, %v; want 1", n, err)
	}
}

func crashChild(dir string) {
	d, err := New(dir)
	if err != nil {
		os.Exit(2)
	}
	w, err := d.Create()
	if err != nil {
		os.Exit(2)
	}
	w.Write([]byte("survives the crash"))
	name, err := w.Commit()
	if err != nil {
		os.Exit(2)
	}
	half, err := d.Create()
	if err != nil {
		os.Exit(2)
	}
	half.Write([]byte("never committed"))
	os.Stdout.WriteString(name + "\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// FuzzOpen checks that no name reaches a file outside the blob dir.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{"", "../x", "0123456789abcdef0123456789abcdef", "aa/../../etc", "%2e%2e"} {
		f.Add(s)
	}
	root := f.TempDir()
	d, err := New(filepath.Join(root, "blobs"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := d.path(name)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("path(%q) = %v", name, err)
			}
			return
		}
		rel, err := filepath.Rel(d.Path(), p)
		if err != nil || strings.HasPrefix(rel, "..") || filepath.Dir(rel) != name[:2] {
			t.Fatalf("name %q maps outside its fan-out dir: %s", name, p)
		}
	})
}
