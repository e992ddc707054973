package store

import (
	"context"
	"time"
)

// FullTextTerm is one term of a full-text query: the term itself, or
// with Prefix every term that starts with it.
type FullTextTerm struct {
	Text   string
	Prefix bool
}

// FullTextQuery is an AND of groups, each an OR of terms. Terms are
// already folded and cut as the index keeps them (internal/fts).
type FullTextQuery [][]FullTextTerm

// FullTextDoc is what the index keeps of one body: its distinct terms.
type FullTextDoc struct {
	BodyID int64
	Terms  []string
	Bytes  int64 // length of the text the terms came from, for index status
	// Attachments: text attachments were indexed too. A row without them
	// does not count as indexed for a reader that wants them.
	Attachments bool
}

// FullTextStatus counts the index.
type FullTextStatus struct {
	Indexed    int64 // bodies with an index row
	Pending    int64 // bodies the indexer would still index
	Excluded   int64 // bodies only in \Junk or \Trash mailboxes, left out
	TextBytes  int64 // text indexed so far
	IndexBytes int64 // storage the index takes, where the database tells (0 when it does not)
}

// FullTextIndex is implemented by stores that keep a word index of
// message text per body (docs/search.md): SQLite FTS5, posting lists on
// PostgreSQL. A body without an index row is not yet indexed, and SEARCH
// reads it; a row goes with its body.
type FullTextIndex interface {
	// PendingFullText returns up to limit ids, ascending and above
	// afterID, of bodies without an index row (with attachments: without
	// one that has them) that are used by at least one message outside
	// \Junk and \Trash mailboxes; user != "" keeps to that user's
	// messages.
	PendingFullText(ctx context.Context, user string, attachments bool, afterID int64, limit int) ([]int64, error)
	// PutFullText stores docs for bodies that have no row, or a row
	// without attachments when the doc has them (bodies that are gone and
	// rows a concurrent indexer wrote first are skipped), and
	// adds vocab, the terms the caller has not stored before, to the
	// vocabulary.
	PutFullText(ctx context.Context, docs []FullTextDoc, vocab []string) error
	// FullTextTerms returns up to limit+1 indexed terms that contain sub,
	// together with every term of at least minLen bytes (words cut to the
	// index's term length, whose tail is unknown).
	FullTextTerms(ctx context.Context, sub string, minLen, limit int) ([]string, error)
	// FullTextMatch returns the ids of the bodies of the mailbox's
	// messages whose index row matches q.
	FullTextMatch(ctx context.Context, mailboxID int64, q FullTextQuery) ([]int64, error)
	// FullTextUnindexed calls fn, in UID order, for the mailbox's
	// messages with a UID of at least fromUID whose body has no index row
	// (with attachments: none that has them).
	FullTextUnindexed(ctx context.Context, mailboxID int64, attachments bool, fromUID uint32, fn func(uid uint32, bodyID int64)) error
	// FullTextEpoch counts the calls of DropFullText. Otherwise an index
	// row goes only with its body, so what a reader learnt about which
	// messages are indexed stays true while the epoch is unchanged.
	FullTextEpoch(ctx context.Context) (int64, error)
	// DropFullText removes the index rows of every body (user == "") or
	// of the bodies of user's messages, so that the indexer does them
	// again.
	DropFullText(ctx context.Context, user string) (int64, error)
	// FullTextStatus counts the index.
	FullTextStatus(ctx context.Context) (FullTextStatus, error)
}

// FullTextClaimer shares the indexing between several nodes' indexers:
// before an indexer reads a batch it claims the bodies, and gets back
// only those no other indexer holds (or whose claim has expired after
// ttl). A store with one indexer returns ids as they are.
type FullTextClaimer interface {
	ClaimFullText(ctx context.Context, owner string, ids []int64, ttl time.Duration) ([]int64, error)
}

// FullTextCompactor is a store whose index keeps entries of deleted or
// re-indexed bodies until it is compacted (PostgreSQL's posting lists).
// CompactFullText compacts when enough have gathered, or always with
// force, and returns how many entries it removed.
type FullTextCompactor interface {
	CompactFullText(ctx context.Context, force bool) (int64, error)
}
