package filter

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

type countingTotals struct {
	calls  int
	asked  []string
	counts map[string]store.JunkCounts
}

func (c *countingTotals) JunkTotals(_ context.Context, users []string) (map[string]store.JunkCounts, error) {
	c.calls++
	c.asked = append(c.asked, users...)
	out := map[string]store.JunkCounts{}
	for _, u := range users {
		if jc, ok := c.counts[u]; ok {
			out[u] = jc
		}
	}
	return out, nil
}

// The totals are read once per TTL per user, untrained users included;
// Forget and the TTL make new training visible.
func TestTotalsCache(t *testing.T) {
	src := &countingTotals{counts: map[string]store.JunkCounts{"a": {Spam: 2, Ham: 1}}}
	now := time.Unix(1000, 0)
	c := NewTotalsCache(src, func() time.Time { return now })
	ctx := context.Background()
	get := func() map[string]store.JunkCounts {
		t.Helper()
		got, err := c.JunkTotals(ctx, []string{"a", "b"})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := map[string]store.JunkCounts{"a": {Spam: 2, Ham: 1}}
	if got := get(); !maps.Equal(got, want) || src.calls != 1 {
		t.Fatalf("first: %v after %d calls", got, src.calls)
	}
	if got := get(); !maps.Equal(got, want) || src.calls != 1 {
		t.Fatalf("cached: %v after %d calls, want no new query", got, src.calls)
	}
	src.counts["b"] = store.JunkCounts{Spam: 1, Ham: 1}
	c.Forget("b")
	want["b"] = store.JunkCounts{Spam: 1, Ham: 1}
	if got := get(); !maps.Equal(got, want) || src.calls != 2 || src.asked[len(src.asked)-1] != "b" || len(src.asked) != 3 {
		t.Fatalf("after Forget: %v, asked %v", got, src.asked)
	}
	src.counts["a"] = store.JunkCounts{Spam: 5, Ham: 1}
	now = now.Add(totalsTTL)
	want["a"] = store.JunkCounts{Spam: 5, Ham: 1}
	if got := get(); !maps.Equal(got, want) || src.calls != 3 {
		t.Fatalf("after the TTL: %v after %d calls", got, src.calls)
	}
}
