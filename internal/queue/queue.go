package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Store is what the worker needs from the store: the queue operations and
// the bodies (sqlstore.Store has both).
type Store interface {
	store.QueueStore
	OpenBody(ctx context.Context, bodyID int64) (io.ReadCloser, error)
}

// Bouncer hands a DSN on for delivery: msg is a complete message to be
// sent with the null envelope sender to rcpt. It returns only when the
// DSN is durable (delivered locally or queued), because the queue entry
// it reports on is deleted right after.
type Bouncer interface {
	Bounce(ctx context.Context, rcpt string, msg []byte) error
}

// Defaults for Options fields left zero.
const (
	DefaultLifetime = 5 * 24 * time.Hour // Postfix maximal_queue_lifetime
	// DefaultMaxConcurrent caps deliveries in progress in total (Postfix:
	// default_process_limit = 100 smtp(8) processes).
	DefaultMaxConcurrent = 100
	// DefaultMaxPerDestination caps deliveries in progress to one next
	// hop (Postfix: default_destination_concurrency_limit = 20, which
	// smtp_destination_concurrency_limit inherits). Mailu has no setting.
	DefaultMaxPerDestination = 20
	DefaultPollInterval      = time.Second
	DefaultLease             = 2 * time.Minute
	DefaultAttemptTimeout    = 30 * time.Minute
	DefaultShutdownGrace     = 10 * time.Second
)

// Options configures a Worker. Store, Transport, Bouncer and Hostname are
// required.
type Options struct {
	Store     Store
	Transport Transport
	Bouncer   Bouncer
	// Hostname is the first HOSTNAMES entry: Reporting-MTA of DSNs, which
	// come from MAILER-DAEMON@Hostname.
	Hostname string
	// Lifetime is how long an entry is retried before it expires and its
	// sender gets a DSN (QUEUE_LIFETIME). 0 means DefaultLifetime.
	Lifetime time.Duration
	// DelayWarning: a delay notice goes out once per entry still queued
	// this long after it was first queued (DELAY_WARNING_TIME). 0 = never.
	DelayWarning time.Duration
	// MaxConcurrent caps deliveries in progress in total; 0 means 100.
	MaxConcurrent int
	// MaxPerDestination caps deliveries in progress to one destination:
	// the next hop when the Transport is a NextHopper (all mail shares
	// RELAYHOST's slots), else the recipient domain; 0 means 20.
	MaxPerDestination int
	// PollInterval is how often the store is asked for due entries (other
	// processes, such as `petrel queue flush`, cannot Kick). 0 means 1s.
	PollInterval time.Duration
	// Backoff is the wait after the attempt-th failed attempt (1, 2, ...);
	// nil means DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Lease is how long a claimed entry stays reserved to this worker
	// without renewal; the worker renews it while it works, so a crashed
	// worker's entries are due again after at most this. 0 means 2m.
	Lease time.Duration
	// AttemptTimeout bounds one Transport.Deliver call; 0 means 30m.
	AttemptTimeout time.Duration
	// ShutdownGrace is how long attempts in progress may go on once Run's
	// context is done before they are cancelled; 0 means 10s, <0 none.
	ShutdownGrace time.Duration
	// RewriteSender, when set, rewrites the envelope sender of each
	// attempt (SRS for forwarded mail). The null sender is never rewritten;
	// DSNs still go to the original sender.
	RewriteSender func(ctx context.Context, sender string) (string, error)
	Logger        *slog.Logger     // nil discards
	Now           func() time.Time // nil means time.Now
	NewID         func() string    // DSN ids; nil means random hex
}

// DefaultBackoff waits 5, 10, 20 and 40 minutes, then 70 minutes between
// attempts (Postfix: minimal_backoff_time 300s doubling up to
// maximal_backoff_time 4000s, here rounded to 70m).
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 4 {
		return 70 * time.Minute
	}
	return 5 * time.Minute << (attempt - 1)
}

// Worker delivers the outbound queue. It is safe to run several, in one
// process or on several nodes sharing a database: leases keep them from
// sending the same entry twice.
type Worker struct {
	o        Options
	log      *slog.Logger
	owner    string // lease owner: unique per Worker
	maxRows  int    // claimed entries not finished yet, at most
	kick     chan struct{}
	freed    chan struct{}
	global   chan struct{}
	commits  chan *commitReq
	running  atomic.Bool
	pending  atomic.Int64 // claimed entries not finished
	waiting  atomic.Int64 // claimed groups waiting for their slots
	claims   atomic.Int64 // claims started
	idleAt   atomic.Int64 // number of the last claim that found nothing (tests)
	mu       sync.Mutex
	dests    map[string]*destSlots
	attempts sync.WaitGroup
	runMu    sync.Mutex
	runs     map[*leased]struct{} // claimed groups not finished
}

