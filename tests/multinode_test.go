package tests

// Several `petrel serve` nodes on one PostgreSQL (issue 16): three
// processes, each with its own DATA_DIR and ports, on one fresh schema.
//
//	PETREL_TEST_PG_DSN=... go test -race ./tests -run TestMultiNode -v -count=1
//
// Skipped when PETREL_TEST_PG_DSN is unset (.ci/run starts PostgreSQL and
// sets it; see internal/store/sqlstore/testdata/pg-start.sh).

import (
	"bufio"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/testutil"
)

var nodeNames = []string{"a", "b", "c"}

// multiNodes prepares three nodes on one fresh schema with alice, bob,
// carol and dave (created through node A's CLI), and starts them. Each
// has its own DATA_DIR: nothing on disk is shared.
func multiNodes(t *testing.T, settings map[string]string) (nodes []*server, dsn string) {
	t.Helper()
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		t.Skip("multi-node suite skipped: PETREL_TEST_PG_DSN not set (start PostgreSQL with internal/store/sqlstore/testdata/pg-start.sh)")
	}
	dsn = testutil.PGSchemaDSN(t)
	for _, name := range nodeNames {
		env := map[string]string{
			"SQLALCHEMY_DATABASE_URI": dsn,
			"HOSTNAMES":               "node-" + name + ".example.test",
			"PORTS":                   "25,80,443,465,993,995,4190,143",
		}
		for k, v := range settings {
			env[k] = v
		}
		nodes = append(nodes, newServer(t, env))
	}
	nodes[0].mustCLI("", "domain", "example.test")
	nodes[0].mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	nodes[0].mustCLI("Secret-Bob-2\n", "user", "bob", "example.test", "-")
	nodes[0].mustCLI("Secret-Carol-3\n", "user", "carol", "example.test", "-")
	nodes[0].mustCLI("Secret-Dave-4\n", "user", "dave", "example.test", "-")
	for _, n := range nodes {
		n.start()
	}
	return nodes, dsn
}

// imapConn is a raw IMAP session on 993, for exact timing of untagged
// responses.
type imapConn struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

func imapOpen(t *testing.T, addr string) *imapConn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	ic := &imapConn{t: t, conn: c, r: bufio.NewReader(c)}
	ic.deadline(30 * time.Second)
	if l := ic.line(); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting %q", l)
	}
	return ic
}

func (c *imapConn) deadline(d time.Duration) { _ = c.conn.SetDeadline(time.Now().Add(d)) }

