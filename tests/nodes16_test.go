package tests

// MESSAGE_RATELIMIT and greylisting shared by two `petrel serve` nodes on
// one PostgreSQL, the message rate on one SQLite node, and the rate check
// of the three-node suite (multinode_test.go). The PostgreSQL tests are
// skipped without PETREL_TEST_PG_DSN
// (internal/store/sqlstore/testdata/pg-start.sh).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/testutil"
)

// twoNodes prepares two servers on one fresh PostgreSQL schema, each with
// its own DATA_DIR (nothing shared on disk), with example.test and alice
// created through node A. They are not started.
func twoNodes(t *testing.T, settings map[string]string) (a, b *server) {
	t.Helper()
	env := map[string]string{"SQLALCHEMY_DATABASE_URI": testutil.PGSchemaDSN(t)}
	for k, v := range settings {
		env[k] = v
	}
	a, b = newServer(t, env), newServer(t, env)
	a.mustCLI("", "domain", "example.test")
	a.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	return a, b
}

// multiNodeRate is MESSAGE_RATELIMIT's count per hour in TestMultiNode.
const multiNodeRate = 5

// checkMessageRateShared: MESSAGE_RATELIMIT spread over the nodes is one
// limit: dave's messages through A, B and C in turn stop at the limit,
// and then every node refuses the next with 450 4.2.1.
func checkMessageRateShared(t *testing.T, nodes []*server) {
	for i := range multiNodeRate {
		if r := submitReply(t, nodes[i%len(nodes)], "dave@example.test", "Secret-Dave-4", "friend@remote.example"); r != "250" {
			t.Fatalf("message %d of %d on node %d: %s", i+1, multiNodeRate, i%len(nodes), r)
		}
	}
	for i, n := range nodes {
		if r := submitReply(t, n, "dave@example.test", "Secret-Dave-4", "friend@remote.example"); !strings.HasPrefix(r, "450 4.2.1") {
			t.Errorf("node %d after %d messages in all: %s, want 450 4.2.1", i, multiNodeRate, r)
		}
	}
}

