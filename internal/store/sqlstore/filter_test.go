package sqlstore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// FilterStore on both dialects: greylist upserts and expiry, classifier
// counts accumulate, a big token list crosses the IN-list chunks, and a
// user's counts go with the user.
func TestFilterStore(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		ctx := t.Context()
		autoReplyUser(t, s, "alice", "bob")
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

		if err := s.GreylistPut(ctx, []store.GreylistEntry{{Key: "k1", FirstSeen: t0, LastSeen: t0}, {Key: "k2", FirstSeen: t0, LastSeen: t0}}); err != nil {
			t.Fatal(err)
		}
		// Two nodes record the same triplet: the second is an update.
		if err := s.GreylistPut(ctx, []store.GreylistEntry{{Key: "k1", FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(6 * time.Minute), Passed: true}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GreylistGet(ctx, []string{"k1", "k2", "nope"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got["k1"].Passed || !got["k1"].FirstSeen.Equal(t0) || !got["k1"].LastSeen.Equal(t0.Add(6*time.Minute)) || got["k2"].Passed {
			t.Fatalf("greylist = %+v", got)
		}
		n, err := s.GreylistExpire(ctx, t0.Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("expire: %d %v", n, err)
		}
		if got, _ := s.GreylistGet(ctx, []string{"k1", "k2"}); len(got) != 1 {
			t.Errorf("after expiry: %+v", got)
		}

		var many []string
		for i := range 1000 {
			many = append(many, fmt.Sprintf("tok%04d", i))
		}
		if err := s.JunkTrain(ctx, "alice@example.com", many, true); err != nil {
			t.Fatal(err)
		}
		if err := s.JunkTrain(ctx, "alice@example.com", []string{"tok0001", "hello"}, false); err != nil {
			t.Fatal(err)
		}
		if err := s.JunkTrain(ctx, "alice@example.com", []string{"tok0001"}, true); err != nil {
			t.Fatal(err)
		}
		tot, err := s.JunkTotals(ctx, []string{"alice@example.com", "bob@example.com"})
		if err != nil || len(tot) != 1 || tot["alice@example.com"] != (store.JunkCounts{Spam: 2, Ham: 1}) {
			t.Fatalf("totals = %+v %v", tot, err)
		}
		toks, err := s.JunkTokens(ctx, "alice@example.com", append([]string{"hello", "unknown"}, many...))
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 1001 || toks["tok0001"] != (store.JunkCounts{Spam: 2, Ham: 1}) || toks["hello"] != (store.JunkCounts{Ham: 1}) || toks["tok0999"] != (store.JunkCounts{Spam: 1}) {
			t.Errorf("tokens: %d, tok0001 %+v hello %+v", len(toks), toks["tok0001"], toks["hello"])
		}
		if b, _ := s.JunkTokens(ctx, "bob@example.com", []string{"hello"}); len(b) != 0 {
			t.Errorf("bob sees alice's tokens: %v", b)
		}
		if err := s.JunkTrain(ctx, "nobody@example.com", []string{"x"}, true); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown user: %v", err)
		}
		if err := s.DeleteUser(ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		if tot, _ := s.JunkTotals(ctx, []string{"alice@example.com"}); len(tot) != 0 {
			t.Errorf("totals survive the user: %v", tot)
		}
	})
}
