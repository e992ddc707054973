package imapd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/fts"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

// ftsSearchScript logs in with Python's imaplib, selects a mailbox and
// runs UID SEARCH BODY or TEXT for each needle (non-ASCII ones as a
// UTF-8 literal with CHARSET UTF-8), printing the UIDs found per needle.
const ftsSearchScript = `
import imaplib, json, sys
host, port, user, pw, mailbox, needles = sys.argv[1:7]
m = imaplib.IMAP4(host, int(port), timeout=30)
m.login(user, pw)
typ, _ = m.select(mailbox)
assert typ == "OK", typ
out = {}
for key, needle in json.loads(needles):
    if needle.isascii() and '"' not in needle and '\\' not in needle:
        typ, data = m.uid("SEARCH", key, '"' + needle + '"')
    else:
        m.literal = needle.encode("utf-8")
        typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", key)
    assert typ == "OK", (typ, data)
    out[key + " " + needle] = [int(x) for x in data[0].split()]
m.logout()
print(json.dumps(out))
`

type ftsQuery struct{ key, needle string }

// pySearch runs ftsSearchScript against ts and returns UIDs by query.
func pySearch(t *testing.T, ts *testServer, mailbox string, qs []ftsQuery) map[string][]int {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	var args [][2]string
	for _, q := range qs {
		args = append(args, [2]string{q.key, q.needle})
	}
	js, _ := json.Marshal(args)
	host, port, _ := strings.Cut(ts.addr, ":")
	out, err := exec.Command(py, "-c", ftsSearchScript, host, port, alice, alicePass, mailbox, string(js)).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	res := map[string][]int{}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("imaplib output %q: %v", out, err)
	}
	return res
}

// ftsMessages are the messages the full-text tests deliver, in UID order.
var ftsMessages = []string{
	// 1: quoted-printable, with a soft line break inside a word
	"From: a@remote.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nware zebrafish\r\n",
	// 2: base64
	"From: a@remote.test\r\nSubject: b64\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte("the quokka jumps over\r\n")) + "\r\n",
	// 3: ISO-8859-1
	"From: a@remote.test\r\nSubject: latin1\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdfe aus M\xfcnchen\r\n",
	// 4: HTML
	"From: a@remote.test\r\nSubject: html\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><body><p>Hello <b>Pe</b>trel &amp; friends</p><script>var s = \"scriptword\";</script></body></html>\r\n",
	// 5: a word only in a text attachment
	"From: a@remote.test\r\nSubject: attached\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n" +
		"--XX\r\nContent-Type: text/plain; name=n.txt\r\nContent-Disposition: attachment; filename=n.txt\r\n\r\nnarwhal tusk\r\n--XX--\r\n",
	// 6: a word in the header only
	"From: Headerwordsender <a@remote.test>\r\nSubject: plain\r\n\r\nnothing to see\r\n",
}

// ftsEnv is a server with full-text search on over a given store.
func ftsServer(t *testing.T, pg bool, attachments bool) *testServer {
	return startServer(t, func(ts *testServer, o *Options) {
		o.FullTextSearch = true
		o.FullTextAttachments = attachments
		if pg {
			st, err := sqlstore.Open(context.Background(), sqlstore.Options{
				Flavor: sqlstore.FlavorPostgreSQL, DSN: testutil.PGSchemaDSN(t),
				BlobDir: filepath.Join(ts.dir, "pgblobs"), InlineMax: 4096,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			ctx := context.Background()
			if err := st.CreateDomain(ctx, &store.Domain{Name: testDomain, MaxUsers: -1, MaxAliases: -1}); err != nil {
				t.Fatal(err)
			}
			for _, l := range []string{"alice", "bob"} {
				u := store.NewUser(l, testDomain, 0, 80)
				if err := st.CreateUser(ctx, &u); err != nil {
					t.Fatal(err)
				}
			}
			ts.st = st
			o.Store = st
		}
	})
}

func ftsIndexer(ts *testServer, attachments bool) *fts.Indexer {
	return fts.NewIndexer(fts.IndexerOptions{Store: ts.st, Extract: FullTextExtractor(attachments), Attachments: attachments, Batch: 2})
}

func ftsDialects(t *testing.T, fn func(t *testing.T, pg bool)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, false) })
	t.Run("postgresql", func(t *testing.T) { fn(t, true) })
}

