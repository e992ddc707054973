package inbound

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// countingScripts is a SieveScripts that counts its reads.
type countingScripts struct {
	mu      sync.Mutex
	scripts map[string]string
	reads   int
}

func (c *countingScripts) SieveActiveScript(_ context.Context, email string) (string, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	s, ok := c.scripts[email]
	if !ok {
		return "", nil, store.ErrNotFound
	}
	return "main", []byte(s), nil
}

// TestSieveCache: within the TTL a user costs no store read, with or
// without a script; after it, an unchanged script is not compiled again,
// and a changed one is.
func TestSieveCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	src := &countingScripts{scripts: map[string]string{"a@x.test": "keep;"}}
	d := NewDeliverer(DelivererOptions{Store: newMemStore(), Now: func() time.Time { return now },
		Sieve: &SieveOptions{Scripts: src, CacheTTL: time.Second}})
	h := d.sieve
	ctx := context.Background()

	first, err := h.script(ctx, "a@x.test")
	if err != nil || first.script == nil {
		t.Fatalf("script: %+v, %v", first, err)
	}
	none, err := h.script(ctx, "b@x.test")
	if err != nil || none.name != "" {
		t.Fatalf("user without script: %+v, %v", none, err)
	}
	for range 100 {
		h.script(ctx, "a@x.test")
		h.script(ctx, "b@x.test")
	}
	if src.reads != 2 {
		t.Fatalf("%d store reads within the TTL, want 2", src.reads)
	}
	now = now.Add(2 * time.Second)
	again, _ := h.script(ctx, "a@x.test")
	if src.reads != 3 || again.script != first.script {
		t.Fatalf("after the TTL: %d reads, same compiled script %v; want 3, true", src.reads, again.script == first.script)
	}
	src.scripts["a@x.test"] = "discard;"
	now = now.Add(2 * time.Second)
	changed, _ := h.script(ctx, "a@x.test")
	if changed.script == first.script {
		t.Fatal("a changed script was not compiled again")
	}
}
