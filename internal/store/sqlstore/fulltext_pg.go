package sqlstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// PostgreSQL's full-text index (migration 0210): per term, a posting list
// of body ids (postings.go), what SQLite's contentless FTS5 keeps without
// a word's positions. A list's head, up to headChunk bytes, is in the
// term's vocabulary row (body_fts_term): most terms are rare, and their
// whole list then costs a few bytes on a row that exists anyway. The rest
// is in rows of body_fts_post from seq 1 on, each grown to postingChunk
// bytes before the next starts. A batch appends to the last row of each
// of its terms.
//
// A tsvector per body (the design before) stored every body's words again
// and came to 2.2 times the text with its GIN index (docs/benchmarks.md).
// Keeping each batch's postings in a segment of its own, merged into the
// lists every few batches as FTS5 does, made fewer but larger rewrites:
// PostgreSQL could then less often keep a row's new version on its page,
// and the index came to twice the size (0.66 of the text at 100,000
// messages against 0.30).
//
// A list keeps the ids of bodies deleted since; readers keep only bodies
// with a body_fts row, and CompactFullText rewrites the lists once enough
// have gone (body_fts_epoch.posted counts the bodies written).

// headChunk bounds a list's head in the vocabulary row, which SEARCH
// scans for words a needle may sit inside of; postingChunk is the size a
// row of body_fts_post grows to: a batch copies the last row of each of
// its terms, and the per-row overhead is small against it.
const (
	headChunk    = 48
	postingChunk = 512
)

// ftsWriteLock serialises the writers of the lists on every node
// (pg_advisory_xact_lock): a batch reads the last rows and then extends
// them, which two writers must not do at once. Indexing is in the
// background; a batch holds it for one transaction.
const ftsWriteLock = 0x7065747265_6c0014

func lockPostings(ctx context.Context, c conn) error {
	_, err := c.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(ftsWriteLock))
	return mapErr(err)
}

// putDocsPG writes the batch's body_fts rows and the postings of the
// bodies written, under ftsWriteLock. A body indexed already (with
// attachments when the doc has them) is left alone, and so is one that
// is gone.
func putDocsPG(ctx context.Context, c conn, docs []store.FullTextDoc) error {
	if err := lockPostings(ctx, c); err != nil {
		return err
	}
	byID := make(map[int64]store.FullTextDoc, len(docs))
	ids := make([]int64, 0, len(docs))
	sizes := make([]int64, 0, len(docs))
	atts := make([]bool, 0, len(docs))
	for _, d := range docs {
		if _, dup := byID[d.BodyID]; dup {
			continue // one row may change once per statement
		}
		byID[d.BodyID] = d
		ids, sizes, atts = append(ids, d.BodyID), append(sizes, d.Bytes), append(atts, d.Attachments)
	}
	written, err := listInt64(ctx, c, `INSERT INTO body_fts (body_id, text_bytes, attachments)
SELECT b.id, u.bytes, u.att FROM unnest(?::int8[], ?::int8[], ?::bool[]) AS u(id, bytes, att) JOIN body b ON b.id = u.id
ON CONFLICT (body_id) DO UPDATE SET text_bytes = excluded.text_bytes, attachments = excluded.attachments
WHERE excluded.attachments AND NOT body_fts.attachments
RETURNING body_id`, ids, sizes, atts)
	if err != nil || len(written) == 0 {
		return mapErr(err)
	}
	byTerm := make(map[string][]int64)
	for _, id := range written {
		for _, t := range byID[id].Terms {
			byTerm[t] = append(byTerm[t], id)
		}
	}
	if err := appendTermPostings(ctx, c, byTerm); err != nil {
		return err
	}
	_, err = c.exec(ctx, `UPDATE body_fts_epoch SET posted = posted + ? WHERE id = 1`, len(written))
	return mapErr(err)
}

// postingTail is the last row of a term's list: seq 0 is the head.
type postingTail struct {
	seq  int32
	last int64
	size int
}