// New checks o, fills in defaults and returns a Worker ready to Run.
func New(o Options) (*Worker, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("queue: Options.Store is required")
	case o.Transport == nil:
		return nil, errors.New("queue: Options.Transport is required")
	case o.Bouncer == nil:
		return nil, errors.New("queue: Options.Bouncer is required")
	case o.Hostname == "":
		return nil, errors.New("queue: Options.Hostname is required")
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.DelayWarning < 0 {
		o.DelayWarning = 0
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxPerDestination <= 0 {
		o.MaxPerDestination = DefaultMaxPerDestination
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = randomID
	}
	return &Worker{
		o:     o,
		log:   o.Logger,
		owner: o.Hostname + "/" + randomID(),
		// Enough claimed ahead that one busy destination does not starve
		// the others, few enough that leases stay cheap to renew.
		maxRows: max(100, 10*o.MaxConcurrent),
		kick:    make(chan struct{}, 1),
		freed:   make(chan struct{}, 1),
		global:  make(chan struct{}, o.MaxConcurrent),
		commits: make(chan *commitReq, o.MaxConcurrent),
		dests:   map[string]*destSlots{},
		runs:    map[*leased]struct{}{},
	}, nil
}

func randomID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Kick makes the worker look for due entries now (after a submission, or
// a flush in this process) instead of at the next poll.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers due entries until ctx is done. Then it claims nothing
// more, lets attempts in progress finish for up to ShutdownGrace,
// cancels the rest (their entries are released for the next run, with no
// attempt counted), records every outcome, and returns nil. Store errors
// are logged and retried at the next poll.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("queue: Run called twice")
	}

	// Attempts outlive ctx by the grace period; bookkeeping outlives both.
	bg := context.WithoutCancel(ctx)
	attemptCtx, cancelAttempts := context.WithCancel(bg)
	defer cancelAttempts()
	stopGrace := context.AfterFunc(ctx, func() {
		if w.o.ShutdownGrace < 0 {
			cancelAttempts()
			return
		}
		t := time.AfterFunc(w.o.ShutdownGrace, cancelAttempts)
		context.AfterFunc(attemptCtx, func() { t.Stop() })
	})
	defer stopGrace()

	committed := make(chan struct{})
	go func() { defer close(committed); w.committer(bg) }()
	renewCtx, stopRenew := context.WithCancel(bg)
	renewed := make(chan struct{})
	go func() { defer close(renewed); w.renewLeases(renewCtx) }()

	poll := time.NewTimer(0)
	defer poll.Stop()
	minRoom := 1
	for ctx.Err() == nil {
		if w.claim(ctx, attemptCtx, minRoom) {
			continue
		}
		poll.Reset(w.o.PollInterval)
		minRoom = 1
		select {
		case <-ctx.Done():
		case <-w.kick:
			if w.waiting.Load() >= int64(w.o.MaxConcurrent) {
				// A full round of claimed work already waits for slots:
				// new mail waits behind it anyway, so claim it in bulk
				// when room frees up instead of one small write
				// transaction (an fsync) per submission.
				minRoom = w.maxRows / 2
			}
		case <-w.freed:
			// Top up in large claims, not one per finished attempt:
			// each claim is a write transaction.
			minRoom = w.maxRows / 2
		case <-poll.C:
		}
	}
	w.attempts.Wait()
	// Connections kept open for the next message have no next message.
	if ic, ok := w.o.Transport.(idleCloser); ok {
		ic.CloseIdleConnections()
	}
	stopRenew()
	<-renewed
	close(w.commits)
	<-committed
	return nil
}

