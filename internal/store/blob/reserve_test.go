package blob

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type fakeDisk struct {
	mu    sync.Mutex
	free  int64
	err   error
	reads int
}

func (f *fakeDisk) statfs(string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.free, f.err
}

func (f *fakeDisk) set(free int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free, f.err = free, err
}

// TestReserve: below the floor Low is true; crossing and recovery are each
// logged once, with hysteresis; near the floor every check reads the
// filesystem, far from it one reading serves ReserveRecheck; a statfs
// failure is logged once and fails open.
func TestReserve(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	disk := &fakeDisk{free: 100 << 30}
	now := time.Unix(1000, 0)
	r := NewReserve(ReserveOptions{
		Dir: "/data", Min: 64 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		StatFS: disk.statfs, Now: func() time.Time { return now },
	})
	// Far from the floor: cached for ReserveRecheck.
	disk.set(0, nil)
	for i := 0; i < 3; i++ {
		if r.Low() {
			t.Fatal("a cached reading far from the floor was not used")
		}
	}
	if disk.reads != 1 {
		t.Fatalf("%d statfs calls far from the floor, want 1 (at NewReserve)", disk.reads)
	}
	step := func(free int64, want bool) {
		t.Helper()
		disk.set(free, nil)
		now = now.Add(ReserveRecheck)
		if got := r.Low(); got != want {
			t.Fatalf("free %d: Low() = %v, want %v", free, got, want)
		}
	}
	step(80<<20, false)
	// Near the floor every call reads: no burst runs through the reserve.
	disk.set(63<<20, nil)
	if !r.Low() {
		t.Fatal("near the floor, a cached reading was used")
	}
	step(10<<20, true)
	step(0, true)
	step(65<<20, true) // above min but inside the hysteresis band
	step(63<<20, true)
	step(73<<20, false) // min + min/8 = 72 MiB
	step(60<<20, true)
	out := logs.String()
	if n := strings.Count(out, "free disk space below DISK_RESERVE"); n != 2 {
		t.Errorf("low state logged %d times, want 2:\n%s", n, out)
	}
	if n := strings.Count(out, "free disk space back above DISK_RESERVE"); n != 1 {
		t.Errorf("recovery logged %d times, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=ERROR") {
		t.Errorf("the low state is not an ERROR:\n%s", out)
	}

	// A failing statfs fails open and is logged once.
	disk.set(0, errors.New("EIO"))
	for i := 0; i < 3; i++ {
		now = now.Add(ReserveRecheck)
		if r.Low() {
			t.Error("Low() with an unreadable filesystem")
		}
	}
	if n := strings.Count(logs.String(), "cannot read the free disk space"); n != 1 {
		t.Errorf("statfs failure logged %d times, want 1", n)
	}
}

func TestReserveOffAndNil(t *testing.T) {
	t.Parallel()
	var nilR *Reserve
	if nilR.Low() || nilR.Min() != 0 {
		t.Error("nil reserve is low")
	}
	disk := &fakeDisk{free: 0}
	r := NewReserve(ReserveOptions{Dir: "/data", Min: 0, StatFS: disk.statfs})
	if r.Low() || disk.reads != 0 {
		t.Errorf("reserve 0: Low %v after %d reads", r.Low(), disk.reads)
	}
}

// TestReserveRealFilesystem reads the real free space of a directory.
func TestReserveRealFilesystem(t *testing.T) {
	t.Parallel()
	free, err := freeSpace(t.TempDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		t.Skipf("no statfs here: %v", err)
	}
	if free <= 0 {
		t.Fatalf("free space %d", free)
	}
	if r := NewReserve(ReserveOptions{Dir: t.TempDir(), Min: 1}); r.Low() {
		t.Error("1 byte reserve is low")
	}
	if r := NewReserve(ReserveOptions{Dir: t.TempDir(), Min: 1 << 62}); !r.Low() {
		t.Error("4 EiB reserve is not low")
	}
}

// BenchmarkReserveLow is the per-message cost of the DISK_RESERVE check:
// far from the floor an atomic load (one statfs a second), near it one
// statfs per call.
func BenchmarkReserveLow(b *testing.B) {
	free, err := freeSpace(b.TempDir())
	if err != nil {
		b.Skip(err)
	}
	for _, bc := range []struct {
		name string
		min  int64
	}{{"far", 1 << 20}, {"near", free / 2}} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReserve(ReserveOptions{Dir: b.TempDir(), Min: bc.min})
			for b.Loop() {
				if r.Low() {
					b.Fatal("low")
				}
			}
		})
	}
}

// TestReserveWatch: the watcher notices the crossing without any caller.
func TestReserveWatch(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	disk := &fakeDisk{free: 100 << 20}
	r := NewReserve(ReserveOptions{Dir: "/data", Min: 64 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil)), StatFS: disk.statfs})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Watch(ctx); close(done) }()
	disk.set(1<<20, nil)
	deadline := time.Now().Add(10 * ReserveRecheck)
	for !strings.Contains(logs.String(), "free disk space below DISK_RESERVE") {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not log the crossing:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

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

// TestReserveBallast: with room the ballast file is made (really
// allocated); when the disk is full all the same it is removed, once, and
// logged; with room again it comes back.
func TestReserveBallast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	disk := &fakeDisk{free: 1 << 30}
	now := time.Unix(1000, 0)
	r := NewReserve(ReserveOptions{
		Dir: dir, Min: 8 << 20, Ballast: 1 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		StatFS: disk.statfs, Now: func() time.Time { return now },
	})
	path := filepath.Join(dir, BallastName)
	held := func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() == 1<<20
	}
	if !held() {
		t.Fatal("no ballast file made at start")
	}
	if st, err := os.Stat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Blocks*512 < 1<<20 {
			t.Errorf("ballast is sparse: %d blocks", sys.Blocks)
		}
	}
	step := func(free int64) {
		disk.set(free, nil)
		now = now.Add(ReserveRecheck)
		r.Low()
	}
	step(4 << 20) // low, but the ballast stays while there is room to delete
	if !held() {
		t.Fatal("ballast given up while 4 MiB were free")
	}
	step(100 << 10) // full: give it up
	if held() {
		t.Fatal("ballast kept on a full disk")
	}
	step(0)
	if n := strings.Count(logs.String(), "ballast file removed"); n != 1 {
		t.Errorf("ballast removal logged %d times:\n%s", n, logs.String())
	}
	step(9 << 20) // above min, below min + min/8 + ballast: not yet
	if held() {
		t.Fatal("ballast made again too early")
	}
	step(100 << 20)
	if !held() {
		t.Fatal("ballast not made again with room")
	}
}
