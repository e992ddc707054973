package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testCerts checks the certificate key-value tree and its leases.
func testCerts(t *testing.T, open Open) {
	s, ok := unwrap(get(t, open)).(store.CertStorage)
	if !ok {
		t.Skip("backend has no certificate storage")
	}
	ctx := context.Background()
	if _, err := s.GetCert(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCert(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.ListCerts(ctx, "", false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ListCerts(empty) = %v, want ErrNotFound", err)
	}
	put := map[string]string{
		"certificates/ca/a.example/a.example.crt": "crt-a",
		"certificates/ca/a.example/a.example.key": "key-a",
		"certificates/ca/b_example/b_example.crt": "crt-b", // _ must not act as a wildcard
		"certificatesX/other":                     "x",     // a sibling whose name starts alike
		"last_clean.json":                         "{}",
	}
	for k, v := range put {
		if err := s.PutCert(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCert(ctx, "last_clean.json", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err) // replace
	}
	if v, err := s.GetCert(ctx, "last_clean.json"); err != nil || string(v) != `{"x":1}` {
		t.Fatalf("GetCert after replace = %q, %v", v, err)
	}

	top, err := s.ListCerts(ctx, "", false)
	if want := []string{"certificates", "certificatesX", "last_clean.json"}; err != nil || !slices.Equal(top, want) {
		t.Fatalf("ListCerts(top) = %q, %v; want %q", top, err, want)
	}
	dirs, err := s.ListCerts(ctx, "certificates/ca", false)
	if want := []string{"certificates/ca/a.example", "certificates/ca/b_example"}; err != nil || !slices.Equal(dirs, want) {
		t.Fatalf("ListCerts(dir) = %q, %v; want %q", dirs, err, want)
	}
	all, err := s.ListCerts(ctx, "certificates", true)
	if err != nil || len(all) != 3 {
		t.Fatalf("ListCerts(recursive) = %q, %v; want 3 keys", all, err)
	}

	e, err := s.StatCert(ctx, "certificates/ca/a.example/a.example.key")
	if err != nil || !e.Terminal || e.Size != 5 || e.Modified.IsZero() {
		t.Fatalf("StatCert(key) = %+v, %v", e, err)
	}
	if e, err := s.StatCert(ctx, "certificates/ca"); err != nil || e.Terminal {
		t.Fatalf("StatCert(dir) = %+v, %v; want a directory", e, err)
	}
	if _, err := s.StatCert(ctx, "certificates/c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("StatCert(partial name) = %v, want ErrNotFound", err)
	}

	if err := s.DeleteCert(ctx, "certificates/ca/a.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCert(ctx, "certificates/ca/a.example/a.example.crt"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key under a deleted directory: %v, want ErrNotFound", err)
	}
	if _, err := s.GetCert(ctx, "certificates/ca/b_example/b_example.crt"); err != nil {
		t.Fatalf("sibling lost by delete: %v", err)
	}
	if err := s.DeleteCert(ctx, "certificates/ca/a.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}

	// Leases: exclusive, re-entrant for the owner, taken over once expired.
	later := time.Now().Add(time.Minute)
	if ok, err := s.TryCertLock(ctx, "issue_a", "node1", later); err != nil || !ok {
		t.Fatalf("first lock = %v, %v", ok, err)
	}
	if ok, err := s.TryCertLock(ctx, "issue_a", "node2", later); err != nil || ok {
		t.Fatalf("lock held by another = %v, %v; want false", ok, err)
	}
	if ok, err := s.TryCertLock(ctx, "issue_a", "node1", later.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("owner extends = %v, %v", ok, err)
	}
	if err := s.UnlockCert(ctx, "issue_a", "node2"); err != nil {
		t.Fatal(err) // not node2's: a no-op
	}
	if ok, _ := s.TryCertLock(ctx, "issue_a", "node2", later); ok {
		t.Fatal("a stranger's unlock released the lease")
	}
	if err := s.UnlockCert(ctx, "issue_a", "node1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryCertLock(ctx, "issue_a", "node2", time.Now().Add(-time.Second)); err != nil || !ok {
		t.Fatalf("lock after unlock = %v, %v", ok, err)
	}
	if ok, err := s.TryCertLock(ctx, "issue_a", "node3", later); err != nil || !ok {
		t.Fatalf("expired lease not taken over: %v, %v", ok, err)
	}

	// Racing nodes: exactly one wins a free lease.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.TryCertLock(ctx, "race", string(rune('a'+i)), later)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d nodes won one lease, want 1", wins)
	}
}
