// Package stats keeps the hourly event counters behind the web UI's status
// page (deliveries, rejections, failed logins). Events are counted in
// memory and added to the store every few seconds in one transaction, so
// counting costs no database write per event and every node sharing the
// database adds to the same rows.
package stats

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Counter names (the status page's charts).
const (
	Delivered  = "delivered"   // local mailbox deliveries (one per recipient mailbox)
	Rejected   = "rejected"    // SMTP policy refusals
	AuthFailed = "auth_failed" // refused logins, every protocol
)

// Sink is where counts go; store.Web has these methods.
type Sink interface {
	AddStats(ctx context.Context, ds []store.StatDelta) error
	PruneStats(ctx context.Context, before time.Time) error
}

// Keep is how long hourly counts are kept.
const Keep = 8 * 24 * time.Hour

// Recorder counts events per name and hour. The zero value is not usable;
// a nil *Recorder counts nothing.
type Recorder struct {
	sink Sink
	log  *slog.Logger
	now  func() time.Time

	mu        sync.Mutex
	pending   map[key]int64
	lastPrune time.Time
}

type key struct {
	name string
	hour time.Time
}

// New returns a Recorder writing to sink. now nil = time.Now.
func New(sink Sink, log *slog.Logger, now func() time.Time) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{sink: sink, log: log, now: now, pending: map[key]int64{}}
}

// Add counts n events of name in the current hour.
func (r *Recorder) Add(name string, n int) {
	if r == nil || n <= 0 {
		return
	}
	k := key{name, r.now().UTC().Truncate(time.Hour)}
	r.mu.Lock()
	r.pending[k] += int64(n)
	r.mu.Unlock()
}

// Count counts one event of name.
func (r *Recorder) Count(name string) { r.Add(name, 1) }

// Flush writes what was counted. On failure the counts are kept for the
// next flush (at most a day's worth of keys stays in memory anyway).
func (r *Recorder) Flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	batch := r.pending
	r.pending = map[key]int64{}
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ds := make([]store.StatDelta, 0, len(batch))
	for k, n := range batch {
		ds = append(ds, store.StatDelta{Name: k.name, Hour: k.hour, N: n})
	}
	if err := r.sink.AddStats(ctx, ds); err != nil {
		r.mu.Lock()
		for k, n := range batch {
			r.pending[k] += n
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more, and prunes
// counts older than Keep once a day.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	if r == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.Flush(fctx); err != nil {
				r.log.Warn("event counters not saved at shutdown", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil {
				r.log.Warn("event counters not saved; retrying", "err", err)
			}
			r.prune(ctx)
		}
	}
}

func (r *Recorder) prune(ctx context.Context) {
	now := r.now()
	if now.Sub(r.lastPrune) < 24*time.Hour {
		return
	}
	r.lastPrune = now
	if err := r.sink.PruneStats(ctx, now.Add(-Keep)); err != nil {
		r.log.Warn("old event counters not pruned", "err", err)
	}
}
