package sqlstore

import (
	"testing"
)

// TestClaimRecent: each claim hands out the UIDs above the previous one
// once, and the relaxed commit leaves SQLite's writer at synchronous=FULL
// for every later transaction.
func TestClaimRecent(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		inbox := box(t, s, "INBOX")
		uid1 := add(t, s, "INBOX", []byte("Subject: a\r\n\r\nA\r\n"))
		uid2 := add(t, s, "INBOX", []byte("Subject: b\r\n\r\nB\r\n"))
		// upTo is exclusive: the claim covers [from, upTo)
		from, err := s.ClaimRecent(ctx, inbox.ID, uid2+1)
		must(t, err)
		if from > uid1 {
			t.Fatalf("first claim from %d, want at most %d", from, uid1)
		}
		if from, err = s.ClaimRecent(ctx, inbox.ID, uid2+1); err != nil || from != uid2+1 {
			t.Fatalf("second claim: from %d err %v, want %d (nothing left)", from, err, uid2+1)
		}
		uid3 := add(t, s, "INBOX", []byte("Subject: c\r\n\r\nC\r\n"))
		if from, err = s.ClaimRecent(ctx, inbox.ID, uid3+1); err != nil || from != uid2+1 {
			t.Fatalf("third claim: from %d err %v, want %d", from, err, uid2+1)
		}
		if s.Flavor() == FlavorSQLite {
			var level int
			must(t, s.write.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level))
			if level != 2 {
				t.Fatalf("writer synchronous = %d after a claim, want 2 (FULL)", level)
			}
		}
	})
}
