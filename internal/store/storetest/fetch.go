package storetest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testFetches: fetched accounts round-trip, a lease is exclusive and
// due-ness follows last_check, seen keys are kept, forgotten, dropped
// when the account points elsewhere and go with the account and the user.
func testFetches(t *testing.T, open Open) {
	s := get(t, open)
	fs, ok := unwrap(s).(store.Fetches)
	if !ok {
		t.Skip("backend has no fetched accounts")
	}
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	f := store.Fetch{UserEmail: "a@example.com", Protocol: "imap", Host: "imap.remote.test", Port: 993, TLS: true,
		Username: "me", Password: "sealed", Keep: true, Folders: []string{"INBOX", "Junk"}, Meta: store.Meta{Comment: "old job"}}
	must(t, fs.CreateFetch(c, &f))
	if f.ID == 0 {
		t.Fatal("CreateFetch set no ID")
	}
	wantErr(t, fs.CreateFetch(c, &store.Fetch{UserEmail: "nobody@example.com", Protocol: "pop3", Host: "h", Port: 995}),
		store.ErrNotFound, "CreateFetch for a missing user")
	got, err := fs.GetFetch(c, f.ID)
	must(t, err)
	if !reflect.DeepEqual(*got, f) {
		t.Fatalf("GetFetch = %+v, want %+v", *got, f)
	}
	g := store.Fetch{UserEmail: "b@example.com", Protocol: "pop3", Host: "pop.remote.test", Port: 995, TLS: true, Username: "b", Password: "x"}
	must(t, fs.CreateFetch(c, &g))
	if l, err := fs.ListFetches(c, "a@example.com"); err != nil || len(l) != 1 || l[0].ID != f.ID {
		t.Fatalf("ListFetches(a) = %v, %v", l, err)
	}
	if l, err := fs.ListFetches(c, ""); err != nil || len(l) != 2 {
		t.Fatalf("ListFetches(all) = %v, %v", l, err)
	}

	// Leases: one owner at a time, and only when due.
	now := time.Now().UTC()
	ok1, err := fs.ClaimFetch(c, f.ID, "node1", now, now, now.Add(time.Minute))
	must(t, err)
	ok2, err := fs.ClaimFetch(c, f.ID, "node2", now, now, now.Add(time.Minute))
	must(t, err)
	if !ok1 || ok2 {
		t.Fatalf("claims node1=%v node2=%v, want only the first", ok1, ok2)
	}
	must(t, fs.FinishFetch(c, f.ID, now, "connection refused"))
	if ok, _ := fs.ClaimFetch(c, f.ID, "node2", now.Add(time.Second), now.Add(-time.Minute), now.Add(time.Minute)); ok {
		t.Fatal("claimed an account checked after dueBefore")
	}
	if ok, _ := fs.ClaimFetch(c, f.ID, "node2", now.Add(time.Second), now.Add(time.Second), now.Add(time.Minute)); !ok {
		t.Fatal("a due, unleased account was not claimed")
	}
	got, _ = fs.GetFetch(c, f.ID)
	if got.Error != "connection refused" || got.LastCheck.IsZero() || now.Sub(got.LastCheck).Abs() > time.Second {
		t.Fatalf("after FinishFetch: error %q, last check %v", got.Error, got.LastCheck)
	}

	// Seen keys.
	for _, k := range []string{"INBOX/7/1", "INBOX/7/2", "INBOX/7/2", "Junk/9/5"} {
		must(t, fs.AddFetchSeen(c, f.ID, k))
	}
	must(t, fs.AddFetchSeen(c, g.ID, "uidl-1"))
	keys, err := fs.FetchSeen(c, f.ID)
	must(t, err)
	if !slices.Equal(keys, []string{"INBOX/7/1", "INBOX/7/2", "Junk/9/5"}) {
		t.Fatalf("FetchSeen = %v", keys)
	}
	must(t, fs.ForgetFetchSeen(c, f.ID, []string{"INBOX/7/1"}))
	if keys, _ = fs.FetchSeen(c, f.ID); len(keys) != 2 {
		t.Fatalf("after forgetting one: %v", keys)
	}
	// A settings change on the same mailbox keeps them; another host drops them.
	f.Keep, f.Password = false, "sealed2"
	must(t, fs.UpdateFetch(c, &f))
	if keys, _ = fs.FetchSeen(c, f.ID); len(keys) != 2 {
		t.Fatalf("an update of keep dropped the keys: %v", keys)
	}
	f.Host = "other.remote.test"
	must(t, fs.UpdateFetch(c, &f))
	if keys, _ = fs.FetchSeen(c, f.ID); len(keys) != 0 {
		t.Fatalf("keys of the old host kept: %v", keys)
	}
	got, _ = fs.GetFetch(c, f.ID)
	if got.Host != "other.remote.test" || got.Keep || got.Password != "sealed2" {
		t.Fatalf("UpdateFetch not stored: %+v", got)
	}
	wantErr(t, fs.UpdateFetch(c, &store.Fetch{ID: 99999, Protocol: "pop3"}), store.ErrNotFound, "UpdateFetch of a missing account")

	must(t, fs.DeleteFetch(c, f.ID))
	wantErr(t, func() error { _, err := fs.GetFetch(c, f.ID); return err }(), store.ErrNotFound, "GetFetch after delete")
	must(t, s.DeleteUser(c, "b@example.com"))
	if l, _ := fs.ListFetches(c, ""); len(l) != 0 {
		t.Fatalf("accounts left after deleting their users: %v", l)
	}
	if keys, _ := fs.FetchSeen(c, g.ID); len(keys) != 0 {
		t.Fatalf("seen keys left after the user went: %v", keys)
	}
}

