package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// PostgreSQL's full-text index (migration 0210): per term, posting lists
// of body ids (postings.go) in rows of body_fts_post, keyed by term and a
// sequence number. A batch appends to the last row of each of its terms
// until that row holds postingChunk bytes, then starts the next. This is
// what SQLite's contentless FTS5 keeps, without a word's positions; a
// tsvector per body (the design before) stored every body's words again
// and came to 2.2 times the text with its GIN index (docs/benchmarks.md).
//
// A list keeps the ids of bodies deleted since; readers keep only bodies
// with a body_fts row, and CompactFullText rewrites the lists once enough
// have gone (body_fts_epoch.posted counts the bodies written).

// postingChunk is the size a row grows to before the next row starts: a
// batch rewrites the last row of each of its terms, so it bounds that
// copy, and the per-row overhead is small against it.
const postingChunk = 512

// ftsWriteLock serialises the writers of body_fts_post on every node
// (pg_advisory_xact_lock): a batch reads the last rows and then extends
// them, which two writers must not do at once. Indexing is in the
// background; each batch holds it for one transaction.
const ftsWriteLock = 0x7065747265_6c0014

func lockPostings(ctx context.Context, c conn) error {
	_, err := c.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(ftsWriteLock))
	return mapErr(err)
}

// putDocPG writes d's body_fts row, and reports whether it did: a body
// indexed already (with attachments when d has them) is left alone.
func putDocPG(ctx context.Context, c conn, d store.FullTextDoc) (bool, error) {
	res, err := c.exec(ctx, `INSERT INTO body_fts (body_id, text_bytes, attachments)
SELECT id, ?, ? FROM body WHERE id = ?
ON CONFLICT (body_id) DO UPDATE SET text_bytes = excluded.text_bytes, attachments = excluded.attachments
WHERE excluded.attachments AND NOT body_fts.attachments`, d.Bytes, d.Attachments, d.BodyID)
	if err != nil {
		return false, mapErr(err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// putDocsPG writes the batch's body_fts rows and the postings of the
// bodies written, under ftsWriteLock.
func putDocsPG(ctx context.Context, c conn, docs []store.FullTextDoc) error {
	if len(docs) == 0 {
		return nil
	}
	if err := lockPostings(ctx, c); err != nil {
		return err
	}
	byTerm := make(map[string][]int64)
	written := 0
	for _, d := range docs {
		ok, err := putDocPG(ctx, c, d)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		written++
		for _, t := range d.Terms {
			byTerm[t] = append(byTerm[t], d.BodyID)
		}
	}
	if written == 0 {
		return nil
	}
	if err := appendTermPostings(ctx, c, byTerm); err != nil {
		return err
	}
	_, err := c.exec(ctx, `UPDATE body_fts_epoch SET posted = posted + ? WHERE id = 1`, written)
	return mapErr(err)
}

// postingTail is the last row of a term's list.
type postingTail struct {
	seq  int32
	last int64
	size int
}

// appendTermPostings adds the ids of each term (the caller holds
// ftsWriteLock).
func appendTermPostings(ctx context.Context, c conn, byTerm map[string][]int64) error {
	terms := make([]string, 0, len(byTerm))
	for t := range byTerm {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	tails := make(map[string]postingTail, len(terms))
	rows, err := c.query(ctx, `SELECT DISTINCT ON (term) term, seq, last_id, octet_length(ids)
FROM body_fts_post WHERE term = ANY(?::text[]) ORDER BY term, seq DESC`, terms)
	if err != nil {
		return mapErr(err)
	}
	for rows.Next() {
		var t string
		var tail postingTail
		if err := rows.Scan(&t, &tail.seq, &tail.last, &tail.size); err != nil {
			rows.Close()
			return err
		}
		tails[t] = tail
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return mapErr(err)
	}
	var up, in postingRows
	for _, t := range terms {
		ids := sortedSet(byTerm[t])
		tail, ok := tails[t]
		if ok && tail.size < postingChunk {
			enc, last := appendPostings(nil, tail.last, ids)
			up.add(t, tail.seq, last, enc)
			continue
		}
		seq := int32(0)
		if ok {
			seq = tail.seq + 1
		}
		in.addChunks(t, seq, ids)
	}
	if len(up.terms) > 0 {
		if _, err := c.exec(ctx, `UPDATE body_fts_post p SET ids = p.ids || u.ids, last_id = u.last_id
FROM unnest(?::text[], ?::int4[], ?::int8[], ?::bytea[]) AS u(term, seq, last_id, ids)
WHERE p.term = u.term AND p.seq = u.seq`, up.terms, up.seqs, up.lasts, up.ids); err != nil {
			return mapErr(err)
		}
	}
	return in.insert(ctx, c)
}

// postingRows collects rows of body_fts_post for one statement.
type postingRows struct {
	terms []string
	seqs  []int32
	lasts []int64
	ids   [][]byte
}

func (r *postingRows) add(term string, seq int32, last int64, ids []byte) {
	r.terms = append(r.terms, term)
	r.seqs = append(r.seqs, seq)
	r.lasts = append(r.lasts, last)
	r.ids = append(r.ids, ids)
}

// addChunks adds ids (ascending, distinct) as new rows from seq on, each
// up to postingChunk bytes.
func (r *postingRows) addChunks(term string, seq int32, ids []int64) {
	for len(ids) > 0 {
		var enc []byte
		var last int64
		n := 0
		for n < len(ids) && len(enc) < postingChunk {
			enc, last = appendPostings(enc, last, ids[n:n+1])
			n++
		}
		r.add(term, seq, last, enc)
		ids = ids[n:]
		seq++
	}
}

func (r *postingRows) insert(ctx context.Context, c conn) error {
	if len(r.terms) == 0 {
		return nil
	}
	_, err := c.exec(ctx, `INSERT INTO body_fts_post (term, seq, last_id, ids)
SELECT * FROM unnest(?::text[], ?::int4[], ?::int8[], ?::bytea[])`, r.terms, r.seqs, r.lasts, r.ids)
	return mapErr(err)
}

// matchPostingsPG answers FullTextMatch from the posting lists: per
// group the union of its terms' lists, the groups intersected, then the
// mailbox's messages of those bodies that are indexed.
func (s *Store) matchPostingsPG(ctx context.Context, mailboxID int64, q store.FullTextQuery) ([]int64, error) {
	var whole, prefix postingQuery
	for g, group := range q {
		for _, t := range group {
			if t.Prefix {
				prefix.add(t.Text, g)
			} else {
				whole.add(t.Text, g)
			}
		}
	}
	c := s.readConn()
	rows, err := c.query(ctx, `SELECT u.g, p.ids FROM unnest(?::text[], ?::int4[]) AS u(term, g)
JOIN body_fts_post p ON p.term = u.term
UNION ALL
SELECT u.g, p.ids FROM unnest(?::text[], ?::int4[]) AS u(term, g)
JOIN body_fts_post p ON p.term >= u.term AND p.term < u.term || chr(1114111)`,
		whole.terms, whole.groups, prefix.terms, prefix.groups)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: full-text match: %w", mapErr(err))
	}
	sets := make([][]int64, len(q))
	var ids []byte
	for rows.Next() {
		var g int32
		if err := rows.Scan(&g, &ids); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: full-text match: %w", err)
		}
		if sets[g], err = decodePostings(sets[g], ids); err != nil {
			rows.Close()
			return nil, err
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: full-text match: %w", mapErr(err))
	}
	var cands []int64
	for i, set := range sets {
		set = sortedSet(set)
		if i == 0 {
			cands = set
		} else {
			cands = intersectSorted(cands, set)
		}
		if len(cands) == 0 {
			return nil, nil
		}
	}
	return s.indexedOfMailbox(ctx, mailboxID, cands)
}

// postingQuery collects the terms of one kind and their groups.
type postingQuery struct {
	terms  []string
	groups []int32
}

func (p *postingQuery) add(term string, g int) {
	p.terms = append(p.terms, term)
	p.groups = append(p.groups, int32(g))
}

// manyCandidates is where matching against the whole mailbox is cheaper
// than looking each candidate up.
const manyCandidates = 2000

// indexedOfMailbox returns the bodies of cands (a sortedSet) that
// messages of the mailbox have and that have an index row.
func (s *Store) indexedOfMailbox(ctx context.Context, mailboxID int64, cands []int64) ([]int64, error) {
	if len(cands) <= manyCandidates {
		return s.bodyIDs(ctx, "full-text match", `SELECT DISTINCT m.body_id FROM message m JOIN body_fts d ON d.body_id = m.body_id
WHERE m.mailbox_id = ? AND m.body_id = ANY(?::int8[])`, mailboxID, cands)
	}
	all, err := s.bodyIDs(ctx, "full-text match", `SELECT m.body_id FROM message m JOIN body_fts d ON d.body_id = m.body_id
WHERE m.mailbox_id = ?`, mailboxID)
	if err != nil {
		return nil, err
	}
	return intersectSorted(cands, sortedSet(all)), nil
}

// CompactFullText implements store.FullTextCompactor: when the lists
// hold more ids of deleted or re-indexed bodies than compactSlack of the
// indexed ones (or force is set), it rewrites them without those ids
// and with each term's rows merged in order. It returns the ids removed.
// SQLite's FTS5 cleans its own segments.
func (s *Store) CompactFullText(ctx context.Context, force bool) (int64, error) {
	if !s.pg() {
		return 0, nil
	}
	c := s.readConn()
	var posted, indexed int64
	if err := c.queryRow(ctx, `SELECT (SELECT posted FROM body_fts_epoch WHERE id = 1), (SELECT count(*) FROM body_fts)`).Scan(&posted, &indexed); err != nil {
		return 0, fmt.Errorf("sqlstore: compact full text: %w", mapErr(err))
	}
	if !force && posted-indexed < max(compactMin, indexed/compactSlack) {
		return 0, nil
	}
	var removed int64
	after := ""
	for {
		var next string
		var n int64
		err := s.retryTx(ctx, func(c conn) error {
			var err error
			next, n, err = compactPage(ctx, c, after)
			return err
		})
		if err != nil {
			return removed, fmt.Errorf("sqlstore: compact full text: %w", err)
		}
		removed += n
		if next == "" {
			break
		}
		after = next
	}
	err := s.retryTx(ctx, func(c conn) error {
		if err := lockPostings(ctx, c); err != nil {
			return err
		}
		_, err := c.exec(ctx, `UPDATE body_fts_epoch SET posted = (SELECT count(*) FROM body_fts) WHERE id = 1`)
		return mapErr(err)
	})
	if err != nil {
		return removed, fmt.Errorf("sqlstore: compact full text: %w", err)
	}
	return removed, nil
}

// Compaction runs when ids of gone bodies exceed compactMin and
// 1/compactSlack of the indexed bodies; it reads compactPageRows rows
// per transaction.
const (
	compactMin      = 1000
	compactSlack    = 10
	compactPageRows = 5000
)

// compactPage rewrites the lists of the terms after the term after, up to
// about compactPageRows rows, and returns the last term done ("" at the
// end) and the ids it removed. The live bodies are read under
// ftsWriteLock, so no batch adds a body between that read and the
// rewrite; a body deleted meanwhile only stays listed.
func compactPage(ctx context.Context, c conn, after string) (string, int64, error) {
	if err := lockPostings(ctx, c); err != nil {
		return "", 0, err
	}
	type row struct {
		term string
		ids  []byte
	}
	var page []row
	rows, err := c.query(ctx, `SELECT term, ids FROM body_fts_post WHERE term > ? ORDER BY term, seq LIMIT ?`, after, compactPageRows)
	if err != nil {
		return "", 0, mapErr(err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.term, &r.ids); err != nil {
			rows.Close()
			return "", 0, err
		}
		page = append(page, r)
	}
	if err := rows.Close(); err != nil {
		return "", 0, err
	}
	if len(page) == 0 {
		return "", 0, nil
	}
	last := page[len(page)-1].term
	full := len(page) == compactPageRows
	if full && page[0].term != last {
		// The last term may go on past the page: leave it to the next.
		for page[len(page)-1].term == last {
			page = page[:len(page)-1]
		}
		last = page[len(page)-1].term
	} else if full {
		// One term fills the page: take all of its rows.
		page = page[:0]
		more, err := c.query(ctx, `SELECT term, ids FROM body_fts_post WHERE term = ? ORDER BY seq`, last)
		if err != nil {
			return "", 0, mapErr(err)
		}
		for more.Next() {
			var r row
			if err := more.Scan(&r.term, &r.ids); err != nil {
				more.Close()
				return "", 0, err
			}
			page = append(page, r)
		}
		if err := more.Close(); err != nil {
			return "", 0, err
		}
	}
	live, err := listInt64(ctx, c, `SELECT body_id FROM body_fts ORDER BY body_id`)
	if err != nil {
		return "", 0, err
	}
	var removed int64
	var redo []string
	var out postingRows
	for i := 0; i < len(page); {
		j := i
		var ids []int64
		for ; j < len(page) && page[j].term == page[i].term; j++ {
			if ids, err = decodePostings(ids, page[j].ids); err != nil {
				return "", 0, fmt.Errorf("term %q: %w", page[j].term, err)
			}
		}
		n, ordered := len(ids), ascending(ids)
		kept := intersectSorted(sortedSet(ids), live)
		if len(kept) < n || !ordered {
			removed += int64(n - len(kept))
			redo = append(redo, page[i].term)
			out.addChunks(page[i].term, 0, kept)
		}
		i = j
	}
	if len(redo) > 0 {
		if _, err := c.exec(ctx, `DELETE FROM body_fts_post WHERE term = ANY(?::text[])`, redo); err != nil {
			return "", 0, mapErr(err)
		}
		if err := out.insert(ctx, c); err != nil {
			return "", 0, err
		}
	}
	if !full {
		last = ""
	}
	return last, removed, nil
}

// ascending says whether ids are strictly ascending: a list written in
// order, without repeats, which compaction leaves as it is unless ids go.
func ascending(ids []int64) bool {
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			return false
		}
	}
	return true
}

func listInt64(ctx context.Context, c conn, q string, args ...any) ([]int64, error) {
	return list(ctx, c, "ids", func(sc interface{ Scan(...any) error }) (int64, error) {
		var id int64
		err := sc.Scan(&id)
		return id, err
	}, q, args...)
}