// TestFullTextSearch: SEARCH BODY and TEXT through the index over real
// sockets with imaplib, before and after the indexer ran: decoded
// quoted-printable, base64, ISO-8859-1 and HTML text; words cut at any
// place (IMAP is a substring search); attachments left out; \Junk not
// indexed but still searched.
func TestFullTextSearch(t *testing.T) {
	ftsDialects(t, func(t *testing.T, pg bool) {
		ts := ftsServer(t, pg, false)
		ctx := context.Background()
		deliver(t, ts.st, alice, "INBOX", ftsMessages...)
		deliver(t, ts.st, alice, "Junk", "From: a@remote.test\r\nSubject: junk\r\n\r\nzebrafish in junk\r\n")

		qs := []ftsQuery{
			{"BODY", "software"}, {"BODY", "café"}, {"BODY", "CAFÉ SOFTWARE"}, {"BODY", "quokka jumps"},
			{"BODY", "münchen"}, {"BODY", "grüße"}, {"BODY", "Petrel & friends"}, {"BODY", "scriptword"},
			{"BODY", "<b>"}, {"BODY", "narwhal"}, {"TEXT", "narwhal"}, {"BODY", "headerwordsender"},
			{"TEXT", "headerwordsender"}, {"TEXT", "subject: b64"},
			{"BODY", "ebrafis"}, {"BODY", "zebra"}, {"BODY", "fish"}, {"BODY", "kka jum"}, {"BODY", "e"},
			{"BODY", "@"}, {"BODY", "nowhere-to-be-found"}, {"BODY", "ware z"},
		}
		want := map[string][]int{
			"BODY software": {1}, "BODY café": {1}, "BODY CAFÉ SOFTWARE": {1}, "BODY quokka jumps": {2},
			"BODY münchen": {3}, "BODY grüße": {3}, "BODY Petrel & friends": {4}, "BODY scriptword": nil,
			"BODY <b>": nil, "BODY narwhal": nil, "TEXT narwhal": nil, "BODY headerwordsender": nil,
			"TEXT headerwordsender": {6}, "TEXT subject: b64": {2},
			"BODY ebrafis": {1}, "BODY zebra": {1}, "BODY fish": {1}, "BODY kka jum": {2},
			"BODY e": {1, 2, 3, 4, 5, 6}, "BODY @": nil, "BODY nowhere-to-be-found": nil, "BODY ware z": {1},
		}
		check := func(when string, got map[string][]int) {
			t.Helper()
			for k, w := range want {
				if !slices.Equal(got[k], w) {
					t.Errorf("%s: SEARCH %s = %v, want %v", when, k, got[k], w)
				}
			}
		}
		// Nothing indexed yet: every message is read, with the same rules.
		st, err := ts.st.FullTextStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Indexed != 0 || st.Pending != int64(len(ftsMessages)) || st.Excluded != 1 {
			t.Fatalf("before indexing: %+v", st)
		}
		check("not indexed", pySearch(t, ts, "INBOX", qs))

		// Half indexed: a batch of two, then the rest.
		ix := ftsIndexer(ts, false)
		if _, n, err := ix.Batch(ctx, "", 0); err != nil || n != 2 {
			t.Fatalf("first batch: %d, %v", n, err)
		}
		check("partly indexed", pySearch(t, ts, "INBOX", qs))
		if _, err := ix.IndexAll(ctx, "", nil); err != nil {
			t.Fatal(err)
		}
		st, err = ts.st.FullTextStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Indexed != int64(len(ftsMessages)) || st.Pending != 0 || st.Excluded != 1 || st.TextBytes == 0 {
			t.Fatalf("after indexing: %+v", st)
		}
		check("indexed", pySearch(t, ts, "INBOX", qs))
		check("indexed, second search (floor remembered)", pySearch(t, ts, "INBOX", qs))

		// petrel index rebuild drops the rows: the server's remembered
		// floor no longer holds (the epoch moved) and it reads again.
		if _, err := ts.st.DropFullText(ctx, ""); err != nil {
			t.Fatal(err)
		}
		check("dropped", pySearch(t, ts, "INBOX", qs))
		if _, err := ix.IndexAll(ctx, "", nil); err != nil {
			t.Fatal(err)
		}
		check("indexed again", pySearch(t, ts, "INBOX", qs))

		// \Junk is left out of the index and still searched.
		got := pySearch(t, ts, "Junk", []ftsQuery{{"BODY", "zebrafish"}, {"BODY", "brafi"}})
		if !slices.Equal(got["BODY zebrafish"], []int{1}) || !slices.Equal(got["BODY brafi"], []int{1}) {
			t.Errorf("Junk: %v", got)
		}

		// A message delivered after the indexer ran is found unindexed.
		deliver(t, ts.st, alice, "INBOX", "From: a@remote.test\r\nSubject: late\r\n\r\nlate zebrafish\r\n")
		got = pySearch(t, ts, "INBOX", []ftsQuery{{"BODY", "zebrafish"}, {"BODY", "ebraf"}})
		if !slices.Equal(got["BODY zebrafish"], []int{1, 7}) || !slices.Equal(got["BODY ebraf"], []int{1, 7}) {
			t.Errorf("with one unindexed message: %v", got)
		}
	})
}

