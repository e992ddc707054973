package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Changes reach the other nodes sharing a PostgreSQL database through
// LISTEN/NOTIFY. A write transaction collects the users whose mailboxes
// it changed (conn.changed) and the configuration topics it touched
// (conn.configChanged); withTx turns them into one pg_notify just before
// COMMIT, so the notification is delivered if and only if the change
// commits, and costs one statement per transaction, not per row. Every
// node holds one LISTEN connection (listener) that wakes its local
// watchers, and proves with a probe notification that it hears them. While it is up (Realtime) IDLE sessions only wait for those
// wake-ups; when it is down, or the engine has no LISTEN/NOTIFY
// (CockroachDB before 24.x, some proxies such as PgBouncer in
// transaction mode), they poll ChangesSince, so that only costs latency.

// maxPayload stays below PostgreSQL's 8000-byte NOTIFY payload limit; a
// longer change list becomes "wake everyone".
const maxPayload = 7900

// Payload lines after the first (the sending node's id).
const (
	lineMailbox = "m\t" // m<TAB>user: user's mailboxes changed
	lineConfig  = "c\t" // c<TAB>topic<TAB>key: cached configuration is stale
	lineAll     = "*"   // too many to list: every user and every topic
)

// Configuration topics announced to every node (ConfigChanges).
const (
	TopicUser   = "user"   // key: the address (password, enabled, quota...)
	TopicDomain = "domain" // key: the name of a domain, alternative or relay domain
	TopicSieve  = "sieve"  // key: the user whose scripts changed
)

// wakeSet is what one write transaction changed, for the wake-ups after
// its commit. A fresh one is made per attempt, so a retried
// transaction does not announce the failed attempt's changes twice.
type wakeSet struct {
	users  []string
	config []configEvent
}

type configEvent struct{ topic, key string }

// changed records that user's mailboxes changed in c's transaction.
// Outside a transaction it does nothing.
func (c conn) changed(users ...string) {
	if c.wake != nil {
		c.wake.users = append(c.wake.users, users...)
	}
}

// configChanged records that topic/key changed in c's transaction, so
// caches of it on every node are dropped after the commit.
func (c conn) configChanged(topic, key string) {
	if c.wake != nil {
		c.wake.config = append(c.wake.config, configEvent{topic, strings.ToLower(key)})
	}
}

func (w *wakeSet) empty() bool { return len(w.users) == 0 && len(w.config) == 0 }

// normalize lower-cases, sorts and de-duplicates, so the payload (and the
// local wake-ups) name each user once.
func (w *wakeSet) normalize() {
	for i, u := range w.users {
		w.users[i] = strings.ToLower(u)
	}
	slices.Sort(w.users)
	w.users = slices.Compact(w.users)
	slices.SortFunc(w.config, func(a, b configEvent) int {
		return strings.Compare(a.topic+"\t"+a.key, b.topic+"\t"+b.key)
	})
	w.config = slices.Compact(w.config)
}

// payload encodes w for pg_notify: the node id, then one line per user
// or topic; "*" when that does not fit.
func (w *wakeSet) payload(node string) string {
	var b strings.Builder
	b.WriteString(node)
	for _, u := range w.users {
		b.WriteString("\n" + lineMailbox + u)
	}
	for _, e := range w.config {
		b.WriteString("\n" + lineConfig + e.topic + "\t" + e.key)
	}
	if b.Len() > maxPayload {
		return node + "\n" + lineAll
	}
	return b.String()
}

// parsePayload decodes a payload; all is set for "*".
func parsePayload(p string) (node string, w wakeSet, all bool) {
	lines := strings.Split(p, "\n")
	node = lines[0]
	for _, l := range lines[1:] {
		switch {
		case l == lineAll:
			all = true
		case strings.HasPrefix(l, lineMailbox):
			w.users = append(w.users, l[len(lineMailbox):])
		case strings.HasPrefix(l, lineConfig):
			topic, key, _ := strings.Cut(l[len(lineConfig):], "\t")
			w.config = append(w.config, configEvent{topic, key})
		}
	}
	return node, w, all
}

// feed is a Store's side of LISTEN/NOTIFY; nil on SQLite, where every
// writer is in this process (the CLI's writes are picked up by polling).
type feed struct {
	node    string // random id of this Store, to skip its own notifications
	channel string
	enabled bool // pg_notify works on this engine
}