// claim leases due entries and starts their attempts, if there is room
// for at least minRoom more. It reports whether there may be more due
// right now.
func (w *Worker) claim(ctx, attemptCtx context.Context, minRoom int) bool {
	room := w.maxRows - int(w.pending.Load())
	if room <= 0 || room < minRoom {
		return false
	}
	seq := w.claims.Add(1)
	now := w.o.Now()
	leasedAt := time.Now() // the lease runs from no earlier than this
	items, err := w.o.Store.ClaimQueue(ctx, w.owner, now, w.o.Lease, room)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("queue: claim failed", "err", err)
		}
		return false
	}
	if len(items) == 0 {
		w.idleAt.Store(seq)
		return false
	}
	hops := map[string]string{} // recipient domain -> next hop, this claim
	for _, g := range groupItems(items) {
		g.hop = w.nextHop(ctx, g.dest, hops)
		w.pending.Add(int64(len(g.items)))
		w.waiting.Add(1)
		w.attempts.Add(1)
		actx, r := w.track(attemptCtx, g.items, leasedAt)
		go w.runGroup(ctx, actx, g, r)
	}
	return len(items) == room
}

// group is the entries of one message for one destination domain: one
// Transport call carries them all.
type group struct {
	dest  string // recipient domain
	hop   string // the destination whose concurrency limit applies
	items []store.QueueItem
}

// nextHop is the concurrency key of a recipient domain: the Transport's
// next hop when it can tell (Postfix limits concurrency per nexthop, so
// every domain sent through RELAYHOST shares its limit), else the domain.
// memo keeps one answer per domain for the claim in progress.
func (w *Worker) nextHop(ctx context.Context, domain string, memo map[string]string) string {
	nh, ok := w.o.Transport.(NextHopper)
	if !ok {
		return domain
	}
	if hop, ok := memo[domain]; ok {
		return hop
	}
	hop := nh.NextHop(ctx, domain)
	if hop == "" {
		hop = domain
	}
	memo[domain] = hop
	return hop
}

type groupKey struct {
	msgID  string
	bodyID int64
	sender string
	dest   string
}

// groupItems groups claimed entries by message and recipient domain,
// keeping the claim order.
func groupItems(items []store.QueueItem) []*group {
	var out []*group
	idx := map[groupKey]*group{}
	for _, it := range items {
		k := groupKey{it.MessageID, it.BodyID, it.Sender, domainOf(it.Recipient)}
		g := idx[k]
		if g == nil {
			g = &group{dest: k.dest}
			idx[k] = g
			out = append(out, g)
		}
		g.items = append(g.items, it)
	}
	return out
}

// domainOf is the lower-cased domain of an address: the destination that
// limits concurrency.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// destSlots limits attempts to one destination.
type destSlots struct {
	ch    chan struct{}
	users int
}

