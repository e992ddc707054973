package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/filter/filtertest"
	"github.com/petrelmail/petrel/internal/store"
)

// Spam to Junk and learning against the real binary: the built-in score
// (failing SPF and DMARC) and rspamd + clamd (real daemons started by the
// test), Mailu's per-user spam settings, and Junk moves over IMAP
// (Python's imaplib) that train the classifier or rspamd.

// spamUsers creates alice (spam_threshold 20: Junk from 4 points) and
// bob (spam_enabled off) before the server starts.
func spamUsers(t *testing.T, settings map[string]string) *server {
	t.Helper()
	s := newServer(t, settings)
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.mustCLI("Secret-Bob-2\n", "user", "bob", "example.test", "-")
	s.mustCLI("user:\n  - email: alice@example.test\n    spam_threshold: 20\n    spam_mark_as_read: false\n"+
		"  - email: bob@example.test\n    spam_enabled: false\n", "config-import", "-u", "-q")
	s.start()
	return s
}

// send25 delivers msg from envFrom to rcpts over port 25 and returns the
// reply to the final dot.
func send25(t *testing.T, s *server, envFrom string, rcpts []string, msg string) string {
	t.Helper()
	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.sender.test", "250")
	d.send("MAIL FROM:<"+envFrom+">", "250")
	for _, r := range rcpts {
		d.send("RCPT TO:<"+r+">", "250")
	}
	d.send("DATA", "354")
	r := d.send(strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:]+".", "")
	d.send("QUIT", "221")
	return r
}

func spamMsg(from, subject, extra string) string {
	return "From: <" + from + ">\r\nTo: <alice@example.test>, <bob@example.test>\r\nSubject: " + subject +
		"\r\nDate: Fri, 04 Dec 2026 18:00:00 +0000\r\nMessage-ID: <" + subject + "@sender.test>\r\n" + extra +
		"\r\nWin a free cruise, claim your casino bonus today.\r\n"
}

// mailboxes lists where user's messages are (mailbox -> count), with the
// server stopped.
func mailboxes(t *testing.T, s *server, user string) map[string]int {
	t.Helper()
	st := openStore(t, s)
	defer st.Close()
	out := map[string]int{}
	for _, mb := range []string{"INBOX", "Junk"} {
		msgs, err := st.ListMessages(context.Background(), user, mb)
		if err != nil {
			t.Fatalf("listing %s %s: %v", user, mb, err)
		}
		out[mb] = len(msgs)
	}
	return out
}

// moveToJunk moves every INBOX message of alice to Junk over IMAP and
// returns the message counts of INBOX and Junk before the move.
func moveToJunk(t *testing.T, s *server) (inbox, junk int) {
	t.Helper()
	script := `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
for box in ("INBOX", "Junk"):
    typ, data = m.status(box, "(MESSAGES)")
    print("STATUS", data[0].decode())
typ, data = m.select("INBOX")
assert typ == "OK" and int(data[0]) >= 1, (typ, data)
typ, data = m.uid("MOVE", "1:*", "Junk")
assert typ == "OK", (typ, data)
print("MOVED", data)
m.logout()
`
	out, err := runPython(t, script, map[string]string{"A993": s.addr[993]})
	if err != nil || !strings.Contains(out, "MOVED") {
		t.Fatalf("imaplib MOVE: %v\n%s\n%s", err, out, s.logs())
	}
	for _, line := range strings.Split(out, "\n") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(line, "STATUS INBOX "), "(MESSAGES %d)", &n); err == nil && strings.HasPrefix(line, "STATUS INBOX") {
			inbox = n
		}
		if _, err := fmt.Sscanf(strings.TrimPrefix(line, "STATUS Junk "), "(MESSAGES %d)", &n); err == nil && strings.HasPrefix(line, "STATUS Junk") {
			junk = n
		}
	}
	return inbox, junk
}

