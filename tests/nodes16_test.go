package tests

// Two `petrel serve` nodes on one PostgreSQL: a Mailu DKIM key file is
// imported into the store, MESSAGE_RATELIMIT and greylisting are shared.
// The checks of the three-node suite (multinode_test.go) are here too:
// large bodies, DKIM on every node, shared login and message limits.
// Skipped without PETREL_TEST_PG_DSN
// (internal/store/sqlstore/testdata/pg-start.sh).

import (
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
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
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

// A Mailu key file at node B's DKIM_PATH that the store lacks is imported
// when B starts, and then signs on node A too.
func TestNodesImportDKIMFile(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	a, b := twoNodes(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	// mailu.test comes without a key; node B alone gets Mailu's key file.
	conf := filepath.Join(t.TempDir(), "conf.yaml")
	if err := os.WriteFile(conf, []byte("domain:\n  - name: mailu.test\n    dkim_key: ''\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.mustCLI("", "config-import", conf)
	a.mustCLI("Secret-Carol-3\n", "user", "carol", "mailu.test", "-")
	if rec := a.mustCLI("", "dns", "mailu.test"); strings.Contains(rec, "v=DKIM1") {
		t.Fatalf("mailu.test has a key before the import:\n%s", rec)
	}
	key := writeDKIM(t, filepath.Join(b.dataDir, "dkim"), "mailu.test")
	b.start()
	if !b.waitLog("DKIM keys imported from DKIM_PATH into the store") {
		t.Fatalf("node B did not import the key file:\n%s", b.logs())
	}
	a.start()
	msg := "From: carol@mailu.test\r\nTo: friend@remote.example\r\nSubject: imported key\r\n\r\nHi.\r\n"
	submit(t, a, "carol@mailu.test", "Secret-Carol-3", "carol@mailu.test", []string{"friend@remote.example"}, msg)
	got := waitSink(t, sink, 1, a)[0]
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: dkimLookup(t, b, "mailu.test")})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("DKIM verification: err=%v verifs=%+v\n%s", err, verifs, got.Data)
	}
	exported := a.mustCLI("", "config-export", "--secrets")
	if !strings.Contains(exported, strings.SplitN(strings.TrimSpace(string(key)), "\n", 3)[1]) {
		t.Errorf("config-export on node A does not carry the imported key")
	}
	if _, err := os.Stat(filepath.Join(a.dataDir, "dkim")); !os.IsNotExist(err) {
		t.Errorf("node A wrote a DKIM directory: %v", err)
	}
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

// multiNodeRate is MESSAGE_RATELIMIT's count per hour in TestMultiNode.
const multiNodeRate = 5

// deliverTo runs one port-25 transaction to rcpt and returns the reply to
// the final dot.
func deliverTo(t *testing.T, s *server, envFrom, rcpt, msg string) string {
	t.Helper()
	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.sender.test", "250")
	d.send("MAIL FROM:<"+envFrom+">", "250")
	d.send("RCPT TO:<"+rcpt+">", "250")
	d.send("DATA", "354")
	r := d.send(strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:]+".", "")
	d.send("QUIT", "221")
	return r
}

// imapSubjectUIDs logs in on addr and returns the UIDs in INBOX whose
// Subject holds subject.
func imapSubjectUIDs(t *testing.T, addr, user, pw, subject string) []string {
	t.Helper()
	c := imapOpen(t, addr)
	defer c.conn.Close()
	if r := c.cmd("s1", fmt.Sprintf("LOGIN %s %q", user, pw)); !strings.HasPrefix(r, "s1 OK") {
		t.Fatalf("LOGIN on %s: %s", addr, r)
	}
	if r := c.cmd("s2", "SELECT INBOX"); !strings.HasPrefix(r, "s2 OK") {
		t.Fatalf("SELECT on %s: %s", addr, r)
	}
	io.WriteString(c.conn, fmt.Sprintf("s3 UID SEARCH SUBJECT %q\r\n", subject))
	var uids []string
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, "* SEARCH"); ok {
			uids = append(uids, strings.Fields(rest)...)
		}
		if strings.HasPrefix(l, "s3 ") {
			if !strings.HasPrefix(l, "s3 OK") {
				t.Fatalf("SEARCH on %s: %s", addr, l)
			}
			return uids
		}
	}
}