// newFeed picks the channel for db's current schema (so installs, or
// tests, in different schemas of one database do not wake each other)
// and checks that the engine has pg_notify.
func newFeed(ctx context.Context, db *sql.DB, log *slog.Logger) (*feed, error) {
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("sqlstore: current schema: %w", err)
	}
	ch := "petrel_" + schema
	if len(ch) > 63 { // NAMEDATALEN - 1
		sum := sha256.Sum256([]byte(schema))
		ch = "petrel_" + hex.EncodeToString(sum[:12])
	}
	var id [8]byte
	rand.Read(id[:])
	f := &feed{node: hex.EncodeToString(id[:]), channel: ch, enabled: true}
	// An empty payload is ignored by every listener.
	if _, err := db.ExecContext(ctx, `SELECT pg_notify($1, '')`, ch); err != nil {
		log.Warn("LISTEN/NOTIFY unavailable: other nodes' changes are seen by polling", "err", err)
		f.enabled = false
	}
	return f, nil
}

// mustAnnounceInTx reports whether w is announced inside its transaction
// (announce) rather than after the commit (announceAfter): when it drops
// cached configuration, so that no node can miss a password change or a
// disabled account because this one died between COMMIT and NOTIFY.
// Mailbox changes are announced after: a node that misses one sees it at
// its next poll (IDLE polls every 500 ms).
func (w *wakeSet) mustAnnounceInTx() bool { return len(w.config) > 0 }

// announce sends w inside tx, before its COMMIT.
func (f *feed) announce(ctx context.Context, tx *sql.Tx, w *wakeSet) error {
	if f == nil || !f.enabled {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, f.channel, w.payload(f.node)); err != nil {
		return fmt.Errorf("sqlstore: notify: %w", mapErr(err))
	}
	return nil
}

// announceAfter sends w in a transaction of its own, after the change
// committed, with synchronous_commit off. PostgreSQL holds one lock per
// database from a notifying transaction's pre-commit until its commit
// record is written, and a synchronous commit waits for the WAL flush
// inside that lock: notifying from the delivery transaction itself made
// every node's commits, each with its own fsync, go one at a time
// (docs/benchmarks.md, "Several nodes on one PostgreSQL"). Here the lock
// covers only a commit record that is not waited for; the delivery's own
// flush runs beside other nodes'. A failure is logged: the other nodes
// then see the change at their next poll.
func (f *feed) announceAfter(ctx context.Context, db *sql.DB, w *wakeSet, log *slog.Logger) {
	if f == nil || !f.enabled {
		return
	}
	// The change has committed: a caller giving up now must not keep it
	// from being announced, and a stuck database must not hold the caller.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), announceWait)
	defer cancel()
	if _, err := db.ExecContext(ctx,
		`SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)`, f.channel, w.payload(f.node)); err != nil {
		log.Warn("notifying other nodes failed; they see the change at their next poll", "err", err)
	}
}

// listener holds the LISTEN connection of one node and feeds what other
// nodes announce into the Store's hub and config subscribers.
type listener struct {
	dsn  string
	f    *feed
	s    *Store
	log  *slog.Logger
	up   atomic.Bool
	stop context.CancelFunc
	done chan struct{}
	// channel is what the connection LISTENs on: f.channel (tests
	// point it elsewhere to stand for a proxy that drops notifications).
	channel string
	// probeWait bounds the wait for a probe's round trip.
	probeWait time.Duration
	probes    atomic.Uint64 // numbers the probes
	// first is closed when the first connection attempt is up or has
	// failed (Open waits for it, within listenStartWait).
	first     chan struct{}
	firstOnce sync.Once
}

// Listener timings: how long a LISTEN connection may be silent before
// it is checked with a query, and the reconnect back-off.
const (
	listenCheck      = 30 * time.Second
	listenRetryFirst = 100 * time.Millisecond
	listenRetryMax   = 5 * time.Second
	listenProbeWait  = 10 * time.Second
	// listenStartWait bounds Open's wait for the first LISTEN, so a
	// node normally starts realtime, and starts anyway (polling)
	// when LISTEN does not work.
	listenStartWait = 3 * time.Second
	// announceWait bounds announceAfter's NOTIFY.
	announceWait = 5 * time.Second
)

func startListener(s *Store, dsn string) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{dsn: dsn, f: s.feed, s: s, log: s.log, stop: cancel, done: make(chan struct{}),
		channel: s.feed.channel, probeWait: listenProbeWait, first: make(chan struct{})}
	go l.run(ctx)
	return l
}

// started closes first, once.
func (l *listener) started() {
	if l.first != nil {
		l.firstOnce.Do(func() { close(l.first) })
	}
}

// waitStarted waits for the first connection attempt, at most d.
func (l *listener) waitStarted(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.first:
	case <-t.C:
	}
}

func (l *listener) close() {
	if l == nil {
		return
	}
	l.stop()
	<-l.done
}

