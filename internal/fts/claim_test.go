package fts_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for PGSchemaDSN

	"github.com/petrelmail/petrel/internal/fts"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

// countingStore counts the documents a node's indexer stores; the
// embedded Store keeps its ClaimFullText visible to the indexer.
type countingStore struct {
	*sqlstore.Store
	docs *atomic.Int64
}

func (c countingStore) PutFullText(ctx context.Context, docs []store.FullTextDoc, vocab []string) error {
	c.docs.Add(int64(len(docs)))
	return c.Store.PutFullText(ctx, docs, vocab)
}

func openPGNode(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: "postgresql", DSN: dsn, BlobDir: t.TempDir(), NoListen: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestIndexersShareTheWork: two nodes' indexers on one PostgreSQL index
// every body once between them (they claim batches), where each used to
// index every body.
func TestIndexersShareTheWork(t *testing.T) {
	dsn := testutil.PGSchemaDSN(t)
	ctx := context.Background()
	a, b := openPGNode(t, dsn), openPGNode(t, dsn)
	if err := a.CreateDomain(ctx, &store.Domain{Name: "example.test", MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	u := store.NewUser("alice", "example.test", 0, 80)
	if err := a.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	const n = 600
	for i := 0; i < n; i += 100 {
		var msgs []*store.NewMessage
		for j := i; j < i+100; j++ {
			body := []byte(fmt.Sprintf("Subject: m%d\r\n\r\nword%d shared text\r\n", j, j))
			msgs = append(msgs, &store.NewMessage{ID: fmt.Sprintf("c%d", j), Sender: "s@remote.test", ReceivedAt: time.Now(),
				Size: int64(len(body)), Body: body, Targets: []store.MailboxTarget{{User: "alice@example.test", Mailbox: "INBOX"}}})
		}
		if err := a.CommitMessages(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	extract := func(r io.ReaderAt, size int64) (string, error) {
		buf := make([]byte, size)
		_, err := r.ReadAt(buf, 0)
		if err == io.EOF {
			err = nil
		}
		return string(buf), err
	}
	var docsA, docsB atomic.Int64
	ixs := []*fts.Indexer{
		fts.NewIndexer(fts.IndexerOptions{Store: countingStore{a, &docsA}, Extract: extract, Batch: 50}),
		fts.NewIndexer(fts.IndexerOptions{Store: countingStore{b, &docsB}, Extract: extract, Batch: 50}),
	}
	var wg sync.WaitGroup
	for _, ix := range ixs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ix.IndexAll(ctx, "", nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := docsA.Load() + docsB.Load(); got != n {
		t.Fatalf("the two indexers stored %d + %d = %d documents for %d bodies, want each body once", docsA.Load(), docsB.Load(), got, n)
	}
	if left, err := a.PendingFullText(ctx, "", false, 0, 10); err != nil || len(left) != 0 {
		t.Fatalf("bodies left unindexed: %v (%v)", left, err)
	}
	t.Logf("node A indexed %d, node B %d", docsA.Load(), docsB.Load())
}

// TestClaimFullText: a claim keeps a body from other indexers until it
// expires; its owner may claim it again.
func TestClaimFullText(t *testing.T) {
	dsn := testutil.PGSchemaDSN(t)
	ctx := context.Background()
	a, b := openPGNode(t, dsn), openPGNode(t, dsn)
	got, err := a.ClaimFullText(ctx, "A", []int64{1, 2, 3, 4}, time.Minute)
	if err != nil || fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("A's first claim: %v %v", got, err)
	}
	if got, err = b.ClaimFullText(ctx, "B", []int64{3, 4, 5, 6}, time.Minute); err != nil || fmt.Sprint(got) != "[5 6]" {
		t.Fatalf("B's claim over A's: %v %v, want [5 6]", got, err)
	}
	if got, err = a.ClaimFullText(ctx, "A", []int64{1, 2}, time.Minute); err != nil || fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("A's claim again: %v %v", got, err)
	}
	if _, err = b.ClaimFullText(ctx, "B", []int64{7}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got, err = a.ClaimFullText(ctx, "A", []int64{7}, time.Minute); err != nil || fmt.Sprint(got) != "[7]" {
		t.Fatalf("an expired claim: %v %v, want it taken", got, err)
	}
}
