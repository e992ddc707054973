package sqlstore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"
)

// Deleting a message does not release its body inline: the delete
// trigger only appends the body id to body_unref (migration 0095), so
// that an EXPUNGE of 20,000 messages deletes 20,000 narrow rows and
// does not rewrite 20,000 bodies (issue 19). releaseBodies applies those
// pending decrements in batches and deletes the bodies nothing uses any
// more; the blob files of deleted ones then go through blob_trash as
// before. It runs on the releaser goroutine after expunges and moves,
// inline after the rare admin deletes (a user, a mailbox, a domain) and
// from Maintain, which also picks up what another node or a crash left.

// releaseBatch is how many body_unref rows one transaction applies: the
// transaction holds the SQLite writer, so it stays short.
const releaseBatch = 2000

// releaseChunk bounds the bound parameters of one statement (SQLite
// allows 32766, PostgreSQL 65535).
const releaseChunk = 500

// releaseBodies applies every pending body_unref row and returns how
// many bodies it deleted. It does not remove blob files (emptyTrash).
func (s *Store) releaseBodies(ctx context.Context) (int, error) {
	return s.releaseBodiesUpTo(ctx, math.MaxInt64)
}

// releaseBodiesUpTo is releaseBodies for the body_unref rows up to seq
// upTo: the background releaser leaves the newer ones for their grace.
func (s *Store) releaseBodiesUpTo(ctx context.Context, upTo int64) (int, error) {
	s.releaseMu.Lock()
	defer s.releaseMu.Unlock()
	deleted := 0
	for {
		var n, d int
		err := s.retryTx(ctx, func(c conn) error {
			var err error
			n, d, err = releaseBatchTx(ctx, c, upTo)
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("sqlstore: release bodies: %w", err)
		}
		deleted += d
		if n < releaseBatch {
			return deleted, nil
		}
	}
}

// releaseBatchTx applies up to releaseBatch body_unref rows up to seq
// upTo: lowers each body's refs by its rows, deletes the bodies at zero
// (body_search rows cascade, blob names go to blob_trash) and removes the
// rows applied. It returns the rows applied and the bodies deleted.
func releaseBatchTx(ctx context.Context, c conn, upTo int64) (applied, deleted int, err error) {
	// Two nodes' releasers take different rows (PostgreSQL); SQLite has
	// one writer.
	lock := ""
	if c.d.name() == FlavorPostgreSQL {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	type pending struct{ seq, body int64 }
	rows, err := list(ctx, c, "read body_unref", func(sc interface{ Scan(...any) error }) (pending, error) {
		var p pending
		err := sc.Scan(&p.seq, &p.body)
		return p, err
	}, fmt.Sprintf(`SELECT seq, body_id FROM body_unref WHERE seq <= ? ORDER BY seq LIMIT %d`, releaseBatch)+lock, upTo)
	if err != nil || len(rows) == 0 {
		return 0, 0, err
	}
	// A body's rows in this batch become one decrement; bodies with the
	// same decrement (almost always 1) share one UPDATE.
	counts := make(map[int64]int64, len(rows))
	for _, r := range rows {
		counts[r.body]++
	}
	byCount := map[int64][]int64{}
	for id, n := range counts {
		byCount[n] = append(byCount[n], id)
	}
	var all []int64
	for n, ids := range byCount {
		slices.Sort(ids) // a stable lock order on PostgreSQL
		for chunk := range slices.Chunk(ids, releaseChunk) {
			args := make([]any, 0, len(chunk)+1)
			args = append(args, n)
			for _, id := range chunk {
				args = append(args, id)
			}
			if _, err := c.exec(ctx, `UPDATE body SET refs = refs - ? WHERE id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
				return 0, 0, fmt.Errorf("lower body refs: %w", mapErr(err))
			}
		}
		all = append(all, ids...)
	}
	slices.Sort(all)
	for chunk := range slices.Chunk(all, releaseChunk) {
		res, err := c.exec(ctx, `DELETE FROM body WHERE refs <= 0 AND id IN (`+placeholders(len(chunk))+`)`, int64Args(chunk)...)
		if err != nil {
			return 0, 0, fmt.Errorf("delete released bodies: %w", mapErr(err))
		}
		k, _ := res.RowsAffected()
		deleted += int(k)
	}
	seqs := make([]int64, len(rows))
	for i, r := range rows {
		seqs[i] = r.seq
	}
	for chunk := range slices.Chunk(seqs, releaseChunk) {
		if _, err := c.exec(ctx, `DELETE FROM body_unref WHERE seq IN (`+placeholders(len(chunk))+`)`, int64Args(chunk)...); err != nil {
			return 0, 0, fmt.Errorf("delete body_unref rows: %w", mapErr(err))
		}
	}
	return len(rows), deleted, nil
}

func int64Args(v []int64) []any {
	args := make([]any, len(v))
	for i, x := range v {
		args[i] = x
	}
	return args
}

// releaseNow releases pending bodies and removes their blob files before
// returning: for the admin deletes, whose callers expect the space back.
func (s *Store) releaseNow(ctx context.Context) {
	if _, err := s.releaseBodies(ctx); err != nil {
		s.log.Warn("release bodies", "err", err)
	}
	s.emptyTrash(ctx)
}

// releaser runs releaseBodies and emptyTrash off the IMAP path after
// expunges and moves, coalescing kicks that come while it works.
//
// It leaves each body for ReleaseGrace after its message went: a session
// that has not yet been told of an expunge done by another session still
// shows the message, and RFC 2180 4.1.1 prefers that its FETCH then gets
// the data rather than NO [EXPUNGEISSUED] (Dovecot answers from what it
// still has, too). So on a kick it notes the newest body_unref row, waits
// the grace and releases up to that row; rows that came meanwhile wait
// for the next round, which their own kick asked for. The hourly
// Maintain (CollectGarbage) keeps the grace the same way; only the admin
// deletes (releaseNow) release all that is pending at once.
type releaser struct {
	mark  func(ctx context.Context) (int64, error) // the newest body_unref seq
	run   func(ctx context.Context, upTo int64)
	grace time.Duration
	kick  chan struct{} // 1-buffered
	stop  chan struct{}
	done  chan struct{}
}

// DefaultReleaseGrace is Options.ReleaseGrace's default: long enough for
// the other sessions of a busy mailbox to hear of an expunge at their
// next command, short against the minutes before the disk space matters
// (the quota is given back at the expunge itself).
const DefaultReleaseGrace = 5 * time.Second

// releaseTimeout bounds one background release (a mailbox deleted by
// another node may leave hundreds of thousands of rows; the next kick or
// Maintain goes on where this one stopped).
const releaseTimeout = 10 * time.Minute

func newReleaser(s *Store, grace time.Duration) *releaser {
	r := &releaser{
		mark: s.newestUnref,
		run: func(ctx context.Context, upTo int64) {
			if _, err := s.releaseBodiesUpTo(ctx, upTo); err != nil {
				s.log.Warn("release bodies", "err", err)
			}
			s.emptyTrash(ctx)
		},
		grace: grace,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go r.loop(s.log)
	return r
}

// wake asks for a release soon; it never blocks.
func (r *releaser) wake() {
	if r == nil {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *releaser) loop(log *slog.Logger) {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel() // Close does not wait for a long release
		case <-r.done:
		}
	}()
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		upTo, err := r.mark(ctx)
		if err != nil {
			log.Warn("release bodies: reading body_unref", "err", err)
			upTo = 0 // Maintain releases them later
		}
		if r.grace > 0 {
			select {
			case <-r.stop:
				return
			case <-time.After(r.grace):
			}
		}
		rctx, rcancel := context.WithTimeout(ctx, releaseTimeout)
		r.run(rctx, upTo)
		rcancel()
		if ctx.Err() != nil {
			log.Debug("body release stopped by Close")
			return
		}
	}
}

// close stops the goroutine; pending rows stay for the next start.
func (r *releaser) close() {
	if r == nil {
		return
	}
	close(r.stop)
	<-r.done
}

// newestUnref returns the highest body_unref seq, 0 when there is none.
func (s *Store) newestUnref(ctx context.Context) (int64, error) {
	var seq int64
	err := s.readConn().queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM body_unref`).Scan(&seq)
	return seq, err
}