// run keeps one LISTEN connection up until ctx ends. After every
// reconnect it wakes all local watchers and config subscribers: changes
// announced while it was down were missed.
func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	wait := listenRetryFirst
	for again := false; ctx.Err() == nil; again = true {
		err := l.session(ctx, again, func() { wait = listenRetryFirst; l.started() })
		l.started()
		if l.up.Swap(false) {
			// IDLE sessions sleep on their watch channel while the
			// connection is up: wake them so they start polling.
			l.s.watchers.notifyAll()
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("LISTEN connection lost: polling until it is back", "err", err, "retry", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, listenRetryMax)
	}
}

func (l *listener) session(ctx context.Context, again bool, connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, l.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return err
	}
	// A LISTEN that succeeds is not yet proof that notifications
	// arrive (PgBouncer in transaction pooling hands the server
	// connection to someone else): only a probe's round trip through
	// the pool makes the node Realtime, and IDLE stop polling.
	if err := l.probe(ctx, conn); err != nil {
		return err
	}
	// Changes committed while no LISTEN was up (before the first one
	// too: sessions polled then) were missed: every counter moves and
	// every watcher wakes, so each session reads its mailbox once. That
	// happens before Realtime turns true, so a session that sees true
	// also sees the moved counter.
	l.s.watchers.notifyAll()
	if again {
		l.s.config.fire(configEvent{}) // everything may be stale
	}
	l.up.Store(true)
	connected()
	l.log.Info("listening for other nodes' changes", "channel", l.f.channel, "reconnect", again)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
				return err
			}
			// Silent for a while: make sure notifications still come.
			if err := l.probe(ctx, conn); err != nil {
				return err
			}
			continue
		}
		l.deliver(n.Payload)
	}
}

// probe sends a notification through the Store's pool and waits for it
// on conn, delivering other notifications that come first.
func (l *listener) probe(ctx context.Context, conn *pgx.Conn) error {
	token := fmt.Sprintf("%s\n?%d", l.f.node, l.probes.Add(1))
	if _, err := l.s.write.ExecContext(ctx, `SELECT pg_notify($1, $2)`, l.f.channel, token); err != nil {
		return fmt.Errorf("LISTEN probe: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, l.probeWait)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(pctx)
		if err != nil {
			return fmt.Errorf("LISTEN probe not heard back: %w", err)
		}
		if n.Payload == token {
			return nil
		}
		l.deliver(n.Payload)
	}
}

// deliver wakes local watchers for one notification from another node.
func (l *listener) deliver(payload string) {
	if payload == "" || strings.HasPrefix(payload, l.f.node+"\n") {
		return // this node woke its watchers after its own commit
	}
	_, w, all := parsePayload(payload)
	if all {
		l.s.watchers.notifyAll()
		l.s.config.fire(configEvent{})
		return
	}
	l.s.watchers.notify(w.users...)
	for _, e := range w.config {
		l.s.config.fire(e)
	}
}

// configSubs are the callbacks of OnConfigChange.
type configSubs struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(topic, key string)
}

func (c *configSubs) add(fn func(topic, key string)) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fns == nil {
		c.fns = map[int]func(topic, key string){}
	}
	id := c.next
	c.next++
	c.fns[id] = fn
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			delete(c.fns, id)
		})
	}
}

// fire calls every subscriber; the zero event means "anything may have
// changed" (topic "").
func (c *configSubs) fire(e configEvent) {
	c.mu.Lock()
	fns := make([]func(topic, key string), 0, len(c.fns))
	for _, fn := range c.fns {
		fns = append(fns, fn)
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(e.topic, e.key)
	}
}

// OnConfigChange calls fn after every committed change of cached
// configuration, made through this Store or (PostgreSQL with
// LISTEN/NOTIFY) by another node: topic is one of the Topic constants and
// key the user, domain... it concerns; topic "" means anything may have
// changed (after the LISTEN connection was re-established). fn must be
// quick and must not call the Store. The returned function unsubscribes.
func (s *Store) OnConfigChange(fn func(topic, key string)) (stop func()) {
	return s.config.add(fn)
}

// Realtime implements store.Realtime: whether other nodes' changes
// reach this Store's watchers as they commit: true on SQLite (one node)
// and on PostgreSQL while the LISTEN connection is up. Every change of
// the answer wakes all watchers (and the turn to true moves every
// ChangeVersion), so an IDLE session that sleeps while it is true never
// misses the moment it must poll.
func (s *Store) Realtime() bool {
	if s.listen == nil {
		return s.feed == nil
	}
	return s.listen.up.Load()
}
