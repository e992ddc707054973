package tests

// Two `petrel serve` nodes on one PostgreSQL: a Mailu DKIM key file is
// imported into the store. The checks of the three-node suite
// (multinode_test.go) are here too: large bodies, DKIM on every node,
// shared login and message limits. Skipped without PETREL_TEST_PG_DSN
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

// trySubmit submits one message on 465 and returns the error of the
// first step that failed (nil when it was accepted).
func trySubmit(t *testing.T, s *server, user, pw, to, msg string) error {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(smtp.PlainAuth("", user, pw, "mail.example.test")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail(user); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// checkMessageRateShared: MESSAGE_RATELIMIT spread over the nodes is one
// limit: dave's messages through A, B and C in turn stop at the limit,
// and then every node refuses the next with 450 4.2.1.
func checkMessageRateShared(t *testing.T, nodes []*server) {
	for i := range multiNodeRate {
		msg := fmt.Sprintf("From: dave@example.test\r\nTo: friend@remote.example\r\nSubject: rate %d\r\n\r\nMessage %d.\r\n", i, i)
		if err := trySubmit(t, nodes[i%len(nodes)], "dave@example.test", "Secret-Dave-4", "friend@remote.example", msg); err != nil {
			t.Fatalf("message %d of %d on node %d: %v", i+1, multiNodeRate, i%len(nodes), err)
		}
	}
	for i, n := range nodes {
		err := trySubmit(t, n, "dave@example.test", "Secret-Dave-4", "friend@remote.example", "Subject: over\r\n\r\nover\r\n")
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != 450 || !strings.HasPrefix(te.Msg, "4.2.1") {
			t.Errorf("node %d after %d messages in all: %v, want 450 4.2.1", i, multiNodeRate, err)
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
