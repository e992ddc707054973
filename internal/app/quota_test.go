package app

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestQuotaBounceWiring builds the parts as serve does and delivers one
// message to two local users, one of them over quota: the other gets it,
// and the (local) sender gets a DSN naming the full mailbox with 5.2.2.
func TestQuotaBounceWiring(t *testing.T) {
	ctx := context.Background()
	_, p := testParts(t, nil)
	addDomain(t, p)
	for _, u := range []store.User{store.NewUser("room", "example.test", 0, 80), store.NewUser("full", "example.test", 50, 80),
		store.NewUser("sender", "example.test", 0, 80)} {
		if err := p.store.CreateUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
	}
	deliverRaw(t, p, "q1", "sender@example.test",
		"From: <sender@example.test>\r\nSubject: big news\r\nMessage-ID: <news@example.test>\r\n\r\n"+strings.Repeat("x", 200)+"\r\n",
		"room@example.test", "full@example.test")
	count := func(user string) []store.MessageInfo {
		l, err := p.store.ListMessages(ctx, user, "INBOX")
		if errors.Is(err, store.ErrNotFound) {
			return nil // never delivered to
		}
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if n := len(count("room@example.test")); n != 1 {
		t.Fatalf("room has %d messages, want 1", n)
	}
	if n := len(count("full@example.test")); n != 0 {
		t.Fatalf("full has %d messages, want 0", n)
	}
	dsn := count("sender@example.test")
	if len(dsn) != 1 {
		t.Fatalf("sender has %d messages, want the DSN", len(dsn))
	}
	rc, err := p.store.OpenBody(ctx, dsn[0].BodyID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	for _, want := range []string{"Final-Recipient: rfc822; full@example.test\r\n", "Status: 5.2.2\r\n", "Subject: big news\r\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("DSN lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "room@example.test") {
		t.Errorf("DSN names the recipient that got the message:\n%s", body)
	}
}
