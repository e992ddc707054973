package imapd

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

// TestSearchStoredFields runs the header searches that the stored fields
// answer over IMAP: messages stored before the fields existed (filled in
// at the first search) and after (indexed at delivery and APPEND), with
// encoded words, address parts, substrings and case; then the column
// grows with a new delivery and forgets nothing after an expunge.
func TestSearchStoredFields(t *testing.T) {
	ts := startServer(t, nil)
	old := "From: =?UTF-8?Q?Jos=C3=A9?= <jose@one.example> (sales)\r\nTo: team@two.example\r\n" +
		"Subject: =?ISO-8859-1?Q?Caf=E9?= order\r\nMessage-ID: <old-1@one.example>\r\n\r\nbody\r\n"
	deliver(t, ts.st, alice, "INBOX", old, testMessage("Lunch Plans")) // UIDs 1, 2: no fields stored
	ts.st.SetHeaderIndexer(HeaderIndexer())
	deliver(t, ts.st, alice, "INBOX", "From: \"Smith, Ann\" <ann@three.example>\r\nCc: Bob <bob@one.example>\r\n"+
		"Subject: lunch tomorrow\r\nMessage-ID: <new-3@three.example>\r\n\r\nbody\r\n") // UID 3
	c := ts.login(alice, alicePass)
	msg := "From: Carol <carol@four.example>\r\nSubject: =?UTF-8?B?w5xiZXIgbHVuY2g=?=\r\n\r\nbody\r\n"
	c.send("a1 APPEND INBOX {" + uitoa(uint32(len(msg))) + "+}\r\n" + msg + "\r\n") // UID 4
	if _, tagged := c.collect("a1"); tagged[:2] != "OK" {
		t.Fatalf("APPEND: %s", tagged)
	}
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ criteria, want string }{
		{"SUBJECT lunch", "* SEARCH 2 3 4"},
		{"SUBJECT LUNCH", "* SEARCH 2 3 4"},
		{"SUBJECT \"café\"", "* SEARCH 1"}, // Q-encoded ISO-8859-1
		{"SUBJECT \"ÜBER\"", "* SEARCH 4"}, // B-encoded UTF-8, case-folded
		{"SUBJECT \"lunch t\"", "* SEARCH 3"},
		{"FROM \"josé\"", "* SEARCH 1"},
		{"FROM sales", "* SEARCH"}, // a comment is not an envelope address
		{"HEADER From sales", "* SEARCH 1"},
		{"FROM one.example", "* SEARCH 1"},
		{"FROM \"smith, ann\"", "* SEARCH 3"},
		{"FROM remote.test", "* SEARCH 2"},
		{"TO team@", "* SEARCH 1"},
		{"CC bob", "* SEARCH 3"},
		{"OR CC one.example FROM carol", "* SEARCH 3 4"},
		{"BCC anything", "* SEARCH"},
		{"HEADER Message-ID new-3@", "* SEARCH 3"},
		{"HEADER MESSAGE-ID <OLD-1", "* SEARCH 1"},
		{"SUBJECT lunch NOT FROM ann", "* SEARCH 2 4"},
		{"UID 2:3 SUBJECT lunch", "* SEARCH 2 3"},
	} {
		u := c.ok("SEARCH " + tc.criteria)
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("SEARCH %s: %q, want %q", tc.criteria, u, tc.want)
		}
	}
	// The first search stored the old messages' fields.
	hs := store.HeaderSearch(ts.st)
	mb, err := ts.st.GetMailbox(context.Background(), alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	err = hs.HeaderColumn(context.Background(), mb.ID, store.FieldFrom, 1, func(uid uint32, _ int64, v string, ok, st bool) error {
		if st {
			stored++
		}
		return nil
	})
	if err != nil || stored != 4 {
		t.Fatalf("%d of 4 bodies have stored fields (%v)", stored, err)
	}
	// A new delivery joins the cached column; an expunged message leaves
	// the answers.
	// UIDs 5 and 7 indexed at delivery, 6 between them without: one
	// load of the column fills 6 in between the others.
	deliver(t, ts.st, alice, "INBOX", testMessage("late lunch"))
	ts.st.SetHeaderIndexer(nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("no index lunch"))
	ts.st.SetHeaderIndexer(HeaderIndexer())
	deliver(t, ts.st, alice, "INBOX", testMessage("dinner"), testMessage("LUNCH again"))
	c.ok("NOOP")
	if u := c.ok("UID SEARCH SUBJECT lunch"); len(u) != 1 || u[0] != "* SEARCH 2 3 4 5 6 8" {
		t.Errorf("after deliveries: %q", u)
	}
	if u := c.ok(`UID SEARCH SUBJECT "no index"`); len(u) != 1 || u[0] != "* SEARCH 6" {
		t.Errorf("the message filled in between: %q", u)
	}
	if u := c.ok("UID SEARCH SUBJECT dinner"); len(u) != 1 || u[0] != "* SEARCH 7" {
		t.Errorf("the message after it: %q", u)
	}
	c.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	if u := c.ok("UID SEARCH SUBJECT lunch"); len(u) != 1 || u[0] != "* SEARCH 2 4 5 6 8" {
		t.Errorf("after an expunge: %q", u)
	}
}