// submitSession opens an authenticated session on node s's port 465.
func submitSession(t *testing.T, s *server, user, pw string) *smtp.Client {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Auth(smtp.PlainAuth("", user, pw, "mail.example.test")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	return c
}

// sendOn sends one message from user to to and returns "250" or the
// first refusal ("450 4.2.1 ...", from MAIL or later); err is anything
// but a reply.
func sendOn(c *smtp.Client, user, to string) (string, error) {
	refused := func(err error) (string, error) {
		var te *textproto.Error
		if !errors.As(err, &te) {
			return "", err
		}
		return fmt.Sprintf("%d %s", te.Code, te.Msg), nil
	}
	if err := c.Mail(user); err != nil {
		return refused(err)
	}
	if err := c.Rcpt(to); err != nil {
		return refused(err)
	}
	w, err := c.Data()
	if err != nil {
		return refused(err)
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: counted\r\n\r\nOne of a few.\r\n", user, to)
	if err := w.Close(); err != nil {
		return refused(err)
	}
	_ = c.Quit()
	return "250", nil
}

// submitReply submits one message on node s as user, in a session of
// its own, and returns sendOn's reply.
func submitReply(t *testing.T, s *server, user, pw, to string) string {
	t.Helper()
	r, err := sendOn(submitSession(t, s, user, pw), user, to)
	if err != nil {
		t.Fatalf("submission on %s: %v", s.addr[465], err)
	}
	return r
}

// inboxCount returns the messages in user's INBOX, asked over IMAP.
func inboxCount(t *testing.T, addr, user, pw string) int {
	t.Helper()
	c := imapOpen(t, addr)
	defer c.conn.Close()
	if r := c.cmd("a1", fmt.Sprintf("LOGIN %s %q", user, pw)); !strings.HasPrefix(r, "a1 OK") {
		t.Fatalf("LOGIN %s: %q", user, r)
	}
	if _, err := io.WriteString(c.conn, "a2 STATUS INBOX (MESSAGES)\r\n"); err != nil {
		t.Fatal(err)
	}
	n := -1
	for {
		l := c.line()
		if strings.HasPrefix(l, "* STATUS") {
			fmt.Sscanf(l[strings.LastIndex(l, "(MESSAGES ")+len("(MESSAGES "):], "%d", &n)
		}
		if strings.HasPrefix(l, "a2 ") {
			if !strings.HasPrefix(l, "a2 OK") || n < 0 {
				t.Fatalf("STATUS: %q (messages %d)", l, n)
			}
			return n
		}
	}
}

// MESSAGE_RATELIMIT is counted in PostgreSQL: a user sending on node A
// and then node B gets the limit once, not once per node, also when
// sessions race on both nodes; and greylisting state is shared, so a
// triplet that passed on node A is not greylisted on node B.
func TestNodesShareMessageRateAndGreylisting(t *testing.T) {
	a, b := twoNodes(t, map[string]string{
		"MESSAGE_RATELIMIT": "3/day",
		"GREYLISTING":       "true",
		"GREYLISTING_DELAY": "1s",
		"LOG_LEVEL":         "INFO",
	})
	a.mustCLI("Secret-Bob-2\n", "user", "bob", "example.test", "-")
	a.start()
	b.start()

	const limited = "450 4.2.1 You are sending too many emails too fast."
	// Alice: two on node A, then node B takes the third and refuses the
	// fourth, and node A refuses the fifth.
	for i, n := range []*server{a, a, b, b, a} {
		r := submitReply(t, n, "alice@example.test", "Secret-Alice-1", "alice@example.test")
		want := "250"
		if i >= 3 {
			want = limited
		}
		if r != want {
			t.Fatalf("alice's message %d on node %s: %q, want %q\n%s", i+1, n.addr[465], r, want, n.logs())
		}
	}
	if got := inboxCount(t, b.addr[993], "alice@example.test", "Secret-Alice-1"); got != 3 {
		t.Fatalf("alice's INBOX holds %d messages, want the limit, 3", got)
	}

	// Bob: eight sessions, four per node, logged in one after the other
	// (racing logins meet the login limits' reservations), then sending
	// at once: three go, in all.
	sessions := make([]*smtp.Client, 8)
	for i := range sessions {
		sessions[i] = submitSession(t, []*server{a, b}[i%2], "bob@example.test", "Secret-Bob-2")
	}
	replies := make(chan string, len(sessions))
	var wg sync.WaitGroup
	for _, c := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := sendOn(c, "bob@example.test", "bob@example.test")
			if err != nil {
				r = err.Error()
			}
			replies <- r
		}()
	}
	wg.Wait()
	close(replies)
	counts := map[string]int{}
	for r := range replies {
		counts[r]++
	}
	if counts["250"] != 3 || counts[limited] != 5 {
		t.Fatalf("eight racing submissions over two nodes: %v; want 3 accepted and 5 %q", counts, limited)
	}

	// Greylisting: first seen on node A, retried there after the delay,
	// then the same triplet on node B passes at once.
	msg := "From: <carol@sender.test>\r\nTo: <alice@example.test>\r\nSubject: greylist\r\n\r\nHi.\r\n"
	const greylisted = "451 4.7.1"
	if r := deliver25(t, a, "carol@sender.test", msg); !strings.HasPrefix(r, greylisted) {
		t.Fatalf("a new triplet on node A: %q, want %s\n%s", r, greylisted, a.logs())
	}
	time.Sleep(1500 * time.Millisecond) // GREYLISTING_DELAY is 1s
	if r := deliver25(t, a, "carol@sender.test", msg); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("the retry on node A after the delay: %q\n%s", r, a.logs())
	}
	if r := deliver25(t, b, "carol@sender.test", msg); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("a triplet that passed on node A is greylisted on node B: %q\n%s", r, b.logs())
	}
	// Node B does greylist: a triplet it has not seen waits there.
	if r := deliver25(t, b, "dave@sender.test", strings.ReplaceAll(msg, "carol", "dave")); !strings.HasPrefix(r, greylisted) {
		t.Fatalf("a new triplet on node B: %q, want %s", r, greylisted)
	}
}

// One node on SQLite keeps MESSAGE_RATELIMIT in memory, as before issue
// 16: the limit holds, and an exempt login is not counted.
func TestMessageRateSingleNode(t *testing.T) {
	s := withUsers(t, map[string]string{
		"MESSAGE_RATELIMIT":           "2/day",
		"MESSAGE_RATELIMIT_EXEMPTION": "bob@example.test",
		"LOG_LEVEL":                   "INFO",
	})
	for i, want := range []string{"250", "250", "450 4.2.1 You are sending too many emails too fast."} {
		if r := submitReply(t, s, "alice@example.test", "Secret-Alice-1", "alice@example.test"); r != want {
			t.Fatalf("alice's message %d: %q, want %q", i+1, r, want)
		}
	}
	for i := range 3 {
		if r := submitReply(t, s, "bob@example.test", "Secret-Bob-2", "bob@example.test"); r != "250" {
			t.Fatalf("exempt bob's message %d: %q", i+1, r)
		}
	}
}
