package cli_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestIndexCommand: petrel index status, rebuild of everyone and of one
// user, with the progress line, against a real store.
func TestIndexCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "user", "alice", "example.com", "pw")
	e.ok("", "user", "bob", "example.com", "pw")
	st := e.store()
	var msgs []*store.NewMessage
	for i, user := range []string{"alice@example.com", "alice@example.com", "alice@example.com", "bob@example.com"} {
		body := fmt.Sprintf("Subject: m%d\r\n\r\nword%d text\r\n", i, i)
		msgs = append(msgs, &store.NewMessage{ID: fmt.Sprint(i), Sender: "s@remote.test", ReceivedAt: time.Now(),
			Size: int64(len(body)), Body: []byte(body), Targets: []store.MailboxTarget{{User: user, Mailbox: "INBOX"}}})
	}
	msgs = append(msgs, &store.NewMessage{ID: "junk", Sender: "s@remote.test", ReceivedAt: time.Now(), Size: 9,
		Body: []byte("S: j\r\n\r\nx"), Targets: []store.MailboxTarget{{User: "alice@example.com", Mailbox: "Junk"}}})
	if err := st.CommitMessages(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := e.ok("", "index", "status")
	for _, want := range []string{"full-text search: on (attachments off)", "indexed:  0 messages", "pending:  4 messages", "excluded: 1 messages"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status before: no %q in\n%s", want, r.stdout)
		}
	}
	r = e.ok("", "index", "rebuild")
	if !regexp.MustCompile(`(?m)^dropped 0 index rows\nindexed 4 messages in [0-9.]+s \([0-9]+/s\)\n$`).MatchString(r.stdout) {
		t.Errorf("rebuild stdout %q", r.stdout)
	}
	if !regexp.MustCompile(`^\rindexed 4 messages, [0-9]+/s\n$`).MatchString(r.stderr) {
		t.Errorf("progress line %q", r.stderr)
	}
	r = e.ok("", "index", "status")
	for _, want := range []string{"indexed:  4 messages", "pending:  0 messages", "index:    "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status after: no %q in\n%s", want, r.stdout)
		}
	}
	r = e.ok("", "index", "rebuild", "Bob@Example.com")
	if !strings.HasPrefix(r.stdout, "dropped 1 index rows\nindexed 1 messages") {
		t.Errorf("rebuild bob: %q", r.stdout)
	}
	e.fails(1, "no such user", "index", "rebuild", "carol@example.com")
	e.fails(2, "unknown action", "index", "optimise")
	e.vars["FULL_TEXT_SEARCH"] = "off"
	e.fails(1, "FULL_TEXT_SEARCH is off", "index", "rebuild")
}
