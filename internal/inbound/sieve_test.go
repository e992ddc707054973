package inbound

import (
	"context"
	"strings"
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

// TestSieveCopiesShareTheCommit: a user whose script edits the header (or
// fails) gets a copy of their own, stored in the same group commit as the
// other recipients'; when another recipient is over quota, that one is
// left out and the copies still land (RFC 3463 5.2.2 for the full one).
func TestSieveCopiesShareTheCommit(t *testing.T) {
	st := newMemStore()
	st.quota["full@example.com"] = 10
	src := &countingScripts{scripts: map[string]string{
		"edit@example.com":   `require "editheader"; addheader "X-Edited" "yes";`,
		"broken@example.com": `redirect "nobody";`,
	}}
	h := newHarness(t, st, DelivererOptions{Sieve: &SieveOptions{Scripts: src}})
	body := []byte("Subject: hi\r\n\r\nbody\r\n")
	e := env("s1", toBox("edit@example.com", "broken@example.com", "plain@example.com", "full@example.com"))
	if err := h.deliver(context.Background(), e, body); err != nil {
		t.Fatal(err)
	}
	get := func(user string) string {
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.msgs[user]) != 1 {
			t.Fatalf("%s has %d messages", user, len(st.msgs[user]))
		}
		return string(st.msgs[user][0].Body)
	}
	// Local delivery's Return-Path stays on top of a script's fields.
	rp := ReturnPathField(e.Sender)
	if got := get("edit@example.com"); got != rp+"X-Edited: yes\r\nSubject: hi\r\n\r\nbody\r\n" {
		t.Errorf("edited copy: %q", got)
	}
	if got := get("broken@example.com"); !strings.HasPrefix(got, rp+"X-Sieve-Error: main: redirect: bad address") || !strings.HasSuffix(got, "Subject: hi\r\n\r\nbody\r\n") {
		t.Errorf("failed script's copy: %q", got)
	}
	if got := get("plain@example.com"); got != rp+string(body) {
		t.Errorf("plain copy: %q", got)
	}
	st.mu.Lock()
	full := len(st.msgs["full@example.com"])
	st.mu.Unlock()
	if full != 0 {
		t.Errorf("over-quota user got %d messages", full)
	}
	if recs := h.logs.find("delivered", "s1"); len(recs) != 1 {
		t.Errorf("want one 'delivered' line, got %d", len(recs))
	}
}

// TestForgetSieve: a script changed elsewhere (the store announced it)
// is read again at once, within the TTL; "" forgets every user.
func TestForgetSieve(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	src := &countingScripts{scripts: map[string]string{"a@x.test": "keep;", "b@x.test": "keep;"}}
	d := NewDeliverer(DelivererOptions{Store: newMemStore(), Now: func() time.Time { return now },
		Sieve: &SieveOptions{Scripts: src, CacheTTL: time.Hour}})
	ctx := context.Background()
	first, _ := d.sieve.script(ctx, "a@x.test")
	d.sieve.script(ctx, "b@x.test")
	src.mu.Lock()
	src.scripts["a@x.test"] = "discard;"
	src.mu.Unlock()
	if same, _ := d.sieve.script(ctx, "a@x.test"); same.script != first.script {
		t.Fatal("the cache was not used within the TTL")
	}
	d.ForgetSieve("a@x.test")
	changed, _ := d.sieve.script(ctx, "a@x.test")
	if changed.script == first.script {
		t.Fatal("after ForgetSieve the old script still runs")
	}
	reads := src.reads
	d.sieve.script(ctx, "b@x.test")
	if src.reads != reads {
		t.Fatal("forgetting a@x.test dropped b@x.test too")
	}
	d.ForgetSieve("")
	d.sieve.script(ctx, "b@x.test")
	if src.reads != reads+1 {
		t.Fatal(`ForgetSieve("") kept b@x.test`)
	}
}
