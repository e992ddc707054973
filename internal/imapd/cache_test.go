package imapd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// countingStore counts the body reads that reach the store.
type countingStore struct {
	Store
	opens atomic.Int64
}

func (c *countingStore) OpenBody(ctx context.Context, id int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	return c.Store.OpenBody(ctx, id)
}

func startCountingServer(t *testing.T) (*testServer, *countingStore) {
	var cs *countingStore
	ts := startServer(t, func(ts *testServer, o *Options) {
		cs = &countingStore{Store: ts.st}
		o.Store = cs
	})
	return ts, cs
}

// Header sections and header SEARCH are served from the header cache
// after the first read; other sessions' APPEND, STORE and EXPUNGE show
// up, since the cache is keyed by immutable body and the view is not.
func TestHeaderCacheFetchAndSearch(t *testing.T) {
	ts, cs := startCountingServer(t)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	const hdr = "FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Subject)])"
	first := c.ok(hdr)
	if len(first) != 3 || !strings.Contains(first[1], "Subject: two") {
		t.Fatalf("first fetch: %q", first)
	}
	opens := cs.opens.Load()
	if opens != 3 {
		t.Fatalf("first fetch read %d bodies, want 3", opens)
	}
	if again := c.ok(hdr); strings.Join(again, "\n") != strings.Join(first, "\n") {
		t.Fatalf("cached fetch differs:\n%q\n%q", again, first)
	}
	full := c.ok("FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS.NOT (Subject)] ENVELOPE)")
	if len(full) != 1 || !strings.Contains(full[0], "Subject: two\r\n") || !strings.Contains(full[0], `"two"`) {
		t.Fatalf("HEADER from cache: %q", full)
	}
	mustHave(t, c.ok("SEARCH SUBJECT three"), "* SEARCH 3")
	mustHave(t, c.ok("SEARCH HEADER Message-ID one@remote"), "* SEARCH 1")
	if got := cs.opens.Load(); got != opens {
		t.Fatalf("cached header fetch and search read %d bodies", got-opens)
	}
	// The text is not in the header cache.
	text := c.ok("FETCH 1 (BODY.PEEK[TEXT])")
	if len(text) != 1 || !strings.Contains(text[0], "Hello one") {
		t.Fatalf("TEXT: %q", text)
	}
	if got := cs.opens.Load(); got != opens+1 {
		t.Fatalf("TEXT read %d bodies, want 1", got-opens)
	}

	// Another session appends, flags and expunges.
	o := ts.login(alice, alicePass)
	o.ok("SELECT INBOX")
	msg := testMessage("four")
	o.send(fmt.Sprintf("x1 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := o.collect("x1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatal(tagged)
	}
	o.ok("STORE 1 +FLAGS (\\Deleted)")
	o.ok("EXPUNGE")
	u := c.ok("NOOP")
	mustHave(t, u, "* 1 EXPUNGE")
	mustHave(t, u, "* 3 EXISTS")
	after := c.ok(hdr)
	if len(after) != 3 || !strings.Contains(after[0], "Subject: two") || !strings.Contains(after[2], "Subject: four") {
		t.Fatalf("fetch after changes: %q", after)
	}
	mustHave(t, c.ok("SEARCH SUBJECT four"), "* SEARCH 3")
	if u := c.ok("SEARCH SUBJECT one"); len(u) != 1 || u[0] != "* SEARCH" {
		t.Fatalf("SEARCH SUBJECT one after its expunge: %q", u)
	}
}

func TestHeaderCacheBounded(t *testing.T) {
	const max = 10 * (100 + headerEntryOverhead)
	c := newHeaderCache(max)
	put := func(id int64, n int) {
		h := []byte(strings.Repeat("X", n-5) + ":\r\n\r\n")
		st, err := imapmsg.ParseHeader(strings.NewReader(string(h)+"body"), int64(n+4))
		if err != nil {
			t.Fatal(err)
		}
		c.put(id, h, st)
	}
	for id := int64(1); id <= 50; id++ {
		put(id, 100)
		if _, b := c.size(); b > max {
			t.Fatalf("after %d entries: %d bytes charged, bound %d", id, b, max)
		}
	}
	if n, _ := c.size(); n != 10 {
		t.Fatalf("%d entries, want 10", n)
	}
	if h, _ := c.get(40); h != nil {
		t.Error("entry 40 should have aged out")
	}
	if h, st := c.get(41); h == nil || st == nil || !st.Shallow || int64(len(h)) != st.Root.BodyOffset {
		t.Errorf("entry 41: %q %v", h, st)
	}
	put(51, 100) // evicts 42, the least recently used, not 41
	if h, _ := c.get(41); h == nil {
		t.Error("recently used entry 41 was evicted")
	}
	if h, _ := c.get(42); h != nil {
		t.Error("entry 42 should have been evicted")
	}
	put(99, maxCachedHeader+10)
	if h, _ := c.get(99); h != nil {
		t.Error("a header over maxCachedHeader was cached")
	}
}
