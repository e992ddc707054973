package store

// ChangeVersions is an optional interface of a Mailboxes store: a counter
// per user that goes up after every committed change to that user's
// mailboxes made through this store in this process (deliveries, APPEND,
// STORE, COPY/MOVE, expunges, CREATE/DELETE/RENAME). An IMAP session that
// sees the same value as at its last ChangesSince knows that this process
// changed nothing since; changes made by other processes sharing the
// database are counted only while the store is Realtime, so without that
// it must still poll now and then.
type ChangeVersions interface {
	// ChangeVersion is user's counter (0 before any change); the bump
	// happens after the commit, before the writing call returns.
	ChangeVersion(user string) uint64
}

// Realtime is an optional interface of a store with ChangeVersions and
// Watch: it reports whether every committed change, made here or by
// another node sharing the database, reaches Watch and ChangeVersion as
// it commits (PostgreSQL while its LISTEN connection is up; SQLite, one
// node). While true an IDLE session need not poll. Every change of the
// answer wakes all watchers, and a turn to true moves every counter
// (changes may have been missed while it was false).
type Realtime interface {
	Realtime() bool
}

// ConfigChanges is an optional interface of a store that announces
// committed configuration changes (users, domains, Sieve scripts) to
// every node sharing it, so caches can drop what went stale at once
// instead of waiting for their TTL.
type ConfigChanges interface {
	// OnConfigChange calls fn after each such commit, here or on another
	// node: topic names the kind ("user", "domain", "sieve") and key the
	// address or domain, lower-case; topic "" means anything may have
	// changed. fn must be quick and must not call the store. The result
	// unsubscribes.
	OnConfigChange(fn func(topic, key string)) (stop func())
}
