package fts

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"unsafe"
)

func TestTerms(t *testing.T) {
	got := Terms(Fold("Grüße aus München, café-bar x_y 42 grüße ") + strings.Repeat("a", 200))
	want := []string{"grüße", "aus", "münchen", "café", "bar", "x", "y", "42", strings.Repeat("a", MaxTermLen)}
	if !slices.Equal(got, want) {
		t.Errorf("Terms = %q\nwant %q", got, want)
	}
	// A cut never splits a rune.
	long := strings.Repeat("é", 100)
	if c := Terms(long)[0]; len(c) != MaxTermLen || !strings.HasPrefix(long, c) {
		t.Errorf("cut %d bytes", len(c))
	}
}

func TestPlan(t *testing.T) {
	cases := []struct {
		needle string
		want   []Term
		ok     bool
	}{
		{"invoice", []Term{{"invoice", Inner}}, true},
		{" invoice", []Term{{"invoice", Prefix}}, true},
		{" invoice ", []Term{{"invoice", Whole}}, true},
		{"invoice ", []Term{{"invoice", Inner}}, true},
		{"Quokka Jumps", []Term{{"quokka", Inner}, {"jumps", Prefix}}, true},
		{"a big deal.", []Term{{"a", Inner}, {"big", Whole}, {"deal", Whole}}, true},
		{"@.", nil, false},
		{"", nil, false},
	}
	for _, c := range cases {
		got, ok := Plan(c.needle)
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("Plan(%q) = %v, %v; want %v, %v", c.needle, got, ok, c.want, c.ok)
		}
	}
}

// covered is the index's side of a query, done in Go: whether the
// terms of a text satisfy every word of a plan as the store would
// (Inner: a term containing it, or a cut term).
func covered(terms []string, plan []Term) bool {
	for _, p := range plan {
		ok := slices.ContainsFunc(terms, func(t string) bool {
			switch p.Kind {
			case Whole:
				return t == p.Text
			case Prefix:
				return strings.HasPrefix(t, p.Text)
			}
			return strings.Contains(t, p.Text) || len(t) >= MaxTermLen-3
		})
		if !ok {
			return false
		}
	}
	return true
}

// FuzzPlan checks the promise the index rests on: every needle cut out
// of a text is found by its plan in that text's terms, so SEARCH never
// loses a match to the index.
func FuzzPlan(f *testing.F) {
	f.Add("Hello, wörld! café-bar 42x", 3, 12)
	f.Add("the quokka jumps over", 5, 14)
	f.Add(strings.Repeat("ab", 150)+" tail", 250, 290)
	f.Add("ǅemal ﬁne straße", 0, 10)
	f.Fuzz(func(t *testing.T, text string, i, j int) {
		folded := Fold(text)
		if i < 0 || j > len(folded) || i > j {
			return
		}
		needle := folded[i:j]
		plan, ok := Plan(needle)
		if !ok {
			return
		}
		if Fold(needle) != needle {
			return // folding the needle again changed it: not a substring of the folded text
		}
		if !covered(Terms(folded), plan) {
			t.Fatalf("needle %q of %q: plan %v not covered by %q", needle, folded, plan, Terms(folded))
		}
	})
}

// TestIndexerSkipsHugeVocabulary: a body with more distinct words than a
// tsvector holds is left unindexed (SEARCH reads it) instead of failing
// its batch for ever.
func TestIndexerSkipsHugeVocabulary(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100000; i++ { // 100,000 distinct terms of 6-7 bytes
		fmt.Fprintf(&b, "w%d ", i)
	}
	if n := termBytes(Terms(b.String())); n <= MaxDocTermBytes {
		t.Fatalf("only %d term bytes", n)
	}
	st := &memStore{bodies: map[int64]string{1: "small text", 2: b.String()}}
	ix := NewIndexer(IndexerOptions{Store: st, Extract: func(r io.ReaderAt, size int64) (string, error) {
		buf := make([]byte, size)
		_, err := r.ReadAt(buf, 0)
		return string(buf), err
	}})
	if _, err := ix.IndexAll(context.Background(), "", nil); err != nil {
		t.Fatal(err)
	}
	if len(st.docs) != 1 || st.docs[0].BodyID != 1 {
		t.Errorf("indexed %+v, want body 1 only", st.docs)
	}
}

// memStore is a fts.Store over a map, for the indexer's own logic.
type memStore struct {
	store.FullTextIndex
	bodies map[int64]string
	docs   []store.FullTextDoc
}

