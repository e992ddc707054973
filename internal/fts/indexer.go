package fts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Store is what the indexer needs of the store.
type Store interface {
	store.FullTextIndex
	store.BodyBatch
}

// Extractor returns the folded text of a message that the index keeps
// (the IMAP side supplies it: it owns MIME and SEARCH's decoding rules).
type Extractor func(r io.ReaderAt, size int64) (string, error)

// Defaults of IndexerOptions.
const (
	DefaultBatch    = 200
	DefaultInterval = 2 * time.Second
	// DefaultRescan is how often the indexer looks at every body again,
	// not only at those after the last one it indexed: a body whose id
	// committed late (PostgreSQL sequences, several nodes) or that was
	// copied out of \Junk or \Trash is picked up then.
	DefaultRescan = 5 * time.Minute
	// vocabCache bounds the terms the indexer remembers having stored.
	vocabCache = 1 << 20
	// claimTTL is how long a claimed batch stays this indexer's (see
	// store.FullTextClaimer): far above a batch's time, and the delay
	// before another node redoes the batch of one that died.
	claimTTL = 2 * time.Minute
	// DefaultYield is how many times as long as its last batch took the
	// indexer waits while the server is busy (IndexerOptions.Activity):
	// it then takes at most a quarter of the time.
	DefaultYield = 3
	// maxYield bounds one such wait.
	maxYield = 5 * time.Second
	// busyRate is the rate of users' work (Activity per second) from
	// which the indexer yields: a few idle IMAP clients polling now and
	// then do not slow a catch-up after an import.
	busyRate = 20
)

// IndexerOptions configure an Indexer.
type IndexerOptions struct {
	Store   Store     // required
	Extract Extractor // required
	// Attachments says the extractor includes text attachments
	// (FULL_TEXT_SEARCH_ATTACHMENTS): rows are marked so, and rows made
	// without them are done again.
	Attachments bool
	Logger      *slog.Logger
	// Batch is how many bodies one transaction indexes; 0: DefaultBatch.
	Batch int
	// Interval is the pause after the indexer has caught up; 0:
	// DefaultInterval.
	Interval time.Duration
	// Rescan: 0: DefaultRescan.
	Rescan time.Duration
	// Activity, when set, counts the work done for users (messages
	// delivered, IMAP commands); it only grows. Indexing competes with
	// that work for the CPU and the store's writer: while the count
	// moves at busyRate or more, the indexer waits Yield times as long
	// as each batch took before it starts the next, so a burst of mail
	// is delivered first and indexed after. Otherwise it runs batch
	// after batch.
	Activity func() uint64
	// Yield: 0: DefaultYield.
	Yield int
}

// Indexer indexes the bodies that have no index row, in batches, in the
// background: nothing on the delivery or APPEND path waits for it, and
// SEARCH reads the bodies it has not reached yet.
type Indexer struct {
	opt      IndexerOptions
	seen     map[string]struct{} // terms stored already (cleared when full)
	owner    string              // this indexer's name in claims
	activity uint64              // Activity at the end of the last batch
	looked   time.Time           // when it was read
}

// NewIndexer returns an indexer; Run starts it.
func NewIndexer(opt IndexerOptions) *Indexer {
	if opt.Batch <= 0 {
		opt.Batch = DefaultBatch
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Rescan <= 0 {
		opt.Rescan = DefaultRescan
	}
	if opt.Yield <= 0 {
		opt.Yield = DefaultYield
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	rand.Read(b[:])
	return &Indexer{opt: opt, seen: make(map[string]struct{}), owner: hex.EncodeToString(b[:])}
}

// Run indexes until ctx ends. Errors are logged and retried after the
// interval.
func (ix *Indexer) Run(ctx context.Context) {
	var after int64
	lastFull := time.Now()
	if ix.opt.Activity != nil {
		ix.activity, ix.looked = ix.opt.Activity(), time.Now()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastFull) >= ix.opt.Rescan {
			after, lastFull = 0, time.Now()
			ix.compact(ctx, false)
		}
		start := time.Now()
		next, n, err := ix.Batch(ctx, "", after)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			ix.opt.Logger.Warn("full-text index: batch failed", "err", err)
			t.Reset(ix.opt.Interval)
		case n == 0:
			t.Reset(ix.opt.Interval)
		default:
			after = next
			t.Reset(ix.pause(time.Since(start)))
		}
	}
}

