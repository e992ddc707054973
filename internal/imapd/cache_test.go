package imapd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// countingStore counts the body reads and full listings that reach the
// store.
type countingStore struct {
	Store
	opens, lists atomic.Int64
}

func (c *countingStore) ListMessagesByID(ctx context.Context, id int64) ([]store.MessageInfo, error) {
	c.lists.Add(1)
	return c.Store.ListMessagesByID(ctx, id)
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
	const max = 10 * (2*100 + headerEntryOverhead)
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

// expectListing checks that a fresh SELECT shows exactly the store's
// messages, UIDs and flags.
func expectListing(t *testing.T, ts *testServer) {
	t.Helper()
	want := listOf(t, ts, alice, "INBOX")
	c := ts.login(alice, alicePass)
	defer c.conn.Close()
	// IMAP4rev2: the flags the store holds, without the session's \Recent.
	c.ok("ENABLE IMAP4rev2")
	mustHave(t, c.ok("SELECT INBOX"), fmt.Sprintf("* %d EXISTS", len(want)))
	got := c.ok("FETCH 1:* (UID FLAGS)")
	if len(got) != len(want) {
		t.Fatalf("FETCH: %d messages, the store has %d", len(got), len(want))
	}
	for i, m := range want {
		flags := "(" + strings.Join(m.Flags, " ") + ")"
		line := fmt.Sprintf("* %d FETCH (UID %d FLAGS %s)", i+1, m.UID, flags)
		if got[i] != line {
			t.Fatalf("message %d: %q, want %q", i+1, got[i], line)
		}
	}
}

// The shared listing follows changes made through this server, and
// changes made past it (another node on the same database).
func TestViewCacheRevalidates(t *testing.T) {
	ts, cs := startCountingServer(t)
	bodies := make([]string, minCachedMailbox+10)
	for i := range bodies {
		bodies[i] = testMessage(fmt.Sprintf("m%d", i))
	}
	deliver(t, ts.st, alice, "INBOX", bodies...)
	expectListing(t, ts)
	if n, msgs := ts.srv.views.size(); n != 1 || msgs != len(bodies) {
		t.Fatalf("cache: %d mailboxes, %d messages", n, msgs)
	}
	expectListing(t, ts) // from the cache
	if n := cs.lists.Load(); n != 1 {
		t.Fatalf("%d full listings, want 1", n)
	}

	// Through IMAP: flags, expunge, append.
	o := ts.login(alice, alicePass)
	o.ok("SELECT INBOX")
	o.ok("STORE 2:5 +FLAGS (\\Seen $Label1)")
	o.ok("STORE 7 +FLAGS (\\Deleted)")
	o.ok("EXPUNGE")
	msg := testMessage("appended")
	o.send(fmt.Sprintf("x1 APPEND INBOX (\\Flagged) {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := o.collect("x1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatal(tagged)
	}
	expectListing(t, ts)

	// Past this server: another node's store on the same database.
	other := reopenStore(t, ts)
	mb, err := other.GetMailbox(t.Context(), alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	l := listOf(t, ts, alice, "INBOX")
	if _, err := other.StoreFlags(t.Context(), &store.FlagUpdate{MailboxID: mb.ID, UIDs: []uint32{l[0].UID, l[10].UID}, Op: store.FlagsReplace, Flags: []string{"\\Answered"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExpungeByID(t.Context(), mb.ID, []uint32{l[3].UID, l[len(l)-1].UID}); err != nil {
		t.Fatal(err)
	}
	deliver(t, other, alice, "INBOX", testMessage("n1"), testMessage("n2"))
	expectListing(t, ts)
	if n, msgs := ts.srv.views.size(); n != 1 || msgs != len(listOf(t, ts, alice, "INBOX")) {
		t.Fatalf("cache after changes: %d mailboxes, %d messages", n, msgs)
	}
	if n := cs.lists.Load(); n != 1 { // only the first SELECT listed in full
		t.Fatalf("%d full listings: changes were not applied to the cached listing", n)
	}
}

func TestApplyChanges(t *testing.T) {
	mi := func(uid uint32, mod uint64) store.MessageInfo { return store.MessageInfo{UID: uid, ModSeq: mod} }
	old := []store.MessageInfo{mi(1, 1), mi(2, 2), mi(4, 3), mi(6, 4)}
	ch := &store.Changes{
		Changed:  []store.MessageInfo{mi(2, 9), mi(5, 7), mi(7, 8), mi(8, 10)},
		Expunged: []uint32{1, 3, 7},
	}
	c := newViewCache(1 << 20)
	expand := func(l []viewMsg) []store.MessageInfo {
		var out []store.MessageInfo
		for i := range l {
			out = append(out, mi(l[i].uid, l[i].modSeq))
		}
		return out
	}
	oldV := c.sets.compactAll(old)
	got := c.applyChanges(oldV, ch)
	want := []store.MessageInfo{mi(2, 9), mi(4, 3), mi(5, 7), mi(6, 4), mi(8, 10)}
	if fmt.Sprint(expand(got)) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", expand(got), want)
	}
	if fmt.Sprint(expand(oldV)) != fmt.Sprint([]store.MessageInfo{mi(1, 1), mi(2, 2), mi(4, 3), mi(6, 4)}) {
		t.Fatal("applyChanges modified its input")
	}
	if again := c.applyChanges(got, ch); fmt.Sprint(expand(again)) != fmt.Sprint(want) {
		t.Fatalf("applying the same changes twice: %v", expand(again))
	}
}

func TestViewCacheBounded(t *testing.T) {
	c := newViewCache(3 * minCachedMailbox * viewMsgBytes)
	for id := int64(1); id <= 5; id++ {
		c.put(&viewEntry{id: id, msgs: make([]viewMsg, minCachedMailbox)})
		if _, n := c.size(); n > 3*minCachedMailbox {
			t.Fatalf("%d messages cached, bound %d", n, 3*minCachedMailbox)
		}
	}
	if c.get(2) != nil || c.get(3) == nil || c.get(5) == nil {
		t.Error("not least recently used first out")
	}
	c.put(&viewEntry{id: 9, msgs: make([]viewMsg, minCachedMailbox-1)})
	if c.get(9) != nil {
		t.Error("a small mailbox was cached")
	}
	c.put(&viewEntry{id: 3, msgs: make([]viewMsg, 1)}) // shrank below the minimum
	if c.get(3) != nil {
		t.Error("a replaced entry stayed")
	}
	if n, msgs := c.size(); n != 2 || msgs != 2*minCachedMailbox {
		t.Errorf("size %d mailboxes %d messages", n, msgs)
	}
}

// batchingStore is a countingStore that also reads bodies in batches.
type batchingStore struct {
	*countingStore
	batch   *sqlstore.Store
	batches atomic.Int64
}

func (b *batchingStore) ReadBodies(ctx context.Context, ids []int64, fn func(int64, io.ReaderAt, int64) error) error {
	b.batches.Add(1)
	return b.batch.ReadBodies(ctx, ids, fn)
}

// Cold header fetches and header SEARCH read bodies a chunk at a time
// through the store's batch read, and give what per-message reads give.
func TestHeaderPrefetch(t *testing.T) {
	var bs *batchingStore
	ts := startServer(t, func(ts *testServer, o *Options) {
		bs = &batchingStore{countingStore: &countingStore{Store: ts.st}, batch: ts.st}
		o.Store = bs
	})
	const n = prefetchChunk + 44
	for _, box := range []string{"INBOX", "Archive"} {
		bodies := make([]string, n)
		for i := range bodies {
			bodies[i] = testMessage(fmt.Sprintf("%s%d", box, i))
		}
		deliver(t, ts.st, alice, box, bodies...)
	}
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject)] ENVELOPE)")
	if len(u) != n || !strings.Contains(u[0], "Subject: INBOX0\r\n") || !strings.Contains(u[0], `"INBOX0"`) ||
		!strings.Contains(u[n-1], "Subject: INBOX299\r\n") {
		t.Fatalf("cold FETCH: %d responses, first %q", len(u), u[0])
	}
	if got, opens := bs.batches.Load(), bs.opens.Load(); got != 2 || opens != 0 {
		t.Fatalf("cold FETCH: %d batch reads, %d single reads; want 2, 0", got, opens)
	}
	mustHave(t, c.ok("SEARCH SUBJECT INBOX299"), "* SEARCH 300")
	if got := bs.batches.Load(); got != 2 {
		t.Fatalf("warm SEARCH: %d more batch reads", got-2)
	}
	c.ok("SELECT Archive")
	mustHave(t, c.ok("SEARCH SUBJECT Archive299"), "* SEARCH 300")
	if got, opens := bs.batches.Load(), bs.opens.Load(); got != 4 || opens != 0 {
		t.Fatalf("cold SEARCH: %d batch reads, %d single reads; want 2 more, 0", got-2, opens)
	}
}

// cachedBodies counts which of ids the structure and header caches hold.
func cachedBodies(ts *testServer, ids []int64) (structs, headers int) {
	for _, id := range ids {
		if ts.srv.msgs.cache.get(id) != nil {
			structs++
		}
		if h, _ := ts.srv.msgs.headers.get(id); h != nil {
			headers++
		}
	}
	return structs, headers
}

// An expunged message's cached structure and header block go when a
// session reports the expunge, by either way a sync tells it (its own
// removal from the view, or a listing another session published), and
// when a session's CLOSE expunges it.
func TestExpungeForgetsCachedBodies(t *testing.T) {
	ts := startServer(t, nil)
	msgs := make([]string, minCachedMailbox+20)
	for i := range msgs {
		msgs[i] = testMessage(fmt.Sprintf("forget%d", i))
	}
	deliver(t, ts.st, alice, "INBOX", msgs...)
	l := listOf(t, ts, alice, "INBOX")
	bodyOf := func(from, to int) []int64 { // of the messages at 0-based from..to-1
		var ids []int64
		for _, m := range l[from:to] {
			ids = append(ids, m.BodyID)
		}
		return ids
	}
	a, b := ts.login(alice, alicePass), ts.login(alice, alicePass)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	a.ok("FETCH 1:* (BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject)])")
	all := bodyOf(0, len(l))
	if s, h := cachedBodies(ts, all); s != len(l) || h != len(l) {
		t.Fatalf("after FETCH 1:*: %d structures and %d header blocks cached, want %d", s, h, len(l))
	}

	// A expunges messages 1-3: its own report drops them.
	a.ok(`STORE 1:3 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	if s, h := cachedBodies(ts, bodyOf(0, 3)); s != 0 || h != 0 {
		t.Fatalf("after A's EXPUNGE: %d structures and %d header blocks of the expunged still cached", s, h)
	}
	if s, h := cachedBodies(ts, bodyOf(3, len(l))); s != len(l)-3 || h != len(l)-3 {
		t.Fatalf("after A's EXPUNGE: %d structures and %d header blocks of the others cached, want %d", s, h, len(l)-3)
	}

	// Messages 4-6 are expunged past IMAP (another node). A's UID STORE
	// of every message then reports them, which drops them, and
	// publishes A's listing (view_share.go). They are cached again before
	// B's sync (as another session's FETCH could have), and B, adopting
	// A's listing, drops them too.
	if err := ts.st.ExpungeMessages(t.Context(), alice, "INBOX", []uint32{l[3].UID, l[4].UID, l[5].UID}); err != nil {
		t.Fatal(err)
	}
	published := ts.srv.views.published.Load()
	mustHave(t, a.ok(`UID STORE 1:* +FLAGS.SILENT (\Flagged)`), "* 1 EXPUNGE")
	if got := ts.srv.views.published.Load(); got != published+1 {
		t.Fatalf("A's UID STORE did not publish its listing (%d, were %d)", got, published)
	}
	gone := bodyOf(3, 6)
	if s, h := cachedBodies(ts, gone); s != 0 || h != 0 {
		t.Fatalf("after A's UID STORE: %d structures and %d header blocks of the expunged still cached", s, h)
	}
	for _, id := range gone {
		st, err := imapmsg.ParseHeader(strings.NewReader("Subject: x\r\n\r\nbody"), 16)
		if err != nil {
			t.Fatal(err)
		}
		ts.srv.msgs.cache.put(id, st)
		ts.srv.msgs.headers.put(id, []byte("Subject: x\r\n\r\n"), st)
	}
	if s, h := cachedBodies(ts, gone); s != 3 || h != 3 {
		t.Fatalf("cached again: %d structures, %d header blocks", s, h)
	}
	adopted := ts.srv.views.adopted.Load()
	resp := b.ok("NOOP")
	if got := ts.srv.views.adopted.Load(); got != adopted+1 {
		t.Fatalf("B's NOOP did not adopt A's listing (%d adoptions, were %d)", got, adopted)
	}
	if n := strings.Count(strings.Join(resp, "\n"), " EXPUNGE"); n != 6 {
		t.Fatalf("B was told %d expunges, want 6: %q", n, resp)
	}
	if s, h := cachedBodies(ts, gone); s != 0 || h != 0 {
		t.Fatalf("after B's NOOP: %d structures and %d header blocks of the expunged still cached", s, h)
	}
	if s, h := cachedBodies(ts, bodyOf(6, len(l))); s != len(l)-6 || h != len(l)-6 {
		t.Fatalf("after B's NOOP: %d structures and %d header blocks of the others cached, want %d", s, h, len(l)-6)
	}

	// CLOSE expunges silently, with no sync to report it: B's CLOSE
	// drops message 7 itself.
	b.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	b.ok("CLOSE")
	if s, h := cachedBodies(ts, bodyOf(6, 7)); s != 0 || h != 0 {
		t.Fatalf("after B's CLOSE: %d structures and %d header blocks of the expunged still cached", s, h)
	}
	if s, h := cachedBodies(ts, bodyOf(7, len(l))); s != len(l)-7 || h != len(l)-7 {
		t.Fatalf("after B's CLOSE: %d structures and %d header blocks of the others cached, want %d", s, h, len(l)-7)
	}
}