// appendTermPostings adds the ids of each term (each a sortedSet once
// sorted) to its list (the caller holds ftsWriteLock).
func appendTermPostings(ctx context.Context, c conn, byTerm map[string][]int64) error {
	terms := make([]string, 0, len(byTerm))
	for t := range byTerm {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	tails := make(map[string]postingTail, len(terms))
	rows, err := c.query(ctx, `SELECT t.term, coalesce(p.seq, 0), coalesce(p.last_id, t.last_id), octet_length(coalesce(p.ids, t.ids))
FROM body_fts_term t LEFT JOIN LATERAL (
    SELECT seq, last_id, ids FROM body_fts_post WHERE term = t.term ORDER BY seq DESC LIMIT 1) p ON true
WHERE t.term = ANY(?::text[])`, terms)
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
	var heads, upHeads, up, in postingRows
	for _, t := range terms {
		ids := sortedSet(byTerm[t])
		tail, ok := tails[t]
		switch {
		case !ok:
			enc, last, rest := fillRow(nil, 0, headChunk, ids)
			heads.add(t, 0, last, enc)
			in.addChunks(t, 1, rest)
		case tail.seq == 0 && tail.size < headChunk:
			enc, last, rest := fillRow(nil, tail.last, headChunk-tail.size, ids)
			upHeads.add(t, 0, last, enc)
			in.addChunks(t, 1, rest)
		case tail.seq > 0 && tail.size < postingChunk:
			enc, last, rest := fillRow(nil, tail.last, postingChunk-tail.size, ids)
			up.add(t, tail.seq, last, enc)
			in.addChunks(t, tail.seq+1, rest)
		default:
			in.addChunks(t, tail.seq+1, ids)
		}
	}
	if len(heads.terms) > 0 {
		if _, err := c.exec(ctx, `INSERT INTO body_fts_term (term, last_id, ids)
SELECT term, last_id, ids FROM unnest(?::text[], ?::int8[], ?::bytea[]) AS u(term, last_id, ids)`,
			heads.terms, heads.lasts, heads.ids); err != nil {
			return mapErr(err)
		}
	}
	if len(upHeads.terms) > 0 {
		if _, err := c.exec(ctx, `UPDATE body_fts_term t SET ids = t.ids || u.ids, last_id = u.last_id
FROM unnest(?::text[], ?::int8[], ?::bytea[]) AS u(term, last_id, ids)
WHERE t.term = u.term`, upHeads.terms, upHeads.lasts, upHeads.ids); err != nil {
			return mapErr(err)
		}
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

// fillRow encodes after a row's last id as many of ids as fit in room
// bytes (at least one), and returns the encoding, the new last id and
// the ids left over.
func fillRow(dst []byte, last int64, room int, ids []int64) ([]byte, int64, []int64) {
	n := 0
	for n < len(ids) && (n == 0 || len(dst) < room) {
		dst, last = appendPostings(dst, last, ids[n:n+1])
		n++
	}
	return dst, last, ids[n:]
}

// postingRows collects rows of body_fts_post (or heads: seq 0) for one
// statement.
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
		enc, last, ids = fillRow(nil, 0, postingChunk, ids)
		r.add(term, seq, last, enc)
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

// matchPostingsPG answers FullTextMatch from the lists: per group the
// union of its terms' lists, the groups intersected, then the mailbox's
// messages of those bodies that are indexed.
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
	sets := make([][]int64, len(q))
	if err := readLists(ctx, c, &whole, &prefix, sets); err != nil {
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
	out, err := indexedOfMailbox(ctx, c, mailboxID, cands)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: full-text match: %w", mapErr(err))
	}
	return out, nil
}

// readLists adds to sets[g] the ids of the lists of group g's terms: a
// list's head is in body_fts_term, the rest in body_fts_post.
func readLists(ctx context.Context, c conn, whole, prefix *postingQuery, sets [][]int64) error {
	rows, err := c.query(ctx, `SELECT u.g, t.ids FROM unnest(?::text[], ?::int4[]) AS u(term, g)
JOIN body_fts_term t ON t.term = u.term
UNION ALL
SELECT u.g, p.ids FROM unnest(?::text[], ?::int4[]) AS u(term, g)
JOIN body_fts_post p ON p.term = u.term
UNION ALL
SELECT u.g, t.ids FROM unnest(?::text[], ?::int4[]) AS u(term, g)
JOIN body_fts_term t ON t.term >= u.term AND t.term < u.term || chr(1114111)
UNION ALL
SELECT u.g, p.ids FROM unnest(?::text[], ?::int4[]) AS u(term, g)
JOIN body_fts_post p ON p.term >= u.term AND p.term < u.term || chr(1114111)`,
		whole.terms, whole.groups, whole.terms, whole.groups, prefix.terms, prefix.groups, prefix.terms, prefix.groups)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ids []byte
	for rows.Next() {
		var g int32
		if err := rows.Scan(&g, &ids); err != nil {
			return err
		}
		if sets[g], err = decodePostings(sets[g], ids); err != nil {
			return err
		}
	}
	return rows.Err()
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
func indexedOfMailbox(ctx context.Context, c conn, mailboxID int64, cands []int64) ([]int64, error) {
	if len(cands) <= manyCandidates {
		return listInt64(ctx, c, `SELECT DISTINCT m.body_id FROM message m JOIN body_fts d ON d.body_id = m.body_id
WHERE m.mailbox_id = ? AND m.body_id = ANY(?::int8[])`, mailboxID, cands)
	}
	all, err := listInt64(ctx, c, `SELECT m.body_id FROM message m JOIN body_fts d ON d.body_id = m.body_id
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
// 1/compactSlack of the indexed bodies; it rewrites the lists of
// compactPageRows terms per transaction.
const (
	compactMin      = 1000
	compactSlack    = 10
	compactPageRows = 5000
)

// compactPage rewrites the lists of up to compactPageRows terms after
// the term after, and returns the last term done ("" at the end) and
// the ids it removed. The live bodies are read under ftsWriteLock, so no
// batch adds a body between that read and the rewrite; a body deleted
// meanwhile only stays listed.
func compactPage(ctx context.Context, c conn, after string) (string, int64, error) {
	if err := lockPostings(ctx, c); err != nil {
		return "", 0, err
	}
	heads, err := termLists(ctx, c, `SELECT term, ids FROM body_fts_term WHERE term > ? ORDER BY term LIMIT ?`, after, compactPageRows)
	if err != nil || len(heads) == 0 {
		return "", 0, err
	}
	last := heads[len(heads)-1].term
	rest, err := termLists(ctx, c, `SELECT term, ids FROM body_fts_post WHERE term > ? AND term <= ? ORDER BY term, seq`, after, last)
	if err != nil {
		return "", 0, err
	}
	live, err := listInt64(ctx, c, `SELECT body_id FROM body_fts ORDER BY body_id`)
	if err != nil {
		return "", 0, err
	}
	var removed int64
	var redo []string
	var newHeads, out postingRows
	r := 0
	for _, h := range heads {
		ids, err := decodePostings(nil, h.ids)
		for ; err == nil && r < len(rest) && rest[r].term == h.term; r++ {
			ids, err = decodePostings(ids, rest[r].ids)
		}
		if err != nil {
			return "", 0, fmt.Errorf("term %q: %w", h.term, err)
		}
		n, ordered := len(ids), ascending(ids)
		kept := intersectSorted(sortedSet(ids), live)
		if len(kept) == n && ordered {
			continue
		}
		removed += int64(n - len(kept))
		redo = append(redo, h.term)
		// A term with no body left keeps its row with an empty list: the
		// vocabulary never loses a term (the indexers remember which
		// they have stored).
		enc, lastID, more := fillRow([]byte{}, 0, headChunk, kept)
		newHeads.add(h.term, 0, lastID, enc)
		out.addChunks(h.term, 1, more)
	}
	if len(redo) > 0 {
		if _, err := c.exec(ctx, `DELETE FROM body_fts_post WHERE term = ANY(?::text[])`, redo); err != nil {
			return "", 0, mapErr(err)
		}
		if _, err := c.exec(ctx, `UPDATE body_fts_term t SET ids = u.ids, last_id = u.last_id
FROM unnest(?::text[], ?::int8[], ?::bytea[]) AS u(term, last_id, ids)
WHERE t.term = u.term`, newHeads.terms, newHeads.lasts, newHeads.ids); err != nil {
			return "", 0, mapErr(err)
		}
		if err := out.insert(ctx, c); err != nil {
			return "", 0, err
		}
	}
	if len(heads) < compactPageRows {
		last = ""
	}
	return last, removed, nil
}

// termList is one row of a list: its term and its ids.
type termList struct {
	term string
	ids  []byte
}

func termLists(ctx context.Context, c conn, q string, args ...any) ([]termList, error) {
	return list(ctx, c, "posting lists", func(sc interface{ Scan(...any) error }) (termList, error) {
		var l termList
		err := sc.Scan(&l.term, &l.ids)
		return l, err
	}, q, args...)
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