// acquire waits for a slot for dest and then a global one; the returned
// function gives both back.
func (w *Worker) acquire(ctx context.Context, dest string) (func(), error) {
	w.mu.Lock()
	d := w.dests[dest]
	if d == nil {
		d = &destSlots{ch: make(chan struct{}, w.o.MaxPerDestination)}
		w.dests[dest] = d
	}
	d.users++
	w.mu.Unlock()
	drop := func() {
		w.mu.Lock()
		if d.users--; d.users == 0 {
			delete(w.dests, dest)
		}
		w.mu.Unlock()
	}
	select {
	case d.ch <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	select {
	case w.global <- struct{}{}:
	case <-ctx.Done():
		<-d.ch
		drop()
		return nil, ctx.Err()
	}
	return func() {
		<-w.global
		<-d.ch
		drop()
	}, nil
}

// errLeaseLost cancels an attempt whose entries may be leased to another
// worker by now: its lease renewal failed for too long, or the renewal
// showed another worker took them.
var errLeaseLost = errors.New("queue: lease lost")

// leased is one claimed group's hold on its entries: the attempt's
// context is cancelled (errLeaseLost) when the lease may be gone.
type leased struct {
	ids      []int64
	leasedAt time.Time // start of the claim or renewal that last set the lease
	cancel   context.CancelCauseFunc
	timer    *time.Timer
}

// leaseSafe is how long after its last claim or renewal began an attempt
// may go on: short of the lease, so that it stops before another node
// can claim the entries (the database times the lease; only durations
// are measured here, so clock skew between nodes does not matter).
func (w *Worker) leaseSafe() time.Duration { return w.o.Lease * 5 / 6 }

// track registers a claimed group and returns its attempt context.
func (w *Worker) track(parent context.Context, items []store.QueueItem, leasedAt time.Time) (context.Context, *leased) {
	ctx, cancel := context.WithCancelCause(parent)
	r := &leased{leasedAt: leasedAt, cancel: cancel}
	for _, it := range items {
		r.ids = append(r.ids, it.ID)
	}
	r.timer = time.AfterFunc(time.Until(leasedAt.Add(w.leaseSafe())), func() { cancel(errLeaseLost) })
	w.runMu.Lock()
	w.runs[r] = struct{}{}
	w.runMu.Unlock()
	return ctx, r
}

func (w *Worker) untrack(r *leased) {
	r.timer.Stop()
	r.cancel(nil)
	w.runMu.Lock()
	delete(w.runs, r)
	w.runMu.Unlock()
}

// runGroup waits for its slots, makes the attempt and records it.
func (w *Worker) runGroup(ctx, attemptCtx context.Context, g *group, r *leased) {
	defer w.untrack(r)
	defer func() {
		w.pending.Add(-int64(len(g.items)))
		select {
		case w.freed <- struct{}{}:
		default:
		}
		w.attempts.Done()
	}()
	// Waiting for slots ends with shutdown (ctx) or a lost lease.
	wctx, cancelWait := context.WithCancel(ctx)
	stopWait := context.AfterFunc(attemptCtx, cancelWait)
	release, err := w.acquire(wctx, g.hop)
	stopWait()
	cancelWait()
	w.waiting.Add(-1)
	if err != nil {
		// Shutting down before the attempt started: leave the entries
		// for the next run.
		w.releaseLeases(context.WithoutCancel(ctx), g.items)
		return
	}
	defer release()
	w.attempt(ctx, attemptCtx, g)
}

func (w *Worker) releaseLeases(ctx context.Context, items []store.QueueItem) {
	if len(items) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	if err := w.o.Store.ReleaseQueueLeases(ctx, w.owner, ids); err != nil {
		w.log.Warn("queue: release leases", "err", err)
	}
}

// renewLeases keeps this worker's leases alive while it has entries.
func (w *Worker) renewLeases(ctx context.Context) {
	t := time.NewTicker(w.o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.pending.Load() == 0 {
			continue
		}
		start := time.Now()
		held, err := w.o.Store.RenewQueueLeases(ctx, w.owner, w.o.Lease)
		if err != nil {
			// The attempts' timers stop them before the leases can
			// run out, unless a later renewal succeeds.
			if ctx.Err() == nil {
				w.log.Warn("queue: renew leases", "err", err)
			}
			continue
		}
		w.renewed(start, held)
	}
}

// renewed applies a successful renewal that began at start: attempts
// whose entries are all still held get more time; any other attempt
// claimed before start lost its entries to another worker and stops.
func (w *Worker) renewed(start time.Time, held []int64) {
	set := make(map[int64]bool, len(held))
	for _, id := range held {
		set[id] = true
	}
	w.runMu.Lock()
	defer w.runMu.Unlock()
	for r := range w.runs {
		if !r.leasedAt.Before(start) {
			continue // claimed during the renewal: its own lease is fresh
		}
		lost := false
		for _, id := range r.ids {
			lost = lost || !set[id]
		}
		if lost {
			w.log.Warn("queue: lease lost to another worker; attempt stopped", "entries", len(r.ids))
			r.cancel(errLeaseLost)
			continue
		}
		r.leasedAt = start
		r.timer.Reset(time.Until(start.Add(w.leaseSafe())))
	}
}

// commitReq is one attempt's outcomes waiting for the committer.
type commitReq struct {
	ups  []store.QueueUpdate
	done chan error
}

// record stores outcomes through the committer, which gathers the
// outcomes waiting at that moment into one transaction (one fsync).
func (w *Worker) record(ups []store.QueueUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	r := &commitReq{ups: ups, done: make(chan error, 1)}
	w.commits <- r
	return <-r.done
}

func (w *Worker) committer(ctx context.Context) {
	const maxBatch = 256
	for r := range w.commits {
		batch := []*commitReq{r}
		n := len(r.ups)
	gather:
		for n < maxBatch {
			select {
			case r2, ok := <-w.commits:
				if !ok {
					break gather
				}
				batch = append(batch, r2)
				n += len(r2.ups)
			default:
				break gather
			}
		}
		ups := make([]store.QueueUpdate, 0, n)
		for _, r := range batch {
			ups = append(ups, r.ups...)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := w.o.Store.UpdateQueue(cctx, w.owner, ups)
		cancel()
		for _, r := range batch {
			r.done <- err
		}
	}
}
