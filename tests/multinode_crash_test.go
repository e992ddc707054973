package tests

// Nodes killed with SIGKILL on a three-node PostgreSQL install (issue 16):
// mid-DATA, right after the 250, and while holding a lease on an outbound
// queue entry. Nothing acknowledged may be lost, nothing unacknowledged
// may appear, and a dead node's leased work finishes on another node.
//
//	PETREL_TEST_PG_DSN=... go test -race ./tests -run TestMultiNodeCrash -v -count=1

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

func TestMultiNodeCrash(t *testing.T) {
	hold := make(chan struct{})
	sink := sinktest.Start(t, sinktest.Options{Hold: hold})
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	defer release()
	nodes, dsn := multiNodes(t, map[string]string{
		"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		// A dead node's claimed entries go to another node after this
		// (internal/queue: Options.Lease); the default is 2m.
		"QUEUE_LEASE": "3s",
		"LOG_LEVEL":   "INFO",
	}, nil)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b, c := nodes[0], nodes[1], nodes[2]

	t.Run("MidData", func(t *testing.T) {
		// Node A dies while the client is sending the body: no 250, so
		// the message must not be anywhere; the client's retry on node B
		// delivers it exactly once, and A's restart adds no copy.
		const subject = "crash-middata"
		msg := crashBody(subject, 3000) // about 190 KB: over the inline limit
		d := dial(t, a.addr[25])
		d.expect("220")
		d.send("EHLO mx.sender.test", "250")
		d.send("MAIL FROM:<sender@example.org>", "250")
		d.send("RCPT TO:<alice@example.test>", "250")
		d.send("DATA", "354")
		if _, err := io.WriteString(d.conn, msg[:len(msg)/2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // let A spool the first half
		a.kill()
		_ = d.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if l, err := d.r.ReadString('\n'); err == nil {
			t.Fatalf("node A answered %q after being killed mid-DATA", l)
		}
		for _, n := range []*server{b, c} {
			if got := imapCount(t, n, subject); got != 0 {
				t.Fatalf("node %s shows %d copies of a message that got no 250", n.env["HOSTNAMES"], got)
			}
		}
		if q := queueOwners(t, db); len(q) != 0 {
			t.Fatalf("queue holds %v", q)
		}
		// The client retries on node B.
		if r := deliver25(t, b, "sender@example.org", msg); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("retry on node B: %q\n%s", r, b.logs())
		}
		if got := imapCount(t, c, subject); got != 1 {
			t.Fatalf("node C shows %d copies after the retry on B, want 1", got)
		}
		a.start()
		onceOnEveryNode(t, nodes, subject, "after node A's restart")
	})

	t.Run("AfterAck", func(t *testing.T) {
		// Node B dies right after its 250: the message is there, once,
		// read from node C, and B's restart adds no copy.
		const subject = "crash-afterack"
		d := dial(t, b.addr[25])
		d.expect("220")
		d.send("EHLO mx.sender.test", "250")
		d.send("MAIL FROM:<sender@example.org>", "250")
		d.send("RCPT TO:<alice@example.test>", "250")
		d.send("DATA", "354")
		d.send(crashBody(subject, 3000)+".", "250")
		b.kill()
		if got := imapCount(t, c, subject); got != 1 {
			t.Fatalf("node C shows %d copies of the message node B acknowledged, want 1", got)
		}
		b.start()
		onceOnEveryNode(t, nodes, subject, "after node B's restart")
	})

	t.Run("QueueLease", func(t *testing.T) {
		// An outbound entry is claimed by some node, whose delivery then
		// stalls in DATA at the sink. That node is killed; the lease
		// expires (QUEUE_LEASE) and another node delivers the entry,
		// exactly once.
		const rcpt = "lease@remote.example"
		submit(t, a, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{rcpt},
			"From: alice@example.test\r\nTo: "+rcpt+"\r\nSubject: crash-lease\r\n\r\nleased body\r\n")
		var owner string
		deadline := time.Now().Add(30 * time.Second)
		for {
			owner = queueOwners(t, db)[rcpt]
			if owner != "" && sink.MaxActive() > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("entry not leased and stalled in DATA within 30 s: owner %q, %d in DATA\n%s", owner, sink.MaxActive(), a.logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
		host, _, _ := strings.Cut(owner, "/")
		var dead *server
		var survivors []string
		for i, n := range nodes {
			if nodeHost(i) == host {
				dead = n
			} else {
				survivors = append(survivors, nodeHost(i))
			}
		}
		if dead == nil {
			t.Fatalf("lease owner %q is none of the nodes", owner)
		}
		killedAt := time.Now()
		dead.kill()
		t.Logf("killed %s (kill -9) while it held the lease", host)
		// The sink closes the dead node's connection, so the DATA it may
		// have left in the socket buffer is never taken; then the sink
		// stops stalling.
		sink.DropConns()
		release()
		deadline = time.Now().Add(60 * time.Second)
		for len(queueOwners(t, db)) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("queue not empty 60 s after the kill: %v", queueOwners(t, db))
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("queue empty %v after the kill", time.Since(killedAt))
		time.Sleep(time.Second) // a duplicate would arrive about now
		var helos []string
		for _, m := range sink.Messages() {
			for _, r := range m.To {
				if r == rcpt {
					helos = append(helos, m.Helo)
				}
			}
		}
		if len(helos) != 1 {
			t.Fatalf("the sink got %d copies (from %v), want exactly 1", len(helos), helos)
		}
		if helos[0] == host {
			t.Fatalf("delivered by the killed node %s, not by a survivor %v", host, survivors)
		}
	})
}

// crashBody is a message with the given subject and n body lines.
func crashBody(subject string, lines int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "From: <sender@example.org>\r\nTo: <alice@example.test>\r\nSubject: %s\r\nMessage-ID: <%s@sender.test>\r\n\r\n", subject, subject)
	for i := range lines {
		fmt.Fprintf(&s, "%s line %05d %s\r\n", subject, i, strings.Repeat("x", 40))
	}
	return s.String()
}

// imapCount is how many messages in alice's INBOX on node s have subject.
func imapCount(t *testing.T, s *server, subject string) int {
	t.Helper()
	ic := imapOpen(t, s.addr[993])
	defer ic.conn.Close()
	if r := ic.cmd("a1", `LOGIN alice@example.test "Secret-Alice-1"`); !strings.HasPrefix(r, "a1 OK") {
		t.Fatalf("LOGIN: %s", r)
	}
	if r := ic.cmd("a2", "SELECT INBOX"); !strings.HasPrefix(r, "a2 OK") {
		t.Fatalf("SELECT: %s", r)
	}
	io.WriteString(ic.conn, "a3 UID SEARCH SUBJECT "+subject+"\r\n")
	n := -1
	for {
		l := ic.line()
		if strings.HasPrefix(l, "* SEARCH") {
			n = len(strings.Fields(l)) - 2
		}
		if strings.HasPrefix(l, "a3 ") {
			if !strings.HasPrefix(l, "a3 OK") || n < 0 {
				t.Fatalf("SEARCH: %s", l)
			}
			return n
		}
	}
}

// queueOwners maps each queued recipient to its lease owner ("" if none).
func queueOwners(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT recipient, COALESCE(lease_owner, '') FROM queue WHERE lease_until IS NOT NULL AND lease_until > now()
UNION ALL SELECT recipient, '' FROM queue WHERE lease_until IS NULL OR lease_until <= now()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var r, o string
		if err := rows.Scan(&r, &o); err != nil {
			t.Fatal(err)
		}
		out[r] = o
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// onceOnEveryNode fails the test unless every node's IMAP shows exactly
// one message with subject.
func onceOnEveryNode(t *testing.T, nodes []*server, subject, when string) {
	t.Helper()
	for _, n := range nodes {
		if got := imapCount(t, n, subject); got != 1 {
			t.Fatalf("node %s shows %d copies %s, want 1", n.env["HOSTNAMES"], got, when)
		}
	}
}