func (m *memStore) PendingFullText(_ context.Context, _ string, _ bool, after int64, limit int) ([]int64, error) {
	var ids []int64
	for id := range m.bodies {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids[:min(limit, len(ids))], nil
}

func (m *memStore) PutFullText(_ context.Context, docs []store.FullTextDoc, _ []string) error {
	m.docs = append(m.docs, docs...)
	return nil
}

func (m *memStore) ReadBodies(_ context.Context, ids []int64, fn func(int64, io.ReaderAt, int64) error) error {
	for _, id := range ids {
		if err := fn(id, strings.NewReader(m.bodies[id]), int64(len(m.bodies[id]))); err != nil {
			return err
		}
	}
	return nil
}

// TestIndexerKeepsNoText: the terms the indexer remembers (its vocabulary
// cache) are copies, not substrings of the texts they came from, which
// would keep every indexed message's text in memory as long as the
// cache holds one of its terms.
func TestIndexerKeepsNoText(t *testing.T) {
	st := &memStore{bodies: map[int64]string{}}
	for id := int64(1); id <= 20; id++ {
		st.bodies[id] = fmt.Sprintf("unique%d %s", id, strings.Repeat("common words of a long message ", 3000)) // over detachAbove
	}
	var texts []string
	ix := NewIndexer(IndexerOptions{Store: st, Extract: func(r io.ReaderAt, size int64) (string, error) {
		buf := make([]byte, size)
		_, err := r.ReadAt(buf, 0)
		texts = append(texts, string(buf))
		return texts[len(texts)-1], err
	}})
	if _, err := ix.IndexAll(context.Background(), "", nil); err != nil {
		t.Fatal(err)
	}
	if len(ix.seen) < 20 {
		t.Fatalf("%d terms remembered", len(ix.seen))
	}
	inText := func(term string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(term)))
		for _, text := range texts {
			start := uintptr(unsafe.Pointer(unsafe.StringData(text)))
			if p >= start && p < start+uintptr(len(text)) {
				return true
			}
		}
		return false
	}
	for term := range ix.seen {
		if inText(term) {
			t.Fatalf("remembered term %q points into a message's text", term)
		}
	}
	// Nor do the terms of the documents a batch stores.
	for _, d := range st.docs {
		for _, term := range d.Terms {
			if inText(term) {
				t.Fatalf("term %q of body %d points into its text", term, d.BodyID)
			}
		}
	}
	if len(st.docs) != 20 || !slices.Contains(st.docs[4].Terms, "unique5") || !slices.Contains(st.docs[4].Terms, "message") {
		t.Fatalf("documents: %d, body 5's terms %q", len(st.docs), st.docs[4].Terms)
	}
}

// BenchmarkIndexBatch: one batch of 200 bodies of about 4 KiB of words,
// through a store that keeps nothing.
func BenchmarkIndexBatch(b *testing.B) {
	st := &memStore{bodies: map[int64]string{}}
	for id := int64(1); id <= 200; id++ {
		var t strings.Builder
		for w := 0; t.Len() < 4096; w++ {
			fmt.Fprintf(&t, "word%d ", (int(id)*7919+w*104729)%20000)
		}
		st.bodies[id] = t.String()
	}
	ix := NewIndexer(IndexerOptions{Store: st, Extract: func(r io.ReaderAt, size int64) (string, error) {
		buf := make([]byte, size)
		_, err := r.ReadAt(buf, 0)
		return string(buf), err
	}})
	b.ReportAllocs()
	for b.Loop() {
		st.docs = st.docs[:0]
		if _, _, err := ix.Batch(context.Background(), "", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// compactingStore has nothing to index and records compaction calls.
type compactingStore struct {
	Store
	calls chan bool
}

func (compactingStore) PendingFullText(context.Context, string, bool, int64, int) ([]int64, error) {
	return nil, nil
}

func (c compactingStore) CompactFullText(_ context.Context, force bool) (int64, error) {
	select {
	case c.calls <- force:
	default:
	}
	return 0, nil
}

// TestIndexerCompacts: a store whose index needs compaction
// (store.FullTextCompactor) is asked, without force, at each rescan.
func TestIndexerCompacts(t *testing.T) {
	st := compactingStore{calls: make(chan bool, 8)}
	ix := NewIndexer(IndexerOptions{Store: st, Extract: func(io.ReaderAt, int64) (string, error) { return "", nil },
		Interval: time.Millisecond, Rescan: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { ix.Run(ctx); close(done) }()
	for range 2 {
		select {
		case force := <-st.calls:
			if force {
				t.Error("the rescan forced a compaction")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no compaction at the rescan")
		}
	}
	cancel()
	<-done
}