// searchScript runs header searches with Python's imaplib, an independent
// client (a UTF-8 literal included), and prints the UIDs found as JSON.
const searchScript = `
import imaplib, json, sys
host, port, user, pw = sys.argv[1:5]
m = imaplib.IMAP4(host, int(port), timeout=20)
m.login(user, pw)
m.select("INBOX")
out = {}
for k, args in [("from_name", ("FROM", '"smith, ann"')), ("from_host", ("FROM", "one.example")),
                ("comment", ("FROM", "sales")), ("header_from", ("HEADER", "From", "sales")),
                ("subject_case", ("SUBJECT", "LUNCH")), ("msgid", ("HEADER", "Message-ID", "new-3@")),
                ("or", ("OR", "CC", "bob", "TO", "team")),
                ("to_group_member", ("TO", "six.example")),
                ("to_group_name", ("TO", "crew")), ("to_raw_encoded", ("TO", "=?utf-8?")),
                ("bcc_addr", ("BCC", "hidden@seven"))]:
    typ, data = m.uid("SEARCH", *args)
    out[k] = data[0].decode()
m.literal = "CAFÉ".encode()
typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")
out["literal"] = data[0].decode()
m.literal = "jürgen MÜLLER".encode()
typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", "TO")
out["to_encoded_name"] = data[0].decode()
m.logout()
print(json.dumps(out))
`

func TestSearchStoredFieldsImaplib(t *testing.T) {
	searchStoredFieldsImaplib(t, startServer(t, nil))
}

// The same searches with the store on PostgreSQL: the stored fields and
// the column loads go through its dialect (RFC 3501 6.4.4's envelope
// addresses on both databases).
func TestSearchStoredFieldsImaplibPostgres(t *testing.T) {
	searchStoredFieldsImaplib(t, startServerPG(t))
}

// startServerPG is startServer with the store on PostgreSQL (a fresh
// schema of PETREL_TEST_PG_DSN; skipped without it) and alice in it.
func startServerPG(t testing.TB) *testServer {
	dsn := testutil.PGSchemaDSN(t)
	return startServer(t, func(ts *testServer, o *Options) {
		st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: "postgresql", DSN: dsn,
			BlobDir: filepath.Join(ts.dir, "pgblobs"), InlineMax: 4096})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.CreateDomain(context.Background(), &store.Domain{Name: testDomain, MaxUsers: -1, MaxAliases: -1}); err != nil {
			t.Fatal(err)
		}
		u := store.NewUser("alice", testDomain, 0, 80)
		if err := st.CreateUser(context.Background(), &u); err != nil {
			t.Fatal(err)
		}
		ts.st, o.Store = st, st
	})
}

func searchStoredFieldsImaplib(t *testing.T, ts *testServer) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	// UID 1 stored before the fields existed, 2 with them.
	deliver(t, ts.st, alice, "INBOX", "From: =?UTF-8?Q?Jos=C3=A9?= <jose@one.example> (sales)\r\nTo: team@two.example\r\n"+
		"Subject: =?ISO-8859-1?Q?Caf=E9?= order\r\n\r\nbody\r\n")
	ts.st.SetHeaderIndexer(HeaderIndexer())
	deliver(t, ts.st, alice, "INBOX", "From: \"Smith, Ann\" <ann@three.example>\r\nCc: Bob <bob@one.example>\r\n"+
		"Subject: lunch tomorrow\r\nMessage-ID: <new-3@three.example>\r\n\r\nbody\r\n")
	// UID 3: an encoded-word display name, a group, a Bcc.
	deliver(t, ts.st, alice, "INBOX", "From: x@five.example\r\nTo: =?utf-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@five.example>,\r\n"+
		" Crew: a@six.example, b@six.example;\r\nBcc: hidden@seven.example\r\nSubject: group\r\n\r\nbody\r\n")
	host, port, _ := net.SplitHostPort(ts.addr)
	out, err := exec.Command(py, "-c", searchScript, host, port, alice, alicePass).Output()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]string{"from_name": "2", "from_host": "1", "comment": "", "header_from": "1",
		"subject_case": "2", "msgid": "2", "or": "1 2", "literal": "1",
		"to_encoded_name": "3", "to_group_member": "3", "to_group_name": "3", "to_raw_encoded": "", "bcc_addr": "3"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: UIDs %q, want %q", k, got[k], w)
		}
	}
}