func (c *imapConn) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("IMAP read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends tag+" "+line and returns the tagged reply, skipping untagged
// lines.
func (c *imapConn) cmd(tag, line string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, tag+" "+line+"\r\n"); err != nil {
		c.t.Fatalf("IMAP write: %v", err)
	}
	for {
		if l := c.line(); strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

// login returns LOGIN's tagged reply.
func imapLogin(t *testing.T, addr, user, pw string) string {
	c := imapOpen(t, addr)
	defer c.conn.Close()
	return c.cmd("a1", fmt.Sprintf("LOGIN %s %q", user, pw))
}

func TestMultiNode(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	nodes, _ := multiNodes(t, map[string]string{
		"LOG_LEVEL":         "INFO",
		"RELAYHOST":         fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		"MESSAGE_RATELIMIT": fmt.Sprintf("%d/hour", multiNodeRate),
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	for i, n := range nodes {
		if !n.waitLog("listening for other nodes' changes") {
			t.Fatalf("node %s holds no LISTEN connection:\n%s", nodeNames[i], n.logs())
		}
	}

	t.Run("IdleOnOtherNodes", func(t *testing.T) {
		// IDLE on B and C, delivery on A: both see EXISTS. The issue's
		// target is 100 ms; the assertion only has a generous deadline
		// (the machine may be loaded) and the latency is logged. Without
		// LISTEN/NOTIFY the IMAP poll (500 ms) would still find it.
		var idlers []*imapConn
		for _, n := range []*server{b, c} {
			ic := imapOpen(t, n.addr[993])
			if r := ic.cmd("a1", `LOGIN alice@example.test "Secret-Alice-1"`); !strings.HasPrefix(r, "a1 OK") {
				t.Fatalf("LOGIN: %s", r)
			}
			if r := ic.cmd("a2", "SELECT INBOX"); !strings.HasPrefix(r, "a2 OK") {
				t.Fatalf("SELECT: %s", r)
			}
			io.WriteString(ic.conn, "a3 IDLE\r\n")
			if l := ic.line(); !strings.HasPrefix(l, "+") {
				t.Fatalf("IDLE: %q", l)
			}
			idlers = append(idlers, ic)
		}
		d := dial(t, a.addr[25])
		d.expect("220")
		d.send("EHLO mx.sender.test", "250")
		d.send("MAIL FROM:<sender@example.org>", "250")
		d.send("RCPT TO:<alice@example.test>", "250")
		d.send("DATA", "354")
		// From the end of DATA: the commit, its NOTIFY, the other node's
		// wake-up and its ChangesSince.
		start := time.Now()
		d.send(authMsg("sender@example.org", "multinode-idle")+".", "250")
		t.Logf("node A answered 250 after %v", time.Since(start))
		d.send("QUIT", "221")
		for i, ic := range idlers {
			ic.deadline(30 * time.Second)
			for {
				l := ic.line()
				if strings.HasSuffix(l, " EXISTS") {
					t.Logf("node %s: IDLE saw node A's delivery %v after the end of DATA", nodeNames[i+1], time.Since(start))
					break
				}
			}
			io.WriteString(ic.conn, "DONE\r\n")
			l := ic.line()
			for strings.HasPrefix(l, "* ") && strings.HasSuffix(l, " RECENT") {
				l = ic.line() // IMAP4rev1: RECENT follows EXISTS (RFC 3501 7.3.2)
			}
			if !strings.HasPrefix(l, "a3 OK") {
				t.Errorf("after DONE: %q", l)
			}
		}
	})

	t.Run("LargeMessageAtoC", func(t *testing.T) { checkLargeMessage(t, nodes, a, c) })
	t.Run("DKIMOnEveryNode", func(t *testing.T) { checkDKIMEveryNode(t, nodes, sink) })
	t.Run("MessageRateShared", func(t *testing.T) { checkMessageRateShared(t, nodes) })
	t.Run("LoginLimitShared", func(t *testing.T) { checkLoginLimitShared(t, nodes) })

	t.Run("PasswordChangeOnA", func(t *testing.T) {
		// A login on C fills C's credential cache with the old password.
		if r := imapLogin(t, c.addr[993], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, "a1 OK") {
			t.Fatalf("login on C before the change: %s", r)
		}
		a.mustCLI("", "password", "bob", "example.test", "New-Bob-3")
		if r := imapLogin(t, c.addr[993], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, imapBadAuth) {
			t.Errorf("old password on C after the change on A: %s", r)
		}
		if r := imapLogin(t, c.addr[993], "bob@example.test", "New-Bob-3"); !strings.HasPrefix(r, "a1 OK") {
			t.Errorf("new password on C: %s", r)
		}
		if r := imapLogin(t, b.addr[993], "bob@example.test", "New-Bob-3"); !strings.HasPrefix(r, "a1 OK") {
			t.Errorf("new password on B: %s", r)
		}
	})

	t.Run("DisableOnA", func(t *testing.T) {
		if r := imapLogin(t, b.addr[993], "bob@example.test", "New-Bob-3"); !strings.HasPrefix(r, "a1 OK") {
			t.Fatalf("login on B before disabling: %s", r)
		}
		a.mustCLI("user:\n  - email: bob@example.test\n    enabled: false\n", "config-import", "--update", "-")
		for _, n := range []*server{b, c} {
			if r := imapLogin(t, n.addr[993], "bob@example.test", "New-Bob-3"); !strings.HasPrefix(r, "a1 NO") {
				t.Errorf("disabled user's login: %s", r)
			}
		}
	})
}

// TestMultiNodeQueueTakeover kills (SIGKILL) the nodes holding leases on
// outbound queue entries while their deliveries hang at the remote
// server; the entries' leases expire (QUEUE_LEASE) and a surviving node
// delivers every one of them.
func TestMultiNodeQueueTakeover(t *testing.T) {
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
		"RELAYHOST":   fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		"QUEUE_LEASE": "3s",
		"LOG_LEVEL":   "INFO",
	})
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	const n = 4
	for i := range n {
		submit(t, nodes[0], "alice@example.test", "Secret-Alice-1", "alice@example.test",
			[]string{fmt.Sprintf("r%d@remote.example", i)},
			fmt.Sprintf("From: alice@example.test\r\nTo: r%d@remote.example\r\nSubject: takeover %d\r\n\r\nbody %d\r\n", i, i, i))
	}

	// Wait until every entry is leased and a delivery hangs in DATA.
	owners := map[string]string{} // recipient -> lease owner (node host name/...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		owners = queueOwners(t, db)
		leased := 0
		for _, o := range owners {
			if o != "" {
				leased++
			}
		}
		if leased == n && len(owners) == n && sink.Open() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue entries not all leased within 30 s: %v, %d sink connections\n%s", owners, sink.Open(), nodes[0].logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Kill every lease holder, but keep at least one node.
	killed := map[string]bool{}
	for _, o := range owners {
		host, _, _ := strings.Cut(o, "/")
		killed[host] = true
	}
	if len(killed) == len(nodeNames) {
		delete(killed, "node-c.example.test")
	}
	var survivors []string
	for i, name := range nodeNames {
		host := "node-" + name + ".example.test"
		if killed[host] {
			nodes[i].kill()
			t.Logf("killed node %s (kill -9) while it held leases", name)
		} else {
			survivors = append(survivors, host)
		}
	}
	if len(killed) == 0 {
		t.Fatalf("no node was killed: owners %v", owners)
	}
	// The dead nodes' connections go; later deliveries pass at once.
	sink.DropConns()
	release()

	deadline = time.Now().Add(60 * time.Second)
	for {
		if got := queueOwners(t, db); len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty 60 s after the kill: %v", queueOwners(t, db))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every recipient got its message (a copy whose DATA the dead node
	// had already sent may arrive twice: delivery is at least once), and
	// the dead nodes' entries were sent by a survivor.
	byRcpt := map[string][]string{}
	for _, m := range sink.Messages() {
		for _, r := range m.To {
			byRcpt[r] = append(byRcpt[r], m.Helo)
		}
	}
	for i := range n {
		r := fmt.Sprintf("r%d@remote.example", i)
		helos := byRcpt[r]
		if len(helos) == 0 {
			t.Errorf("%s: message accepted by node A never delivered", r)
			continue
		}
		owner, _, _ := strings.Cut(owners[r], "/")
		if killed[owner] {
			found := false
			for _, h := range helos {
				for _, s := range survivors {
					found = found || h == s
				}
			}
			if !found {
				t.Errorf("%s: leased by killed %s, delivered only by %v, not by a survivor %v", r, owner, helos, survivors)
			}
		}
		if len(helos) > 1 {
			t.Logf("%s delivered %d times (at least once): %v", r, len(helos), helos)
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

// TestMultiNodeKillMidDelivery kills nodes with SIGKILL in the middle of
// deliveries. A node killed during DATA never said 250: no copy of the
// message may appear on any node, not even after it restarts, and the
// sender's retry on another node delivers it exactly once. A node killed
// right after its 250 loses nothing: the message, whole, is on the other
// nodes. (Leased queue work after a kill: TestMultiNodeQueueTakeover.)
func TestMultiNodeKillMidDelivery(t *testing.T) {
	nodes, _ := multiNodes(t, map[string]string{"LOG_LEVEL": "INFO"})
	a, b, c := nodes[0], nodes[1], nodes[2]

	// Killed during DATA, with 1 MiB of 5 sent.
	msg := largeMessage(t, "carol@example.test", "killed mid-data")
	d := dial(t, a.addr[25])
	d.expect("220")
	d.send("EHLO mx.sender.test", "250")
	d.send("MAIL FROM:<bob@sender.test>", "250")
	d.send("RCPT TO:<carol@example.test>", "250")
	d.send("DATA", "354")
	if _, err := io.WriteString(d.conn, msg[:1<<20]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let node A take it in
	a.kill()
	a.start() // its recovery must not deliver the half it had
	for _, n := range nodes {
		if uids := imapSubjectUIDs(t, n.addr[993], "carol@example.test", "Secret-Carol-3", "killed mid-data"); len(uids) != 0 {
			t.Fatalf("a message whose DATA was cut by the kill was delivered: UIDs %v\n%s", uids, a.logs())
		}
	}
	if r := deliverTo(t, b, "bob@sender.test", "carol@example.test", msg); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("the sender's retry on node B: %q\n%s", r, b.logs())
	}
	if uids := imapSubjectUIDs(t, c.addr[993], "carol@example.test", "Secret-Carol-3", "killed mid-data"); len(uids) != 1 {
		t.Fatalf("after the retry: UIDs %v on node C, want exactly one copy", uids)
	}

	// Killed right after its 250, before QUIT.
	msg = largeMessage(t, "carol@example.test", "killed after 250")
	d = dial(t, b.addr[25])
	d.expect("220")
	d.send("EHLO mx.sender.test", "250")
	d.send("MAIL FROM:<bob@sender.test>", "250")
	d.send("RCPT TO:<carol@example.test>", "250")
	d.send("DATA", "354")
	d.send(strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:]+".", "250 ")
	b.kill()
	uids := imapSubjectUIDs(t, c.addr[993], "carol@example.test", "Secret-Carol-3", "killed after 250")
	if len(uids) != 1 {
		t.Fatalf("message that got 250 before the kill: UIDs %v on node C, want one", uids)
	}
	ic := imapOpen(t, c.addr[993])
	ic.cmd("f1", `LOGIN carol@example.test "Secret-Carol-3"`)
	ic.cmd("f2", "EXAMINE INBOX")
	// The header gained Received and Authentication-Results; the body is
	// the sender's, byte for byte.
	_, body, _ := strings.Cut(msg, "\r\n\r\n")
	io.WriteString(ic.conn, "f3 UID FETCH "+uids[0]+" (BODY.PEEK[TEXT])\r\n")
	l := ic.line()
	if !strings.HasSuffix(l, fmt.Sprintf("{%d}", len(body))) {
		t.Fatalf("the copy on node C is not whole: %q, want a body of %d bytes", l, len(body))
	}
	got := make([]byte, len(body))
	if _, err := io.ReadFull(ic.r, got); err != nil || string(got) != body {
		t.Fatalf("the body on node C differs from the one that got 250 (%v)", err)
	}
}
