package sqlstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

func autoReplyUser(t *testing.T, s *Store, emails ...string) {
	t.Helper()
	if err := s.CreateDomain(t.Context(), &store.Domain{Name: "example.com", MaxUsers: -1, MaxAliases: -1}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	for _, e := range emails {
		u := store.NewUser(e, "example.com", 0, 80)
		if err := s.CreateUser(t.Context(), &u); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAutoReplyClaim(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		autoReplyUser(t, s, "alice", "bob")
		ctx := t.Context()
		day := 24 * time.Hour
		t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
		steps := []struct {
			name         string
			user, sender string
			handle       string
			at           time.Time
			want         bool
		}{
			{"first reply", "alice@example.com", "x@remote.test", "h1", t0, true},
			{"same day", "alice@example.com", "x@remote.test", "h1", t0.Add(time.Hour), false},
			{"just before the period ends", "alice@example.com", "x@remote.test", "h1", t0.Add(day - time.Microsecond), false},
			{"other sender", "alice@example.com", "y@remote.test", "h1", t0.Add(time.Hour), true},
			{"other user", "bob@example.com", "x@remote.test", "h1", t0.Add(time.Hour), true},
			{"a period later", "alice@example.com", "x@remote.test", "h1", t0.Add(day), true},
			{"counted from the last reply", "alice@example.com", "x@remote.test", "h1", t0.Add(day + time.Hour), false},
			{"reply text changed", "alice@example.com", "x@remote.test", "h2", t0.Add(day + 2*time.Hour), true},
			{"changed text counts as a reply", "alice@example.com", "x@remote.test", "h2", t0.Add(day + 3*time.Hour), false},
		}
		for _, st := range steps {
			got, err := s.ClaimAutoReply(ctx, st.user, st.sender, st.handle, st.at, day)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if got != st.want {
				t.Fatalf("%s: ClaimAutoReply = %v, want %v", st.name, got, st.want)
			}
		}

		if _, err := s.ClaimAutoReply(ctx, "nobody@example.com", "x@remote.test", "h", t0, day); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("claim for a missing user: %v, want ErrNotFound", err)
		}
		if _, err := s.ClaimAutoReply(ctx, "alice@example.com", "", "h", t0, day); err == nil {
			t.Fatal("claim with an empty sender succeeded")
		}

		// Rows: alice/x at t0+day+2h, alice/y and bob/x at t0+1h.
		n, err := s.PruneAutoReplies(ctx, t0.Add(2*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("PruneAutoReplies = %d, %v; want 2", n, err)
		}
		// A pruned pair is due again at once; the kept one is not.
		if got, _ := s.ClaimAutoReply(ctx, "bob@example.com", "x@remote.test", "h1", t0.Add(3*time.Hour), day); !got {
			t.Error("pruned pair not due again")
		}
		if got, _ := s.ClaimAutoReply(ctx, "alice@example.com", "x@remote.test", "h2", t0.Add(day+4*time.Hour), day); got {
			t.Error("kept pair due again after the prune")
		}

		// The rows go with their user.
		if err := s.DeleteUser(ctx, "bob@example.com"); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM autoreply_sent WHERE user_email = ?`, "bob@example.com").Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d rows (%v) of a deleted user left", left, err)
		}
	})
}

// TestAutoReplyClaimConcurrent: many claims for the same pair at the same
// moment (several SMTP sessions, several nodes): exactly one is due.
func TestAutoReplyClaimConcurrent(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		other := open() // a second handle on the same database: another node
		autoReplyUser(t, s, "alice")
		now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
		for round := 0; round < 3; round++ {
			sender := fmt.Sprintf("s%d@remote.test", round)
			var due atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := 0; i < 16; i++ {
				st := s
				if i%2 == 1 {
					st = other
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := st.ClaimAutoReply(t.Context(), "alice@example.com", sender, "h", now, 24*time.Hour)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						due.Add(1)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n := due.Load(); n != 1 {
				t.Fatalf("round %d: %d of 16 concurrent claims were due, want exactly 1", round, n)
			}
		}
	})
}