// pause is how long to wait before the next batch after one that took
// took: nothing unless users' work went on since the last batch ended,
// at busyRate or more.
func (ix *Indexer) pause(took time.Duration) time.Duration {
	if ix.opt.Activity == nil {
		return 0
	}
	a, now := ix.opt.Activity(), time.Now()
	work, since := a-ix.activity, now.Sub(ix.looked)
	ix.activity, ix.looked = a, now
	if work == 0 || float64(work) < busyRate*since.Seconds() {
		return 0
	}
	return min(time.Duration(ix.opt.Yield)*took, maxYield)
}

// compact lets a store that needs it drop what deleted bodies left in
// the index (store.FullTextCompactor).
func (ix *Indexer) compact(ctx context.Context, force bool) {
	c, ok := ix.opt.Store.(store.FullTextCompactor)
	if !ok {
		return
	}
	n, err := c.CompactFullText(ctx, force)
	switch {
	case err != nil && ctx.Err() == nil:
		ix.opt.Logger.Warn("full-text index: compaction failed", "err", err)
	case n > 0:
		ix.opt.Logger.Info("full-text index: compacted", "removed", n)
	}
}

// IndexAll indexes every pending body (of user, or of everyone when
// user is ""), calling progress after each batch with the running count.
func (ix *Indexer) IndexAll(ctx context.Context, user string, progress func(done int)) (int, error) {
	var after int64
	total := 0
	for {
		next, n, err := ix.Batch(ctx, user, after)
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		total += n
		after = next
		if progress != nil {
			progress(total)
		}
	}
}

// Batch indexes up to one batch of pending bodies with ids above after.
// It returns the last id it looked at and how many bodies it indexed.
func (ix *Indexer) Batch(ctx context.Context, user string, after int64) (int64, int, error) {
	ids, err := ix.pending(ctx, user, after)
	if err != nil || len(ids) == 0 {
		return after, 0, err
	}
	docs := make([]store.FullTextDoc, 0, len(ids))
	var vocab []string
	err = ix.opt.Store.ReadBodies(ctx, ids, func(id int64, r io.ReaderAt, size int64) error {
		text, err := ix.opt.Extract(r, size)
		if err != nil {
			// An unreadable body stays unindexed (SEARCH reads it and
			// reports the same error); it is logged, not retried at once.
			ix.opt.Logger.Warn("full-text index: cannot read body", "body", id, "err", err)
			return nil
		}
		terms := Terms(text)
		if termBytes(terms) > MaxDocTermBytes {
			// Left unindexed, so always read by SEARCH: correct, and rare
			// (text that is mostly distinct words, such as undecoded data).
			ix.opt.Logger.Debug("full-text index: too many distinct words, body left unindexed", "body", id, "terms", len(terms))
			return nil
		}
		if len(text) > detachAbove {
			terms = detach(terms)
		}
		for _, t := range terms {
			if _, ok := ix.seen[t]; !ok {
				vocab = append(vocab, t)
			}
		}
		docs = append(docs, store.FullTextDoc{BodyID: id, Terms: terms, Bytes: int64(len(text)), Attachments: ix.opt.Attachments})
		return nil
	})
	if err != nil {
		return after, 0, fmt.Errorf("full-text index: %w", err)
	}
	vocab = dedupe(vocab)
	if err := ix.opt.Store.PutFullText(ctx, docs, vocab); err != nil {
		return after, 0, fmt.Errorf("full-text index: %w", err)
	}
	if len(ix.seen)+len(vocab) > vocabCache {
		clear(ix.seen)
	}
	for _, t := range vocab {
		// A term is a substring of its message's text: kept as it is,
		// it would keep the whole text alive as long as the cache does
		// (up to vocabCache terms, each pinning a message: gigabytes
		// after a few thousand large messages).
		ix.seen[strings.Clone(t)] = struct{}{}
	}
	return ids[len(ids)-1], len(ids), nil
}

