package sqlstore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// The web admin's store (store.Web) on SQLite and, with
// PETREL_TEST_PG_DSN, on PostgreSQL.
func TestWebSessions(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		ctx := t.Context()
		autoReplyUser(t, s, "alice", "bob")
		t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		mk := func(id, user string, remember bool, seen time.Time) {
			t.Helper()
			err := s.CreateWebSession(ctx, &store.WebSession{ID: id, UserEmail: user, CSRF: "c-" + id, Remember: remember,
				CreatedAt: t0, SeenAt: seen, ExpiresAt: t0.Add(30 * 24 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
		}
		mk("a1", "alice@example.com", false, t0)
		mk("a2", "alice@example.com", true, t0)
		mk("b1", "bob@example.com", false, t0.Add(2*time.Hour))
		if err := s.CreateWebSession(ctx, &store.WebSession{ID: "x", UserEmail: "ghost@example.com", CreatedAt: t0, SeenAt: t0, ExpiresAt: t0}); err == nil {
			t.Fatal("session of an unknown user accepted")
		}
		got, err := s.GetWebSession(ctx, "a2")
		if err != nil || got.UserEmail != "alice@example.com" || got.CSRF != "c-a2" || !got.Remember || !got.SeenAt.Equal(t0) || got.Stage != "" {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := s.GetWebSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
		if err := s.TouchWebSession(ctx, "a1", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetWebSessionStage(ctx, "a1", "totp"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetWebSession(ctx, "a1"); got.Stage != "totp" || !got.SeenAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("touch/stage: %+v", got)
		}
		if err := s.TouchWebSession(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("touch unknown: %v", err)
		}
		// Idle sessions go, remembered ones stay until they expire.
		n, err := s.PruneWebSessions(ctx, t0.Add(3*time.Hour), t0.Add(90*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("prune: %d %v", n, err)
		}
		if _, err := s.GetWebSession(ctx, "a2"); err != nil {
			t.Fatal("remembered session pruned for idleness")
		}
		if n, _ := s.PruneWebSessions(ctx, t0.Add(31*24*time.Hour), t0); n != 2 {
			t.Fatalf("expired sessions pruned: %d", n)
		}
		mk("a3", "alice@example.com", false, t0)
		mk("a4", "alice@example.com", false, t0)
		mk("b2", "bob@example.com", false, t0)
		if err := s.DeleteUserWebSessions(ctx, "alice@example.com", "a4"); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{"a3": false, "a4": true, "b2": true} {
			if _, err := s.GetWebSession(ctx, id); (err == nil) != want {
				t.Fatalf("%s after DeleteUserWebSessions: %v", id, err)
			}
		}
		// A deleted user's sessions go with it.
		if err := s.DeleteUser(ctx, "bob@example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWebSession(ctx, "b2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session outlived its user: %v", err)
		}
		if err := s.DeleteWebSession(ctx, "a4"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWebSession(ctx, "a4"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestWebTOTP(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		ctx := t.Context()
		autoReplyUser(t, s, "alice")
		if _, err := s.GetTOTP(ctx, "alice@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("no totp yet: %v", err)
		}
		if err := s.SetTOTP(ctx, &store.TOTP{UserEmail: "alice@example.com", Secret: "S1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTOTP(ctx, &store.TOTP{UserEmail: "alice@example.com", Secret: "S2", Enabled: true, LastStep: 100}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetTOTP(ctx, "alice@example.com")
		if err != nil || got.Secret != "S2" || !got.Enabled || got.LastStep != 100 {
			t.Fatalf("totp %+v %v", got, err)
		}
		// Of concurrent uses of one step exactly one wins; older steps lose.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.UseTOTPStep(ctx, "alice@example.com", 101)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent uses of one code won", wins.Load())
		}
		if ok, _ := s.UseTOTPStep(ctx, "alice@example.com", 99); ok {
			t.Fatal("an older step was accepted")
		}
		// Wrong codes count in a window that starts anew after it ends.
		t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		for i, at := range []time.Duration{0, 10 * time.Minute, 59 * time.Minute, 61 * time.Minute, 62 * time.Minute} {
			n, err := s.TOTPFailed(ctx, "alice@example.com", t0.Add(at), time.Hour)
			want := []int{1, 2, 3, 1, 2}[i]
			if err != nil || n != want {
				t.Fatalf("failure %d: %d %v, want %d", i, n, err, want)
			}
		}
		if got, _ := s.GetTOTP(ctx, "alice@example.com"); got.Failures != 2 || !got.FailedAt.Equal(t0.Add(61*time.Minute)) {
			t.Fatalf("failures %+v", got)
		}
		if ok, _ := s.UseTOTPStep(ctx, "alice@example.com", 102); !ok {
			t.Fatal("step 102 refused")
		}
		if got, _ := s.GetTOTP(ctx, "alice@example.com"); got.Failures != 0 {
			t.Fatalf("a used step did not clear the failures: %d", got.Failures)
		}
		if _, err := s.TOTPFailed(ctx, "nobody@example.com", t0, time.Hour); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("failure of a user without totp: %v", err)
		}
		if err := s.DeleteTOTP(ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTOTP(ctx, "alice@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestWebPagesStatsQueue(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		ctx := t.Context()
		if err := s.CreateDomain(ctx, &store.Domain{Name: "b.example", MaxUsers: -1, MaxAliases: -1}); err != nil {
			t.Fatal(err)
		}
		var names []string
		for i := 0; i < 25; i++ {
			names = append(names, fmt.Sprintf("u%02d", i))
		}
		names = append(names, "x_y", "x%z", "xay")
		autoReplyUser(t, s, names...)
		u := store.NewUser("other", "b.example", 0, 80)
		u.GlobalAdmin = true
		if err := s.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
		page, err := s.ListUsersPage(ctx, "example.com", "", "", 10)
		if err != nil || len(page) != 10 || page[0].Email != "u00@example.com" || page[9].Email != "u09@example.com" {
			t.Fatalf("first page: %d %v", len(page), err)
		}
		page, _ = s.ListUsersPage(ctx, "example.com", "", page[9].Email, 10)
		if len(page) != 10 || page[0].Email != "u10@example.com" {
			t.Fatalf("second page: %+v", page)
		}
		page, _ = s.ListUsersPage(ctx, "example.com", "U1", "", 100)
		if len(page) != 10 || page[0].Email != "u10@example.com" {
			t.Fatalf("prefix U1: %d", len(page))
		}
		// _ and % in the prefix are literal.
		page, _ = s.ListUsersPage(ctx, "example.com", "x_", "", 100)
		if len(page) != 1 || page[0].Email != "x_y@example.com" {
			t.Fatalf("prefix x_: %+v", emails(page))
		}
		page, _ = s.ListUsersPage(ctx, "", "", "", 1000)
		if len(page) != 29 {
			t.Fatalf("all users: %d", len(page))
		}
		if _, err := s.ListUsersPage(ctx, "", "", "", 0); err == nil {
			t.Fatal("limit 0 accepted")
		}
		if err := s.CreateAlias(ctx, &store.Alias{Localpart: "al", DomainName: "example.com", Destination: []string{"u00@example.com"}}); err != nil {
			t.Fatal(err)
		}
		if as, err := s.ListAliasesPage(ctx, "example.com", "a", "", 10); err != nil || len(as) != 1 {
			t.Fatalf("aliases page: %v %v", as, err)
		}
		if ad, err := s.ListGlobalAdmins(ctx); err != nil || strings.Join(ad, ",") != "other@b.example" {
			t.Fatalf("admins %v %v", ad, err)
		}
		h := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		if err := s.AddStats(ctx, []store.StatDelta{{Name: "d", Hour: h.Add(17 * time.Minute), N: 2}, {Name: "d", Hour: h.Add(time.Hour), N: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddStats(ctx, []store.StatDelta{{Name: "d", Hour: h, N: 5}}); err != nil {
			t.Fatal(err)
		}
		pts, err := s.Stats(ctx, "d", h)
		if err != nil || len(pts) != 2 || pts[0].N != 7 || !pts[0].Hour.Equal(h) || pts[1].N != 1 {
			t.Fatalf("stats %+v %v", pts, err)
		}
		q, err := s.QueueSummary(ctx)
		if err != nil || q.Entries != 0 || !q.Oldest.IsZero() {
			t.Fatalf("empty queue summary %+v %v", q, err)
		}
		before := time.Now().Add(-time.Second)
		items := queueMsg(t, s, "m1", "a@example.com", []byte("body"), "x@remote.example", "y@remote.example")
		queueMsg(t, s, "m2", "a@example.com", []byte("body2"), "z@remote.example")
		if err := s.SetQueueHeld(ctx, items[0].ID, true); err != nil {
			t.Fatal(err)
		}
		q, err = s.QueueSummary(ctx)
		if err != nil || q.Entries != 3 || q.Held != 1 || q.Oldest.Before(before) || q.Oldest.After(time.Now()) {
			t.Fatalf("queue summary %+v %v", q, err)
		}
	})
}

func emails(us []store.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Email
	}
	return out
}
