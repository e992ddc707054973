package app

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// TestAutoReplyWiring builds the parts as serve does and delivers a message
// to a user with an active auto-reply: the reply is queued to the sender,
// from the user, with a Message-ID on the first hostname, DKIM-signed with
// the domain's key.
func TestAutoReplyWiring(t *testing.T) {
	ctx := context.Background()
	cfg, p := testParts(t, map[string]string{"HOSTNAMES": "mail.example.test,mx.example.test"})

	keys := msgauth.NewKeysPath(cfg.DKIMPath, cfg.DKIMSelector)
	if err := keys.Generate(context.Background(), "example.test"); err != nil {
		t.Fatal(err)
	}
	addDomain(t, p)
	u := store.NewUser("alice", "example.test", 0, 80)
	u.ReplyEnabled, u.ReplySubject, u.ReplyBody, u.DisplayedName = true, "Away", "Back on Monday.", "Alice"
	if err := p.store.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}

	deliverRaw(t, p, "orig1", "friend@remote.example",
		"From: Friend <friend@remote.example>\r\nTo: alice@example.test\r\nSubject: hello\r\nMessage-ID: <hello@remote.example>\r\n\r\nHi!\r\n",
		"alice@example.test")

	items, err := p.store.ListQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Recipient != "friend@remote.example" || items[0].Sender != "alice@example.test" {
		t.Fatalf("queue: %+v; want one auto-reply from alice@example.test to friend@remote.example", items)
	}
	rc, err := p.store.OpenBody(ctx, items[0].BodyID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	for _, want := range []string{"\r\nFrom: \"Alice\" <alice@example.test>\r\n", "\r\nSubject: Away\r\n", "@mail.example.test>\r\n",
		"\r\nIn-Reply-To: <hello@remote.example>\r\n", "\r\nAuto-Submitted: auto-replied\r\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("reply lacks %q:\n%s", want, body)
		}
	}
	record, err := keys.PublicKeyRecord(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(body), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name != cfg.DKIMSelector+"._domainkey.example.test" {
				t.Errorf("DKIM look-up of %s", name)
			}
			return []string{record}, nil
		},
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.test" {
		t.Fatalf("DKIM: %+v, %v\n%s", verifs, err, body)
	}
}
