package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// OrphanAge is how old an unreferenced blob file must be before
// CollectGarbage removes it: younger ones may belong to a delivery whose
// transaction has not committed yet.
const OrphanAge = time.Hour

const gcBatch = 200

// emptyTrash removes the blob files of deleted bodies (listed in
// blob_trash by a trigger) and then their trash rows. Failures are only
// logged: the delete that freed them has committed, and CollectGarbage
// retries.
func (s *Store) emptyTrash(ctx context.Context) int {
	removed := 0
	for {
		names, err := list(ctx, s.readConn(), "read blob trash", scanString,
			fmt.Sprintf(`SELECT name FROM blob_trash ORDER BY name LIMIT %d`, gcBatch))
		if err != nil {
			s.log.Warn("blob trash", "err", err)
			return removed
		}
		if len(names) == 0 {
			return removed
		}
		var done []any
		for _, n := range names {
			if err := s.removeBlob(ctx, n); err != nil {
				s.log.Warn("remove blob", "blob", n, "err", err)
				continue
			}
			done = append(done, n)
		}
		if len(done) == 0 {
			return removed
		}
		err = s.withTx(ctx, func(c conn) error {
			_, err := c.exec(ctx, `DELETE FROM blob_trash WHERE name IN (`+placeholders(len(done))+`)`, done...)
			return err
		})
		if err != nil {
			s.log.Warn("blob trash", "err", err)
			return removed
		}
		removed += len(done)
		if len(names) < gcBatch {
			return removed
		}
	}
}

// CollectGarbage removes blob files that no body row references: those of
// deleted bodies at once, and stray ones (a crash between writing a blob
// and committing its message, a failed group) once older than OrphanAge;
// it also removes abandoned temp files older than OrphanAge.
//
// Bodies of messages expunged within the release grace stay (the next
// run takes them): a session not yet told of the expunge may still FETCH
// them (see releaser). CollectGarbage notes the newest pending release,
// waits the grace and releases up to that one.
func (s *Store) CollectGarbage(ctx context.Context) error {
	upTo, err := s.newestUnref(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: collect garbage: %w", err)
	}
	if g := s.bodies.grace; g > 0 && upTo > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(g):
		}
	}
	if _, err := s.releaseBodiesUpTo(ctx, upTo); err != nil {
		return err
	}
	trashed := s.emptyTrash(ctx)
	cutoff := time.Now().Add(-OrphanAge)
	orphans, err := s.sweepUnreferenced(ctx, cutoff, s.blobs.Names, func(name string) error { return s.blobs.Remove(name) })
	if err != nil {
		return fmt.Errorf("sqlstore: collect garbage: %w", err)
	}
	temps, err := s.blobs.CleanTemp(ctx, OrphanAge)
	if err != nil {
		return fmt.Errorf("sqlstore: collect garbage: %w", err)
	}
	if s.objs != nil {
		n, err := s.sweepObjects(ctx, cutoff)
		if err != nil {
			return fmt.Errorf("sqlstore: collect garbage in the S3 bucket: %w", err)
		}
		orphans += n
	}
	if trashed+orphans+temps > 0 {
		s.log.Info("blob garbage collected", "deleted", trashed, "orphans", orphans, "temp", temps)
	}
	return nil
}

// sweepUnreferenced removes the stored bodies (blob files or bucket
// objects, listed by names) that were last modified before cutoff and
// that no body row names, in batches of gcBatch, and returns how many.
func (s *Store) sweepUnreferenced(ctx context.Context, cutoff time.Time,
	names func(context.Context, func(string, time.Time) error) error, remove func(string) error) (int, error) {
	var batch []string
	removed := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		args := make([]any, len(batch))
		for i, n := range batch {
			args[i] = n
		}
		used, err := list(ctx, s.readConn(), "sweep unreferenced bodies", scanString,
			`SELECT blob_name FROM body WHERE blob_name IS NOT NULL AND blob_name IN (`+placeholders(len(batch))+`)`, args...)
		if err != nil {
			return err
		}
		inUse := make(map[string]bool, len(used))
		for _, n := range used {
			inUse[n] = true
		}
		for _, n := range batch {
			if inUse[n] {
				continue
			}
			if err := remove(n); err != nil {
				return err
			}
			removed++
		}
		batch = batch[:0]
		return nil
	}
	err := names(ctx, func(name string, mod time.Time) error {
		if !mod.Before(cutoff) {
			return nil
		}
		batch = append(batch, name)
		if len(batch) == gcBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return removed, err
}

// placeholders returns "?, ?, ..." with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
