package tests

// Several `petrel serve` nodes on one PostgreSQL (issue 16): three
// processes A, B and C, each with its own DATA_DIR (nothing shared on
// disk) and ports, on one fresh schema.
//
//	PETREL_TEST_PG_DSN=... go test -race ./tests -run 'TestMultiNode' -v -count=1
//
// TestMultiNode covers what the nodes share while they run (IDLE
// notifications, large bodies, DKIM keys, credentials, failed-login
// limits); TestMultiNodeCrash (multinode_crash_test.go) kills nodes with
// SIGKILL mid-delivery and mid-queue. Skipped when PETREL_TEST_PG_DSN is
// unset (.ci/run starts PostgreSQL and sets it; see
// internal/store/sqlstore/testdata/pg-start.sh).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/testutil"
)

var nodeNames = []string{"a", "b", "c"}

// nodeHost is node i's HOSTNAMES (and so its EHLO name towards RELAYHOST).
func nodeHost(i int) string { return "node-" + nodeNames[i] + ".example.test" }

// multiNodes prepares three nodes on one fresh schema with alice and bob
// (created through node A's CLI), runs prep (if any) before any node
// starts, and starts them.
func multiNodes(t *testing.T, settings map[string]string, prep func(nodes []*server)) (nodes []*server, dsn string) {
	t.Helper()
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		t.Skip("multi-node suite skipped: PETREL_TEST_PG_DSN not set (start PostgreSQL with internal/store/sqlstore/testdata/pg-start.sh)")
	}
	dsn = testutil.PGSchemaDSN(t)
	for i := range nodeNames {
		env := map[string]string{
			"SQLALCHEMY_DATABASE_URI": dsn,
			"HOSTNAMES":               nodeHost(i),
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
	if prep != nil {
		prep(nodes)
	}
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
// loginUntil logs in over and over until the answer starts with want,
// for at most a second, and returns the last answer: a change made on
// another node counts on this one once its notification has arrived.
func loginUntil(t *testing.T, addr, user, pw, want string) string {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		r := imapLogin(t, addr, user, pw)
		if strings.HasPrefix(r, want) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func imapLogin(t *testing.T, addr, user, pw string) string {
	c := imapOpen(t, addr)
	defer c.conn.Close()
	return c.cmd("a1", fmt.Sprintf("LOGIN %s %q", user, pw))
}

func TestMultiNode(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	var carolKey []byte
	nodes, _ := multiNodes(t, map[string]string{
		"RELAYHOST":         fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		"LOG_LEVEL":         "INFO",
		"MESSAGE_RATELIMIT": fmt.Sprintf("%d/hour", multiNodeRate),
	}, func(nodes []*server) {
		a, b := nodes[0], nodes[1]
		a.mustCLI("Secret-Dave-4\n", "user", "dave", "example.test", "-")
		// A fresh key for example.test through node A, replacing the one
		// the domain got: every node must sign with it from the store.
		a.mustCLI("", "dkim", "example.test")
		// mailu.test comes without a key; node B alone gets Mailu's key
		// file at its DKIM_PATH and imports it when it starts.
		conf := filepath.Join(t.TempDir(), "conf.yaml")
		if err := os.WriteFile(conf, []byte("domain:\n  - name: mailu.test\n    dkim_key: ''\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.mustCLI("", "config-import", "--update", conf)
		a.mustCLI("Secret-Carol-3\n", "user", "carol", "mailu.test", "-")
		if rec := a.mustCLI("", "dns", "mailu.test"); strings.Contains(rec, "v=DKIM1") {
			t.Fatalf("mailu.test has a key before the import:\n%s", rec)
		}
		carolKey = writeDKIM(t, filepath.Join(b.dataDir, "dkim"), "mailu.test")
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

	t.Run("LargeMessageAToC", func(t *testing.T) {
		// A 5 MiB message delivered on node A is fetched byte-identical
		// over IMAP on node C: bodies over the inline limit (128 KiB) are
		// in PostgreSQL, not in A's DATA_DIR, and A keeps no spool file
		// of it once delivered.
		raw := make([]byte, 5<<20*3/4)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		enc := base64.StdEncoding.EncodeToString(raw)
		for len(enc) > 0 {
			n := min(76, len(enc))
			body.WriteString(enc[:n] + "\r\n")
			enc = enc[n:]
		}
		original := "From: <bob@sender.test>\r\nTo: <alice@example.test>\r\nSubject: large\r\n" +
			"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body.String()
		if r := deliver25(t, a, "bob@sender.test", original); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("delivery on node A: %q\n%s", r, a.logs())
		}
		sum := sha256.Sum256([]byte(original))
		script := `
import hashlib, imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["C993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
typ, data = m.uid("SEARCH", "SUBJECT", "large")
assert typ == "OK" and len(data[0].split()) == 1, (typ, data)
typ, data = m.uid("FETCH", data[0].split()[0], "(BODY.PEEK[])")
assert typ == "OK", typ
msg = data[0][1]
n = int(os.environ["LEN"])
print("LEN", len(msg))
print("SUFFIX", hashlib.sha256(msg[-n:]).hexdigest())
m.logout()
`
		out, err := runPython(t, script, map[string]string{"C993": c.addr[993], "LEN": fmt.Sprint(len(original))})
		if err != nil {
			t.Fatalf("imaplib on node C: %v\n%s\n%s", err, out, c.logs())
		}
		// The stored copy has a Received header (and Authentication-
		// Results) in front: the client's message is its tail.
		if !strings.Contains(out, "SUFFIX "+hex.EncodeToString(sum[:])) {
			t.Fatalf("node C's copy is not the message node A took (want SHA-256 %x of the last %d bytes):\n%s",
				sum, len(original), out)
		}
		// A's spool file goes once the message is stored; B and C never
		// had one.
		deadline := time.Now().Add(20 * time.Second)
		for {
			files := blobFiles(t, a.dataDir)
			if len(files) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node A keeps %v after delivery", files)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, n := range []*server{b, c} {
			if files := blobFiles(t, n.dataDir); len(files) != 0 {
				t.Fatalf("node %s has blob files %v", n.env["HOSTNAMES"], files)
			}
		}
	})

	t.Run("DKIMOnEveryNode", func(t *testing.T) {
		// The key generated through node A signs mail submitted on each
		// of A, B and C, and verifies against the record node A
		// publishes.
		lookup := dkimLookup(t, a, "example.test")
		for i, n := range nodes {
			to := fmt.Sprintf("friend-%s@remote.example", nodeNames[i])
			msg := fmt.Sprintf("From: Alice <alice@example.test>\r\nTo: %s\r\nSubject: from node %s\r\n\r\nSigned on %s.\r\n", to, nodeNames[i], nodeNames[i])
			submit(t, n, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{to}, msg)
			got := sinkFor(t, sink, to, n)
			if got.Helo != nodeHost(i) {
				t.Errorf("%s went out through %q, want node %s", to, got.Helo, nodeHost(i))
			}
			verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: lookup})
			if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.test" {
				t.Errorf("node %s: DKIM verification against node A's record: err=%v verifs=%+v\n%s", nodeNames[i], err, verifs, got.Data)
			}
		}
		// Mailu's key file at node B's DKIM_PATH was imported when B
		// started, and signs on node A.
		if !b.waitLog("DKIM keys imported from DKIM_PATH into the store") {
			t.Fatalf("node B did not import the key file:\n%s", b.logs())
		}
		const to = "friend-carol@remote.example"
		msg := "From: carol@mailu.test\r\nTo: " + to + "\r\nSubject: imported key\r\n\r\nHi.\r\n"
		submit(t, a, "carol@mailu.test", "Secret-Carol-3", "carol@mailu.test", []string{to}, msg)
		got := sinkFor(t, sink, to, a)
		verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: dkimLookup(t, b, "mailu.test")})
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
			t.Errorf("imported key: DKIM verification: err=%v verifs=%+v\n%s", err, verifs, got.Data)
		}
		exported := a.mustCLI("", "config-export", "--secrets")
		if !strings.Contains(exported, strings.SplitN(strings.TrimSpace(string(carolKey)), "\n", 3)[1]) {
			t.Errorf("config-export on node A does not carry the imported key")
		}
		// No node keeps a key file of its own (only B's imported Mailu file is there).
		for _, n := range []*server{a, c} {
			if _, err := os.Stat(filepath.Join(n.dataDir, "dkim")); !os.IsNotExist(err) {
				t.Errorf("node %s wrote a DKIM directory: %v", n.env["HOSTNAMES"], err)
			}
		}
		if keys, _ := filepath.Glob(filepath.Join(b.dataDir, "dkim", "*")); len(keys) != 1 {
			t.Errorf("node B's DKIM_PATH holds %v, want only the imported Mailu file", keys)
		}
	})

	t.Run("MessageRateShared", func(t *testing.T) { checkMessageRateShared(t, nodes) })

	t.Run("PasswordChangeOnA", func(t *testing.T) {
		// A login on C fills C's credential cache with the old password.
		if r := imapLogin(t, c.addr[993], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, "a1 OK") {
			t.Fatalf("login on C before the change: %s", r)
		}
		a.mustCLI("", "password", "bob", "example.test", "New-Bob-3")
		// C's configuration cache holds bob from that login until the
		// change's notification reaches C, milliseconds after A's commit
		// (docs/multinode.md); the cache alone would keep him 5 s.
		if r := loginUntil(t, c.addr[993], "bob@example.test", "Secret-Bob-2", imapBadAuth); !strings.HasPrefix(r, imapBadAuth) {
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
			if r := loginUntil(t, n.addr[993], "bob@example.test", "New-Bob-3", "a1 NO"); !strings.HasPrefix(r, "a1 NO") {
				t.Errorf("disabled user's login: %s", r)
			}
		}
	})

	t.Run("SharedLoginLimit", func(t *testing.T) {
		// Failed logins spread over the three nodes meet one limit: the
		// counters are in PostgreSQL, so an attacker does not get
		// AUTH_RATELIMIT_USER_NETWORK once per node.
		bad, limited := 0, 0
		for i := range 30 {
			n := nodes[i%3]
			r, err := imapLoginFrom("127.0.5.1", n.addr[993], "alice@example.test", fmt.Sprintf("guess-%d", i))
			switch {
			case strings.HasPrefix(r, imapBadAuth):
				bad++
			case strings.HasPrefix(r, imapLimited):
				limited++
			default:
				t.Fatalf("guess %d: %q %v", i, r, err)
			}
		}
		// AUTH_RATELIMIT_USER_NETWORK is 10/day: ten guesses in all, not per node.
		if bad != 10 || limited != 20 {
			t.Fatalf("attacker over three nodes: %d AUTHENTICATIONFAILED, %d LIMIT; want 10 and 20", bad, limited)
		}
		for _, n := range nodes {
			r, err := imapLoginFrom("127.0.5.2", n.addr[993], "alice@example.test", "Secret-Alice-1")
			if !strings.HasPrefix(r, imapLimited) {
				t.Fatalf("alice from the attacking network: %q (%v), want %s", r, err, imapLimited)
			}
			r, err = abuseAuth465("127.0.5.3", n.addr[465], "alice@example.test", "Secret-Alice-1")
			if !strings.HasPrefix(r, smtpLimited) {
				t.Fatalf("alice on 465 from the attacking network: %q (%v), want %s", r, err, smtpLimited)
			}
		}
		// Her other networks are not locked out, on any node.
		for _, n := range nodes {
			r, err := imapLoginFrom("127.0.7.1", n.addr[993], "alice@example.test", "Secret-Alice-1")
			if !strings.HasPrefix(r, imapOK) {
				t.Fatalf("alice from another network on node %s: %q (%v)", n.env["HOSTNAMES"], r, err)
			}
		}
	})
}

// sinkFor waits until the sink has a message for rcpt and returns it.
func sinkFor(t *testing.T, sink *sinktest.Sink, rcpt string, s *server) sinktest.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range sink.Messages() {
			for _, r := range m.To {
				if r == rcpt {
					return m
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the relay host got no message for %s\n%s", rcpt, s.logs())
	return sinktest.Message{}
}

// blobFiles lists the message files under a DATA_DIR's blob directory.
func blobFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dataDir, "blobs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
