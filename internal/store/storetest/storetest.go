// Package storetest is the conformance suite every store.Store backend
// must pass. A backend's test calls Run with a function that opens a
// fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
)

// Open returns a new, empty store for test t. Called a second time with
// the same t after the first store was closed, it must re-open the same
// database (the suite uses that to check persistence). The suite closes
// every store it gets.
type Open func(t *testing.T) store.Store

// Optional capabilities; the tests that need them are skipped for a
// backend without them.
type (
	blobStore interface {
		Blobs() *blob.Dir
		InlineMax() int64
	}
	garbageCollector interface {
		CollectGarbage(ctx context.Context) error
	}
)

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"Domains", testDomains},
		{"Alternatives", testAlternatives},
		{"Relays", testRelays},
		{"NameInUse", testNameInUse},
		{"Users", testUsers},
		{"Aliases", testAliases},
		{"Tokens", testTokens},
		{"Managers", testManagers},
		{"Config", testConfig},
		{"CascadeDomain", testCascadeDomain},
		{"CascadeUser", testCascadeUser},
		{"InTxCommit", testInTxCommit},
		{"InTxRollback", testInTxRollback},
		{"CommitMessages", testCommitMessages},
		{"SharedBody", testSharedBody},
		{"BlobBodies", testBlobBodies},
		{"Quota", testQuota},
		{"QuotaRollsBackGroup", testQuotaRollsBackGroup},
		{"Queue", testQueue},
		{"CommitErrors", testCommitErrors},
		{"Mailboxes", testMailboxes},
		{"ConcurrentCommits", testConcurrentCommits},
		{"Reopen", testReopen},
		{"GarbageCollection", testGarbageCollection},
		{"IMAP", testIMAP},
		{"Sieve", testSieve},
		{"Certs", testCerts},
		{"TLSPolicies", testTLSPolicies},
		{"ReceivedTLSReports", testReceivedTLSReports},
		{"QueueDSN", testQueueDSN},
		{"QueueRequireTLS", testQueueRequireTLS},
		{"Fetches", testFetches},
		{"FetchedDelivery", testFetchedDelivery},
		{"DKIMKeys", testDKIMKeys},
		{"RateLimits", testRateLimits},
		{"RateTake", testRateTake},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// get opens a store and closes it when the test ends.
func get(t *testing.T, open Open) store.Store {
	t.Helper()
	s := open(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return &closeTracker{Store: s, closed: &closed}
}

// closeTracker lets a test close a store early without a double Close.
type closeTracker struct {
	store.Store
	closed *bool
}

func (c *closeTracker) Close() error {
	if *c.closed {
		return nil
	}
	*c.closed = true
	return c.Store.Close()
}

// unwrap returns the backend's own value, for optional interfaces.
func unwrap(s store.Store) store.Store {
	if c, ok := s.(*closeTracker); ok {
		return c.Store
	}
	return s
}

func ctx(t *testing.T) context.Context { return t.Context() }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// recent fails unless ts is within a minute of now (clock-skew tolerant
// yet catches zero, local-time and unit mistakes).
func recent(t *testing.T, ts time.Time, what string) {
	t.Helper()
	if ts.IsZero() || ts.Location() != time.UTC || time.Since(ts).Abs() > time.Minute {
		t.Fatalf("%s = %v, want a UTC time near now", what, ts)
	}
}

// seed creates domain example.com with the given users (by localpart).
func seed(t *testing.T, s store.Accounts, quota int64, locals ...string) {
	t.Helper()
	if _, err := s.GetDomain(ctx(t), "example.com"); errors.Is(err, store.ErrNotFound) {
		must(t, s.CreateDomain(ctx(t), &store.Domain{Name: "example.com", MaxUsers: -1, MaxAliases: -1}))
	}
	for _, l := range locals {
		u := store.NewUser(l, "example.com", quota, 80)
		u.Password = "{hash}" + l
		must(t, s.CreateUser(ctx(t), &u))
	}
}
