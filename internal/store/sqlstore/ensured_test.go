package sqlstore

import (
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestEnsuredRemembers checks the memory of complete users: what it
// covers, for how long, and that a forget wins over a check that began
// before it.
func TestEnsuredRemembers(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e := newEnsured(func() time.Time { return now })
	archive := append(append([]store.MailboxSpec(nil), store.DefaultMailboxes...), store.MailboxSpec{Name: "Archive"})

	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); ok {
		t.Fatal("a user never checked is known")
	}
	_, gen := e.has("a@example.com", store.DefaultMailboxes)
	e.add("A@Example.com", store.DefaultMailboxes, gen)
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); !ok {
		t.Fatal("a user found complete is not known (the address in another case)")
	}
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes[:2]); !ok {
		t.Fatal("fewer mailboxes than were found are not known")
	}
	if ok, _ := e.has("a@example.com", archive); ok {
		t.Fatal("a mailbox never checked is known")
	}
	if ok, _ := e.has("b@example.com", store.DefaultMailboxes); ok {
		t.Fatal("another user is known")
	}

	now = now.Add(ensuredTTL)
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); ok {
		t.Fatal("known past ensuredTTL")
	}

	// A check that began before a forget is not kept.
	_, gen = e.has("a@example.com", store.DefaultMailboxes)
	e.forget("b@example.com")
	e.add("a@example.com", store.DefaultMailboxes, gen)
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); ok {
		t.Fatal("a check older than a forget was kept")
	}

	_, gen = e.has("a@example.com", store.DefaultMailboxes)
	e.add("a@example.com", store.DefaultMailboxes, gen)
	e.configChanged(TopicSieve, "a@example.com")
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); !ok {
		t.Fatal("a Sieve change dropped the user")
	}
	e.configChanged(TopicUser, "A@example.com")
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); ok {
		t.Fatal("the user's change did not drop it")
	}
	_, gen = e.has("a@example.com", store.DefaultMailboxes)
	e.add("a@example.com", store.DefaultMailboxes, gen)
	e.configChanged(TopicDomain, "example.com")
	if ok, _ := e.has("a@example.com", store.DefaultMailboxes); ok {
		t.Fatal("a domain's change did not drop every user")
	}
}

// TestEnsureMailboxesRemembers checks the store's use of it: a mailbox
// removed behind the store's back (as by another node) comes back once
// the memory of the user has expired, and not before.
func TestEnsureMailboxesRemembers(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, Options{Path: t.TempDir() + "/main.db"})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now()
	s.ensured.now = func() time.Time { return now }
	must(t, s.CreateDomain(ctx, &store.Domain{Name: "example.test"}))
	u := store.NewUser("a", "example.test", 0, 80)
	must(t, s.CreateUser(ctx, &u))
	must(t, s.EnsureMailboxes(ctx, u.Email, store.DefaultMailboxes))

	_, err = s.write.ExecContext(ctx, `DELETE FROM mailbox WHERE user_email = ? AND name = 'Junk'`, u.Email)
	must(t, err)
	must(t, s.EnsureMailboxes(ctx, u.Email, store.DefaultMailboxes))
	if _, err := s.GetMailbox(ctx, u.Email, "Junk"); err == nil {
		t.Fatal("Junk came back at once: the login read the mailbox list")
	}
	now = now.Add(ensuredTTL)
	must(t, s.EnsureMailboxes(ctx, u.Email, store.DefaultMailboxes))
	if _, err := s.GetMailbox(ctx, u.Email, "Junk"); err != nil {
		t.Fatalf("Junk not back after ensuredTTL: %v", err)
	}
}
