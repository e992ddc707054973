// Package blob stores message bodies as files: each is written to a temp
// file, fsynced, renamed into a two-hex-digit fan-out directory and the
// directory fsynced, so a committed name survives a crash (the chasquid
// safeio pattern). Names are random 32-hex-digit strings; the database
// records which names are in use, and a garbage sweep (Names, CleanTemp)
// removes what nothing references.
package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// ErrBadName is returned for a name that Create could not have produced.
var ErrBadName = errors.New("blob: invalid name")

const (
	nameLen = 32 // hex digits: 128 random bits
	tmpDir  = "tmp"
)

// Dir is a directory of committed blobs. It is safe for concurrent use.
type Dir struct {
	root string

	mu      sync.Mutex
	durable map[string]bool // fan-out dirs known to be created and fsynced
}

// New opens (creating if needed) the blob directory dir and its tmp/.
func New(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("blob: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o750); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", abs, err)
	}
	// The tmp dir itself must survive a crash for nothing else to matter,
	// but a lost tmp/ only loses uncommitted files; sync the root anyway so
	// fan-out dirs created later hang off a durable entry.
	if err := syncDir(abs); err != nil {
		return nil, err
	}
	return &Dir{root: abs, durable: make(map[string]bool)}, nil
}

// Path returns the directory's absolute path.
func (d *Dir) Path() string { return d.root }

// ValidName reports whether name has the form Commit produces.
func ValidName(name string) bool {
	return len(name) == nameLen && isHex(name)
}

// path maps a validated name to its file.
func (d *Dir) path(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return filepath.Join(d.root, name[:2], name), nil
}

// Writer is a blob being written. Write to it, then Commit or Abort.
type Writer struct {
	d    *Dir
	f    *os.File
	size int64
	done bool
}

// Create starts a new blob as a temp file under dir/tmp.
func (d *Dir) Create() (*Writer, error) {
	f, err := os.CreateTemp(filepath.Join(d.root, tmpDir), "w-*")
	if err != nil {
		return nil, fmt.Errorf("blob: create temp: %w", err)
	}
	return &Writer{d: d, f: f}, nil
}

// Write appends p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("blob: write after commit or abort")
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.size }

// Open returns a new reader of the bytes written so far, from the start
// (the inbound checks read a spooled message back before it is
// committed). The reader has its own file descriptor; close it.
func (w *Writer) Open() (io.ReadCloser, error) {
	if w.done {
		return nil, errors.New("blob: open after commit or abort")
	}
	f, err := os.Open(w.f.Name())
	if err != nil {
		return nil, fmt.Errorf("blob: open temp: %w", err)
	}
	return f, nil
}

// Commit makes the blob durable and returns its name: fsync the file,
// rename it into its fan-out directory, fsync that directory. On error
// the temp file is removed.
func (w *Writer) Commit() (string, error) {
	if w.done {
		return "", errors.New("blob: commit after commit or abort")
	}
	w.done = true
	tmp := w.f.Name()
	fail := func(err error) (string, error) {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("blob: commit: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		_ = w.f.Close()
		return fail(err)
	}
	if err := w.f.Close(); err != nil {
		return fail(err)
	}
	name, err := randomName()
	if err != nil {
		return fail(err)
	}
	fan := filepath.Join(w.d.root, name[:2])
	if err := w.d.ensureFanOut(fan); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(fan, name)); err != nil {
		return fail(err)
	}
	if err := syncDir(fan); err != nil {
		// The rename happened; without the directory fsync we cannot
		// promise durability, so undo it and report failure.
		_ = os.Remove(filepath.Join(fan, name))
		return "", fmt.Errorf("blob: commit: %w", err)
	}
	return name, nil
}

// Abort discards the blob. It is safe to call after Commit (then it does
// nothing), so `defer w.Abort()` is the usual pattern.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// ensureFanOut creates dir (a direct child of root) and makes its entry
// durable before any file is renamed into it.
func (d *Dir) ensureFanOut(dir string) error {
	d.mu.Lock()
	ok := d.durable[dir]
	d.mu.Unlock()
	if ok {
		return nil
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Sync the root even when Mkdir found the dir: a concurrent creator
	// may not have synced it yet.
	if err := syncDir(d.root); err != nil {
		return err
	}
	d.mu.Lock()
	d.durable[dir] = true
	d.mu.Unlock()
	return nil
}

// Open opens a committed blob for reading.
func (d *Dir) Open(name string) (*os.File, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	return f, nil
}

// Stat returns the file info of a committed blob.
func (d *Dir) Stat(name string) (fs.FileInfo, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("blob: stat: %w", err)
	}
	return fi, nil
}

// Remove deletes a committed blob. Removing a blob that does not exist is
// not an error, so removal can be retried after a crash.
func (d *Dir) Remove(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: remove: %w", err)
	}
	return nil
}

// Names calls fn for every committed blob, with its modification time, in
// name order within each fan-out directory. It stops at the first error
// from fn or when ctx is done. Files that are not valid names are skipped.
func (d *Dir) Names(ctx context.Context, fn func(name string, modTime time.Time) error) error {
	fans, err := os.ReadDir(d.root)
	if err != nil {
		return fmt.Errorf("blob: list: %w", err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || len(fan.Name()) != 2 || !isHex(fan.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(d.root, fan.Name()))
		if err != nil {
			return fmt.Errorf("blob: list: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := e.Name()
			if !e.Type().IsRegular() || !ValidName(name) || name[:2] != fan.Name() {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return fmt.Errorf("blob: list: %w", err)
			}
			if err := fn(name, info.ModTime()); err != nil {
				return err
			}
		}
	}
	return nil
}

// CleanTemp removes temp files (abandoned writers, crashes mid-write)
// last modified more than maxAge ago, and returns how many it removed.
func (d *Dir) CleanTemp(ctx context.Context, maxAge time.Duration) (int, error) {
	dir := filepath.Join(d.root, tmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("blob: clean temp: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	cutoff := time.Now().Add(-maxAge)
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("blob: clean temp: %w", err)
		}
	}
	return n, nil
}

func randomName() (string, error) {
	var b [nameLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// isHex reports whether s is lower-case hex digits only.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// syncDir fsyncs a directory so that entries created or renamed in it
// survive a crash.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: sync dir: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob: sync dir %s: %w", dir, err)
	}
	return nil
}