// largeMessage is a base64 attachment message of about 5 MiB, over the
// inline limit (its body goes to body_chunk rows on PostgreSQL).
func largeMessage(t *testing.T, rcpt, subject string) string {
	t.Helper()
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
	return "From: <bob@sender.test>\r\nTo: <" + rcpt + ">\r\nSubject: " + subject + "\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body.String()
}

// checkLargeMessage: a 5 MiB message delivered on node from is fetched
// byte-identical over IMAP (Python's imaplib) on node to; no node keeps a
// file of it once it is stored.
func checkLargeMessage(t *testing.T, nodes []*server, from, to *server) {
	original := largeMessage(t, "carol@example.test", "large across nodes")
	if r := deliverTo(t, from, "bob@sender.test", "carol@example.test", original); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("delivery: %q\n%s", r, from.logs())
	}
	sum := sha256.Sum256([]byte(original))
	script := `
import hashlib, imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["ADDR"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("carol@example.test", "Secret-Carol-3")
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
typ, data = m.uid("SEARCH", "SUBJECT", '"large across nodes"')
uids = data[0].split()
assert len(uids) == 1, uids
typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[])")
assert typ == "OK", typ
msg = data[0][1]
n = int(os.environ["LEN"])
print("LEN", len(msg))
print("SUFFIX", hashlib.sha256(msg[-n:]).hexdigest())
m.logout()
`
	out, err := runPython(t, script, map[string]string{"ADDR": to.addr[993], "LEN": fmt.Sprint(len(original))})
	if err != nil {
		t.Fatalf("imaplib on the other node: %v\n%s\n%s", err, out, to.logs())
	}
	if !strings.Contains(out, "SUFFIX "+hex.EncodeToString(sum[:])) {
		t.Fatalf("the other node's copy is not the message taken (want SHA-256 %x of the last %d bytes):\n%s",
			sum, len(original), out)
	}
	// The receiving node's spool file goes once the message is stored;
	// the others never had one.
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			files := blobFiles(t, n.dataDir)
			if len(files) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a node keeps %v after delivery", files)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// checkDKIMEveryNode: alice submits through each node in turn; every
// copy the remote end receives carries a signature that verifies against
// the one published record, and no node keeps a key file.
func checkDKIMEveryNode(t *testing.T, nodes []*server, sink *sinktest.Sink) {
	before := len(sink.Messages())
	for i, n := range nodes {
		msg := fmt.Sprintf("From: Alice <alice@example.test>\r\nTo: friend@remote.example\r\nSubject: signed on node %d\r\n\r\nHello from node %d.\r\n", i, i)
		submit(t, n, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{"friend@remote.example"}, msg)
	}
	got := waitSink(t, sink, before+len(nodes), nodes[0])[before:]
	lookup := dkimLookup(t, nodes[0], "example.test")
	signedBy := map[string]bool{}
	for _, m := range got {
		verifs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.test" {
			t.Fatalf("copy relayed by %s: DKIM err=%v verifs=%+v\n%s", m.Helo, err, verifs, m.Data)
		}
		signedBy[m.Helo] = true
	}
	if len(signedBy) != len(nodes) {
		t.Fatalf("signed copies came from %v, want every one of %d nodes", signedBy, len(nodes))
	}
	for _, n := range nodes {
		if keys, _ := filepath.Glob(filepath.Join(n.dataDir, "dkim", "*")); len(keys) != 0 {
			t.Errorf("a node keeps DKIM key files although DKIM_PATH is unset: %v", keys)
		}
	}
}

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

// checkLoginLimitShared: failed logins spread over the nodes meet one
// limit (the counters are in PostgreSQL), so an attacker does not get
// AUTH_RATELIMIT_USER_NETWORK once per node; the owner's other networks
// still get in.
func checkLoginLimitShared(t *testing.T, nodes []*server) {
	bad, limited := 0, 0
	for i := range 30 {
		n := nodes[i%len(nodes)]
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
		t.Fatalf("attacker over %d nodes: %d AUTHENTICATIONFAILED, %d LIMIT; want 10 and 20", len(nodes), bad, limited)
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
		r, err = imapLoginFrom("127.0.7.1", n.addr[993], "alice@example.test", "Secret-Alice-1")
		if !strings.HasPrefix(r, imapOK) {
			t.Fatalf("alice from another network: %q (%v)", r, err)
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