// pending returns the next pending bodies after after that this indexer
// may index: with several nodes' indexers on one store, those it could
// claim; batches all claimed by others are skipped.
func (ix *Indexer) pending(ctx context.Context, user string, after int64) ([]int64, error) {
	claimer, shared := ix.opt.Store.(store.FullTextClaimer)
	for {
		ids, err := ix.opt.Store.PendingFullText(ctx, user, ix.opt.Attachments, after, ix.opt.Batch)
		if err != nil || len(ids) == 0 || !shared {
			return ids, err
		}
		mine, err := claimer.ClaimFullText(ctx, ix.owner, ids, claimTTL)
		if err != nil || len(mine) > 0 {
			return mine, err
		}
		after = ids[len(ids)-1]
	}
}

// MaxDocTermBytes bounds the distinct terms of one body: text that is
// mostly distinct words (undecoded data) would fill the vocabulary.
const MaxDocTermBytes = 512 << 10

func termBytes(terms []string) int {
	n := 0
	for _, t := range terms {
		n += len(t) + 1
	}
	return n
}

// detachAbove is the text size from which a document's terms are copied
// out of it (detach). Below it the copy costs more than it saves: a
// batch of 200 small messages holds well under a megabyte of text.
const detachAbove = 64 << 10

// detach moves terms, substrings of a message's text, into one string of
// their own, in place: a batch then holds its terms until it is stored,
// not every large message's text (up to 4 MiB each, 200 to a batch).
func detach(terms []string) []string {
	var b strings.Builder
	b.Grow(termBytes(terms))
	for _, t := range terms {
		b.WriteString(t)
	}
	all, off := b.String(), 0
	for i, t := range terms {
		terms[i] = all[off : off+len(t)]
		off += len(t)
	}
	return terms
}

func dedupe(s []string) []string {
	seen := make(map[string]struct{}, len(s))
	out := s[:0]
	for _, t := range s {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}

// ErrNoIndex is returned by Query when the index cannot narrow a
// search for the needle: it has no word, or only a short piece of one
// that too many terms contain. The caller reads every message.
var ErrNoIndex = errors.New("fts: the index cannot narrow this needle")

// Query returns the store query that finds every indexed body whose text
// may contain needle (a superset: SEARCH confirms each candidate).
func Query(ctx context.Context, idx store.FullTextIndex, needle string) (store.FullTextQuery, error) {
	terms, ok := Plan(needle)
	if !ok {
		return nil, ErrNoIndex
	}
	var q store.FullTextQuery
	var inner []Term
	for _, t := range terms {
		switch t.Kind {
		case Whole:
			q = append(q, []store.FullTextTerm{{Text: t.Text}})
		case Prefix:
			q = append(q, []store.FullTextTerm{{Text: t.Text, Prefix: true}})
		case Inner:
			inner = append(inner, t)
		}
	}
	if len(q) > 0 {
		// The other words narrow enough; a word the needle may start in
		// the middle of would cost a vocabulary scan.
		return q, nil
	}
	for _, t := range inner {
		found, err := idx.FullTextTerms(ctx, t.Text, MaxTermLen-3, MaxExpand)
		if err != nil {
			return nil, err
		}
		if len(found) > MaxExpand {
			continue
		}
		group := make([]store.FullTextTerm, 0, len(found))
		for _, f := range found {
			group = append(group, store.FullTextTerm{Text: f})
		}
		q = append(q, group)
	}
	if len(q) == 0 {
		return nil, ErrNoIndex
	}
	return q, nil
}