// testFetchedDelivery: a message delivered with a fetched key records the
// key in its transaction; delivering the same key again (a poller that
// died before its own bookkeeping) stores nothing, copies sharing a key
// go together, other messages of the group are stored, and a key of an
// account deleted meanwhile fails as ErrNotFound.
func testFetchedDelivery(t *testing.T, open Open) {
	s := get(t, open)
	fs, ok := unwrap(s).(store.Fetches)
	if !ok {
		t.Skip("backend has no fetched accounts")
	}
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	f := store.Fetch{UserEmail: "a@example.com", Protocol: "pop3", Host: "pop.remote.test", Port: 995, TLS: true, Username: "a", Password: "x"}
	must(t, fs.CreateFetch(c, &f))
	key := &store.FetchedKey{FetchID: f.ID, Key: "uidl-1"}
	msg := func(user, id string, fk *store.FetchedKey) *store.NewMessage {
		return &store.NewMessage{ID: id, Body: []byte("Subject: " + id + "\r\n\r\nx\r\n"), Size: 20, Fetched: fk,
			Targets: []store.MailboxTarget{{User: user, Mailbox: "INBOX"}}}
	}
	count := func(user string) int {
		l, err := s.ListMessages(c, user, "INBOX")
		must(t, err)
		return len(l)
	}
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("a@example.com", "f1", key), msg("b@example.com", "f1b", key)}))
	if keys, _ := fs.FetchSeen(c, f.ID); !slices.Equal(keys, []string{"uidl-1"}) {
		t.Fatalf("FetchSeen after the delivery = %v", keys)
	}
	if count("a@example.com") != 1 || count("b@example.com") != 1 {
		t.Fatalf("both copies sharing the key not stored: a %d, b %d", count("a@example.com"), count("b@example.com"))
	}
	// The same key again, with a plain message in the group.
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("a@example.com", "f1", key), msg("b@example.com", "f1b", key), msg("a@example.com", "plain", nil)}))
	if count("a@example.com") != 2 || count("b@example.com") != 1 {
		t.Fatalf("a redelivered fetched key stored again: a %d (want 2), b %d (want 1)", count("a@example.com"), count("b@example.com"))
	}
	must(t, fs.DeleteFetch(c, f.ID))
	wantErr(t, s.CommitMessages(c, []*store.NewMessage{msg("a@example.com", "f2", &store.FetchedKey{FetchID: f.ID, Key: "uidl-2"})}),
		store.ErrNotFound, "a delivery for a deleted account")
	if count("a@example.com") != 2 {
		t.Fatal("a delivery for a deleted account was stored")
	}
}