// TestFullTextAttachments: with FULL_TEXT_SEARCH_ATTACHMENTS a word in a
// text attachment is indexed and found.
func TestFullTextAttachments(t *testing.T) {
	ftsDialects(t, func(t *testing.T, pg bool) {
		ts := ftsServer(t, pg, true)
		deliver(t, ts.st, alice, "INBOX", ftsMessages...)
		qs := []ftsQuery{{"BODY", "narwhal"}, {"TEXT", "narwhal tusk"}, {"BODY", "arwha"}}
		// Not indexed; indexed without attachments (FULL_TEXT_SEARCH_ATTACHMENTS
		// turned on later: those rows count as missing); indexed with them.
		for i, when := range []string{"not indexed", "indexed without attachments", "indexed with attachments"} {
			if i > 0 {
				if _, err := ftsIndexer(ts, i == 2).IndexAll(context.Background(), "", nil); err != nil {
					t.Fatal(err)
				}
			}
			got := pySearch(t, ts, "INBOX", qs)
			for _, q := range qs {
				if k := q.key + " " + q.needle; !slices.Equal(got[k], []int{5}) {
					t.Errorf("%s: SEARCH %s = %v, want [5]", when, k, got[k])
				}
			}
		}
		st, err := ts.st.FullTextStatus(context.Background())
		if err != nil || st.Indexed != int64(len(ftsMessages)) {
			t.Errorf("status %+v, %v", st, err)
		}
	})
}

// TestFullTextExpunge: the index row goes with the body when the last
// message using it is expunged.
func TestFullTextExpunge(t *testing.T) {
	ftsDialects(t, func(t *testing.T, pg bool) {
		ts := ftsServer(t, pg, false)
		ctx := context.Background()
		deliver(t, ts.st, alice, "INBOX", ftsMessages[:2]...)
		if n, err := ftsIndexer(ts, false).IndexAll(ctx, "", nil); err != nil || n != 2 {
			t.Fatalf("indexed %d, %v", n, err)
		}
		c := ts.login(alice, alicePass)
		c.ok("SELECT INBOX")
		c.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
		c.ok("EXPUNGE")
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := ts.st.FullTextStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Indexed == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("index rows after expunge: %+v, want 1", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		u := c.ok("UID SEARCH BODY quokka")
		mustHave(t, u, "* SEARCH 2")
	})
}