// Without rspamd: failing SPF and DMARC (p=none) give the built-in score
// enough points for alice's 20 % but not for bob, who has spam off; a
// sender that passes stays in alice's INBOX; moving a message into Junk
// trains alice's own classifier.
func TestBuiltinSpamToJunkAndLearning(t *testing.T) {
	dns := dnstest.New(t)
	dns.Add(t,
		`spam.test. TXT "v=spf1 -all"`,
		`_dmarc.spam.test. TXT "v=DMARC1; p=none"`,
		`good.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.good.test. TXT "v=DMARC1; p=none"`,
		`1.0.0.127.in-addr.arpa. PTR mx.good.test.`,
		`mx.good.test. A 127.0.0.1`,
		`quar.test. TXT "v=spf1 -all"`,
		`_dmarc.quar.test. TXT "v=DMARC1; p=quarantine"`,
	)
	s := spamUsers(t, map[string]string{"RESOLVER_ADDRESS": dns.Addr})
	rcpts := []string{"alice@example.test", "bob@example.test"}
	if r := send25(t, s, "promo@spam.test", rcpts, spamMsg("promo@spam.test", "forged", "")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("forged: %q\n%s", r, s.logs())
	}
	if r := send25(t, s, "news@good.test", rcpts, spamMsg("news@good.test", "genuine", "")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("genuine: %q", r)
	}
	// A forged spam header from outside changes nothing.
	if r := send25(t, s, "news@good.test", []string{"alice@example.test"},
		spamMsg("news@good.test", "fakestars", "X-Spam-Level: ***************\r\nX-Spam: Yes\r\n")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("fakestars: %q", r)
	}
	// DMARC p=quarantine goes to Junk even for bob, whose spam filing is off.
	if r := send25(t, s, "news@quar.test", []string{"bob@example.test"}, spamMsg("news@quar.test", "quarantined", "")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("quarantined: %q", r)
	}
	if !s.waitLog("filter verdict") {
		t.Fatalf("no verdict logged:\n%s", s.logs())
	}
	// At delivery: the forged one in Junk, the other two in INBOX.
	if inbox, junk := moveToJunk(t, s); inbox != 2 || junk != 1 {
		t.Errorf("before the move alice had INBOX %d, Junk %d; want 2 and 1", inbox, junk)
	}
	if !s.waitLog("as=spam") {
		t.Fatalf("the Junk move did not train:\n%s", s.logs())
	}
	s.stopClean()
	// alice: the forged one was filed into Junk at delivery, then the
	// two others were moved there.
	if got := mailboxes(t, s, "alice@example.test"); got["Junk"] != 3 || got["INBOX"] != 0 {
		t.Errorf("alice = %v, want 3 in Junk (1 filed, 2 moved)", got)
	}
	if got := mailboxes(t, s, "bob@example.test"); got["INBOX"] != 2 || got["Junk"] != 1 {
		t.Errorf("bob (spam off) = %v, want 2 in INBOX and the DMARC-quarantined one in Junk", got)
	}
	st := openStore(t, s)
	defer st.Close()
	tot, err := st.JunkTotals(context.Background(), []string{"alice@example.test"})
	if err != nil || tot["alice@example.test"] != (store.JunkCounts{Spam: 2}) {
		t.Errorf("alice's classifier totals = %+v %v, want 2 spam", tot, err)
	}
	toks, err := st.JunkTokens(context.Background(), "alice@example.test", []string{"casino", "s:genuine", "s:forged"})
	if err != nil || toks["casino"].Spam != 2 || toks["s:genuine"].Spam != 1 || toks["s:forged"].Spam != 0 {
		t.Errorf("alice's token counts = %+v %v", toks, err)
	}
}

// With rspamd (ANTISPAM_ADDRESS) and clamd (ANTIVIRUS=clamav), both real
// daemons on private ports: GTUBE is refused 550 5.7.1, EICAR 554 5.7.1,
// a message rspamd scores about 8 lands in alice's Junk (20 %) and bob's
// INBOX (spam off) with rspamd's headers, and a Junk move over IMAP makes
// rspamd's controller learn it.
func TestRspamdClamdSpamToJunkAndLearning(t *testing.T) {
	r := filtertest.StartRspamd(t)
	clamd := filtertest.StartClamd(t)
	s := spamUsers(t, map[string]string{
		"ANTISPAM_ADDRESS":            r.Check,
		"ANTISPAM_CONTROLLER_ADDRESS": r.Controller,
		"ANTISPAM_PASSWORD":           filtertest.Password,
		"ANTIVIRUS":                   "clamav",
		"ANTIVIRUS_ADDRESS":           clamd,
	})
	rcpts := []string{"alice@example.test", "bob@example.test"}
	if rep := send25(t, s, "a@sender.test", rcpts, spamMsg("a@sender.test", "gtube", "")+filtertest.GTUBE+"\r\n"); !strings.HasPrefix(rep, "550 5.7.1 ") {
		t.Errorf("GTUBE: %q", rep)
	}
	eicar := "From: <a@sender.test>\r\nTo: <alice@example.test>\r\nSubject: file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.com.txt\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(filtertest.EICAR)) + "\r\n--b--\r\n"
	if rep := send25(t, s, "a@sender.test", rcpts, eicar); !strings.HasPrefix(rep, "554 5.7.1 ") {
		t.Errorf("EICAR: %q", rep)
	}
	if !s.waitLog("virus=Eicar-Test-Signature") {
		t.Errorf("virus not logged:\n%s", s.logs())
	}
	if rep := send25(t, s, "a@sender.test", rcpts, spamMsg("a@sender.test", "spammy", "X-Petrel-Test: spammy\r\n")); !strings.HasPrefix(rep, "250 ") {
		t.Fatalf("spammy: %q\n%s", rep, s.logs())
	}
	if rep := send25(t, s, "a@sender.test", []string{"alice@example.test"}, spamMsg("a@sender.test", "plain", "")); !strings.HasPrefix(rep, "250 ") {
		t.Fatalf("plain: %q", rep)
	}
	before := rspamdLearned(t, r.Controller)
	if inbox, junk := moveToJunk(t, s); inbox != 1 || junk != 1 {
		t.Errorf("before the move alice had INBOX %d, Junk %d; want 1 and 1", inbox, junk)
	}
	deadline := time.Now().Add(30 * time.Second)
	for rspamdLearned(t, r.Controller) <= before && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := rspamdLearned(t, r.Controller); n <= before {
		t.Errorf("rspamd learned %d messages after the Junk move (before: %d)\n%s", n, before, s.logs())
	}
	s.stopClean()
	if got := mailboxes(t, s, "alice@example.test"); got["Junk"] != 2 || got["INBOX"] != 0 {
		t.Errorf("alice = %v, want both in Junk (spammy filed, plain moved)", got)
	}
	if got := mailboxes(t, s, "bob@example.test"); got["INBOX"] != 1 || got["Junk"] != 0 {
		t.Errorf("bob (spam off) = %v, want the spammy one in INBOX", got)
	}
	// The stored copy carries rspamd's verdict as headers.
	st := openStore(t, s)
	defer st.Close()
	msgs, err := st.ListMessages(context.Background(), "bob@example.test", "INBOX")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("bob's INBOX: %v %v", msgs, err)
	}
	rc, err := st.OpenBody(context.Background(), msgs[0].BodyID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 8192)
	n, _ := rc.Read(buf)
	head := string(buf[:n])
	if !strings.Contains(head, "\r\nX-Spam: Yes\r\n") && !strings.HasPrefix(head, "X-Spam: Yes\r\n") || !strings.Contains(head, "X-Spam-Level: *****") {
		t.Errorf("stored message lacks the spam headers:\n%s", head)
	}
}

