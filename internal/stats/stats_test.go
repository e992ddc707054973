package stats

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

func TestRecorderWithSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, sqlstore.Options{Flavor: "sqlite", Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := New(st, nil, clock)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.Count("delivered")
			}
		}()
	}
	wg.Wait()
	r.Add("rejected", 3)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	r.Count("delivered")
	r.Count("delivered")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second node's recorder adds to the same rows.
	r2 := New(st, nil, clock)
	r2.Count("delivered")
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pts, err := st.Stats(ctx, "delivered", time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].N != 800 || pts[1].N != 3 || !pts[0].Hour.Equal(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("delivered points %+v", pts)
	}
	if pts, _ := st.Stats(ctx, "rejected", time.Time{}); len(pts) != 1 || pts[0].N != 3 {
		t.Fatalf("rejected points %+v", pts)
	}
	if err := st.PruneStats(ctx, time.Date(2026, 12, 4, 11, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if pts, _ := st.Stats(ctx, "delivered", time.Time{}); len(pts) != 1 || pts[0].N != 3 {
		t.Fatalf("after prune %+v", pts)
	}
	var nilRec *Recorder
	nilRec.Count("x") // a nil recorder counts nothing and does not panic
	if err := nilRec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}
