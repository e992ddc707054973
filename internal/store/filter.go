package store

import (
	"context"
	"time"
)

// GreylistEntry is one greylisting triplet (client network, sender,
// recipient), stored under a hash of the triplet so that every node
// sharing the database sees the same state.
type GreylistEntry struct {
	Key       string    // hex hash of the triplet
	FirstSeen time.Time // first delivery attempt
	LastSeen  time.Time // last attempt (or last pass, once passed)
	Passed    bool      // a retry came after the delay: the triplet is allowed
}

// JunkCounts are a user's classifier counts for one token, or (as totals)
// the number of messages trained.
type JunkCounts struct{ Spam, Ham int64 }

// FilterStore is the state of the built-in spam checks: greylisting and
// the per-user Bayesian classifier (internal/filter).
type FilterStore interface {
	// GreylistGet returns the entries of keys that exist.
	GreylistGet(ctx context.Context, keys []string) (map[string]GreylistEntry, error)
	// GreylistPut inserts or replaces entries.
	GreylistPut(ctx context.Context, entries []GreylistEntry) error
	// GreylistExpire deletes entries last seen before before; it returns
	// how many went.
	GreylistExpire(ctx context.Context, before time.Time) (int64, error)

	// JunkTotals returns the trained message counts of users (users
	// without training are missing from the map).
	JunkTotals(ctx context.Context, users []string) (map[string]JunkCounts, error)
	// JunkTokens returns user's counts for tokens (unknown ones missing).
	JunkTokens(ctx context.Context, user string, tokens []string) (map[string]JunkCounts, error)
	// JunkTrain adds one message to user's classifier: its tokens'
	// spam (or ham) counts and the user's message total go up by one, in
	// one transaction.
	JunkTrain(ctx context.Context, user string, tokens []string, spam bool) error
}