func rspamdLearned(t *testing.T, controller string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+controller+"/stat", nil)
	req.Header.Set("Password", filtertest.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Learned int `json:"learned"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Learned
}

// An APPEND into Junk over IMAP (Python's imaplib) trains the user's
// classifier as spam, as Mailu's imapsieve does on APPEND; an APPEND into
// INBOX trains nothing; moving the message back out of Junk trains ham.
func TestJunkAppendAndMoveOutTrain(t *testing.T) {
	s := spamUsers(t, map[string]string{"RESOLVER_ADDRESS": dnstest.New(t).Addr})
	const login = `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
def msg(subject, text):
    return ("From: <x@sender.test>\r\nSubject: %s\r\n\r\n%s\r\n" % (subject, text)).encode()
`
	env := map[string]string{"A993": s.addr[993]}
	out, err := runPython(t, login+`
typ, data = m.append("INBOX", None, None, msg("agenda", "minutes of the quarterly budget review"))
assert typ == "OK", (typ, data)
typ, data = m.append("Junk", None, None, msg("jackpot", "claim your casino jackpot now"))
assert typ == "OK" and b"APPENDUID" in data[0], (typ, data)
print("APPENDED", data[0].decode())
m.logout()
`, env)
	if err != nil || !strings.Contains(out, "APPENDED") {
		t.Fatalf("imaplib APPEND: %v\n%s\n%s", err, out, s.logs())
	}
	if !s.waitLog("as=spam") {
		t.Fatalf("the APPEND into Junk did not train:\n%s", s.logs())
	}
	out, err = runPython(t, login+`
typ, data = m.select("Junk")
assert typ == "OK" and int(data[0]) == 1, (typ, data)
typ, data = m.uid("MOVE", "1:*", "INBOX")
assert typ == "OK", (typ, data)
print("MOVED")
m.logout()
`, env)
	if err != nil || !strings.Contains(out, "MOVED") {
		t.Fatalf("imaplib MOVE: %v\n%s\n%s", err, out, s.logs())
	}
	if !s.waitLog("as=ham") {
		t.Fatalf("the move out of Junk did not train ham:\n%s", s.logs())
	}
	s.stopClean()
	st := openStore(t, s)
	defer st.Close()
	ctx := context.Background()
	tot, err := st.JunkTotals(ctx, []string{"alice@example.test"})
	if err != nil || tot["alice@example.test"] != (store.JunkCounts{Spam: 1, Ham: 1}) {
		t.Errorf("alice's classifier totals = %+v %v, want 1 spam (the APPEND) and 1 ham (the move out)", tot, err)
	}
	toks, err := st.JunkTokens(ctx, "alice@example.test", []string{"jackpot", "budget"})
	if err != nil || toks["jackpot"] != (store.JunkCounts{Spam: 1, Ham: 1}) || toks["budget"] != (store.JunkCounts{}) {
		t.Errorf("alice's token counts = %+v %v: want jackpot once spam and once ham, the INBOX append untrained", toks, err)
	}
}
