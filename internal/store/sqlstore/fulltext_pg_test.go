package sqlstore

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// postingList reads term's list in order, its head first: the rows'
// sizes and the ids.
func postingList(t *testing.T, s *Store, term string) (sizes []int, ids []int64) {
	t.Helper()
	rows, err := s.read.QueryContext(t.Context(), `SELECT ids FROM (
    SELECT 0 AS seq, ids FROM body_fts_term WHERE term = $1
    UNION ALL SELECT seq, ids FROM body_fts_post WHERE term = $1) l ORDER BY seq`, term)
	must(t, err)
	defer rows.Close()
	for rows.Next() {
		var b []byte
		must(t, rows.Scan(&b))
		sizes = append(sizes, len(b))
		ids, err = decodePostings(ids, b)
		must(t, err)
	}
	must(t, rows.Err())
	return sizes, ids
}

// pgIndexFixture is a PostgreSQL store (skipped without one) with n
// messages in INBOX, none indexed, its opener and the body ids.
func pgIndexFixture(t *testing.T, n int) (*Store, *opener, []int64) {
	t.Helper()
	skipWithoutPG(t)
	o := newOpener(pgOptions)
	s := imapFixture(t, o, 0)
	for i := range n {
		add(t, s, "INBOX", fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	var bodies []int64
	for _, m := range listMsgs(t, s, box(t, s, "INBOX").ID) {
		bodies = append(bodies, m.BodyID)
	}
	return s, o, bodies
}

func doc(id int64, terms ...string) store.FullTextDoc {
	return store.FullTextDoc{BodyID: id, Terms: terms, Bytes: 10}
}

// TestPostingLists: a term's list grows in its last row up to
// postingChunk and then in new rows; a batch of lower ids than the list
// holds (another node's, a rebuild's) is appended all the same; prefix
// queries read ranges of terms; every body is found.
func TestPostingLists(t *testing.T) {
	s, _, bodies := pgIndexFixture(t, 900)
	ctx := t.Context()
	inbox := box(t, s, "INBOX").ID
	// Later bodies first, in batches of 100; "every" is in all of them,
	// "odd" in every other one.
	for i := len(bodies); i > 0; i -= 100 {
		var docs []store.FullTextDoc
		for _, id := range bodies[i-100 : i] {
			terms := []string{"every"}
			if id%2 == 1 {
				terms = append(terms, "odd")
			}
			docs = append(docs, doc(id, terms...))
		}
		must(t, s.PutFullText(ctx, docs, []string{"every", "odd"}))
	}
	sizes, ids := postingList(t, s, "every")
	if len(sizes) < 3 || !slices.Equal(sortedSet(slices.Clone(ids)), bodies) {
		t.Fatalf("every: rows %v, %d ids", sizes, len(ids))
	}
	// Rows fill up to their size (and one id more), then the next starts.
	if sizes[0] < headChunk || sizes[0] > headChunk+4 {
		t.Errorf("head of every: %d bytes (chunk %d)", sizes[0], headChunk)
	}
	for i, n := range sizes[1 : len(sizes)-1] {
		if n < postingChunk || n > postingChunk+4 {
			t.Errorf("row %d of every: %d bytes (chunk %d)", i+1, n, postingChunk)
		}
	}
	match := func(q store.FullTextQuery) []int64 {
		t.Helper()
		got, err := s.FullTextMatch(ctx, inbox, q)
		must(t, err)
		slices.Sort(got)
		return got
	}
	var odd []int64
	for _, id := range bodies {
		if id%2 == 1 {
			odd = append(odd, id)
		}
	}
	w := func(s string) store.FullTextTerm { return store.FullTextTerm{Text: s} }
	p := func(s string) store.FullTextTerm { return store.FullTextTerm{Text: s, Prefix: true} }
	if got := match(store.FullTextQuery{{w("every")}}); !slices.Equal(got, bodies) {
		t.Errorf("every: %d of %d bodies", len(got), len(bodies))
	}
	if got := match(store.FullTextQuery{{p("ev")}, {w("odd")}}); !slices.Equal(got, odd) {
		t.Errorf("ev* and odd: %d bodies, want %d", len(got), len(odd))
	}
	if got := match(store.FullTextQuery{{p("od"), p("zz")}, {p("")}}); !slices.Equal(got, odd) {
		t.Errorf("od* or zz*, and anything: %d bodies, want %d", len(got), len(odd))
	}
	if got := match(store.FullTextQuery{{p("evf")}}); got != nil {
		t.Errorf("evf*: %v", got)
	}
	// Few candidates are looked up one by one, many against the mailbox.
	if got := match(store.FullTextQuery{{w("odd")}, {w("every")}}); len(got) != len(odd) || len(odd) <= manyCandidates/10 {
		t.Errorf("odd and every: %d", len(got))
	}
	// Prefixes compare bytes: a four-byte rune's term is in range.
	add(t, s, "INBOX", []byte("Subject: x\r\n\r\nx\r\n"))
	last := bodyOf(t, s, "INBOX", uint32(len(bodies)+1))
	must(t, s.PutFullText(ctx, []store.FullTextDoc{doc(last, "\u00e9t\u00e9", "\U00010400x")}, nil))
	if got := match(store.FullTextQuery{{p("\u00e9")}, {p("\U00010400")}}); !slices.Equal(got, []int64{last}) {
		t.Errorf("\u00e9* and \U00010400*: %v, want [%d]", got, last)
	}
	must(t, s.PutFullText(ctx, []store.FullTextDoc{doc(bodies[0], "\u00e9t\u00e9")}, nil))
	if got := match(store.FullTextQuery{{p("\u00e9")}}); !slices.Equal(got, []int64{last}) {
		t.Errorf("a body indexed already got new terms: %v", got)
	}
}

// TestPostingsCompaction: lists keep the ids of deleted and re-indexed
// bodies, which readers skip, until compaction rewrites them; it runs on
// its own only past its threshold.
func TestPostingsCompaction(t *testing.T) {
	s, _, bodies := pgIndexFixture(t, 6)
	ctx := t.Context()
	inbox := box(t, s, "INBOX").ID
	var docs []store.FullTextDoc
	for _, id := range bodies {
		docs = append(docs, doc(id, "word", fmt.Sprint("only", id)))
	}
	// More terms than a compaction page holds.
	many := compactPageRows + 100
	for i := range many {
		docs[1].Terms = append(docs[1].Terms, fmt.Sprintf("t%05d", i))
	}
	must(t, s.PutFullText(ctx, docs, nil))
	// UID 1 goes; the user's index is dropped and rebuilt, so each list
	// holds the other ids twice, out of order.
	_, err := s.ExpungeByID(ctx, inbox, []uint32{1})
	must(t, err)
	s.releaseNow(ctx)
	_, err = s.DropFullText(ctx, imapUser)
	must(t, err)
	must(t, s.PutFullText(ctx, docs[1:], nil))
	_, ids := postingList(t, s, "word")
	if len(ids) != 11 {
		t.Fatalf("word before compaction: %v", ids)
	}
	got, err := s.FullTextMatch(ctx, inbox, store.FullTextQuery{{{Text: "word"}}})
	must(t, err)
	if slices.Sort(got); !slices.Equal(got, bodies[1:]) {
		t.Errorf("match before compaction: %v, want %v", got, bodies[1:])
	}
	if n, err := s.CompactFullText(ctx, false); err != nil || n != 0 {
		t.Errorf("below the threshold: removed %d, %v", n, err)
	}
	n, err := s.CompactFullText(ctx, true)
	must(t, err)
	// word: 1 deleted and 5 repeated; only<id>: 1 deleted, 5 repeated;
	// t<i>: 1 repeated each.
	if n != int64(12+many) {
		t.Errorf("removed %d, want %d", n, 12+many)
	}
	for _, term := range []string{"t00000", fmt.Sprintf("t%05d", compactPageRows), fmt.Sprintf("t%05d", many-1)} {
		if _, ids := postingList(t, s, term); !slices.Equal(ids, bodies[1:2]) {
			t.Errorf("%s after compaction: %v", term, ids)
		}
	}
	if _, ids := postingList(t, s, "word"); !slices.Equal(ids, bodies[1:]) {
		t.Errorf("word after compaction: %v, want %v", ids, bodies[1:])
	}
	// The term stays in the vocabulary, with an empty list.
	if sizes, ids := postingList(t, s, fmt.Sprint("only", bodies[0])); !slices.Equal(sizes, []int{0}) || ids != nil {
		t.Errorf("the deleted body's own term: rows %v, ids %v", sizes, ids)
	}
	var posted int64
	must(t, s.read.QueryRowContext(ctx, `SELECT posted FROM body_fts_epoch`).Scan(&posted))
	if posted != 5 {
		t.Errorf("posted %d after compaction, want 5", posted)
	}
	if n, err := s.CompactFullText(ctx, true); err != nil || n != 0 {
		t.Errorf("second compaction: removed %d, %v", n, err)
	}
	// Dropping everyone's index empties the lists.
	_, err = s.DropFullText(ctx, "")
	must(t, err)
	var rows int
	must(t, s.read.QueryRowContext(ctx, `SELECT count(*) FROM body_fts_post`).Scan(&rows))
	if rows != 0 {
		t.Errorf("%d rows after dropping the whole index", rows)
	}
}

// TestPostingsTwoNodes: two stores on one database (two nodes) index
// disjoint bodies with the same terms at once; ftsWriteLock keeps every
// append.
func TestPostingsTwoNodes(t *testing.T) {
	s, o, bodies := pgIndexFixture(t, 400)
	s2 := o.openStore(t)
	t.Cleanup(func() { s2.Close() })
	ctx := t.Context()
	var wg sync.WaitGroup
	for n, st := range []*Store{s, s2} {
		wg.Go(func() {
			for i := n * 10; i < len(bodies); i += 20 {
				var docs []store.FullTextDoc
				for _, id := range bodies[i : i+10] {
					docs = append(docs, doc(id, "shared", fmt.Sprint("node", n)))
				}
				if err := st.PutFullText(ctx, docs, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	_, ids := postingList(t, s, "shared")
	if slices.Sort(ids); !slices.Equal(ids, bodies) {
		t.Errorf("shared holds %d ids, want %d", len(ids), len(bodies))
	}
	_, a := postingList(t, s, "node0")
	_, b := postingList(t, s, "node1")
	if len(a) != 200 || len(b) != 200 {
		t.Errorf("node0 %d ids, node1 %d", len(a), len(b))
	}
}

// TestPostingsMigration: an index of tsvectors (before migration 0210)
// is dropped by the migration, which moves the epoch so that SEARCH
// stops trusting it, keeps the vocabulary, and leaves every body to the
// indexer again.
func TestPostingsMigration(t *testing.T) {
	s, o, bodies := pgIndexFixture(t, 3)
	ctx := t.Context()
	var docs []store.FullTextDoc
	for _, id := range bodies {
		docs = append(docs, doc(id, "kept", fmt.Sprint("only", id)))
	}
	must(t, s.PutFullText(ctx, docs, nil))
	// Back to the schema before 0210, with a tsvector per indexed body.
	c := conn{q: s.write, d: s.d}
	for _, q := range []string{
		`DROP TABLE body_fts_post`,
		`ALTER TABLE body_fts_epoch DROP COLUMN posted`,
		`ALTER TABLE body_fts_term DROP COLUMN last_id, DROP COLUMN ids`,
		`ALTER TABLE body_fts ADD COLUMN doc tsvector NOT NULL DEFAULT ''`,
		`UPDATE body_fts SET doc = array_to_tsvector(ARRAY['kept'])`,
		`CREATE INDEX body_fts_doc ON body_fts USING gin (doc)`,
		`DELETE FROM schema_migrations WHERE version = 210`,
	} {
		_, err := c.exec(ctx, q)
		must(t, err)
	}
	e0, err := s.FullTextEpoch(ctx)
	must(t, err)
	must(t, s.Close())
	s = o.openStore(t)
	t.Cleanup(func() { s.Close() })
	if e1, err := s.FullTextEpoch(ctx); err != nil || e1 != e0+1 {
		t.Errorf("epoch %d after the migration, was %d (%v)", e1, e0, err)
	}
	pending, err := s.PendingFullText(ctx, "", false, 0, 10)
	must(t, err)
	if !slices.Equal(pending, bodies) {
		t.Errorf("pending after the migration: %v, want %v", pending, bodies)
	}
	if terms, err := s.FullTextTerms(ctx, "kep", 100, 10); err != nil || !slices.Equal(terms, []string{"kept"}) {
		t.Errorf("vocabulary after the migration: %v (%v)", terms, err)
	}
	must(t, s.PutFullText(ctx, docs, nil))
	got, err := s.FullTextMatch(ctx, box(t, s, "INBOX").ID, store.FullTextQuery{{{Text: "kept"}}})
	must(t, err)
	if slices.Sort(got); !slices.Equal(got, bodies) {
		t.Errorf("kept after indexing again: %v, want %v", got, bodies)
	}
}
