package filter

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/testutil"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Greylisting as postgrey and Mailu's rspamd do it: the first attempt of
// a triplet gets 451 4.7.1, a retry before the delay too, a retry after
// it passes and the triplet stays allowed; the client network is /19
// (IPv4) or /64 (IPv6); SPF/DMARC-passing senders with a low score skip
// it; two nodes sharing the store see the same triplets.
func TestGreylisting(t *testing.T) {
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice")
	ck := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	newNode := func() *Filter {
		return New(Options{Builtin: NewBuiltin(BuiltinOptions{Store: st, Greylisting: true, Now: ck.now})})
	}
	node1, node2 := newNode(), newNode()
	ctx := context.Background()
	m := msgOf(plainMsg)
	m.RemoteIP = netip.MustParseAddr("198.51.100.20")
	check := func(f *Filter, m *Message) Verdict {
		t.Helper()
		v, err := f.Check(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := check(node1, m); v.Action != TempFail || v.Code != 451 || v.Enhanced != "4.7.1" || !strings.Contains(v.Reason, "greylisted") {
		t.Fatalf("first attempt: %+v", v)
	}
	ck.add(2 * time.Minute)
	if v := check(node2, m); v.Action != TempFail {
		t.Fatalf("early retry on another node: %+v", v)
	}
	ck.add(4 * time.Minute) // 6 minutes after the first attempt
	// Another address of the same /19 retries: same triplet.
	m.RemoteIP = netip.MustParseAddr("198.51.127.1")
	if v := check(node2, m); v.Action != Accept || !v.Scored {
		t.Fatalf("retry after the delay: %+v", v)
	}
	ck.add(20 * 24 * time.Hour)
	if v := check(node1, m); v.Action != Accept {
		t.Fatalf("within the window: %+v", v)
	}
	// Another /19 is another triplet.
	m.RemoteIP = netip.MustParseAddr("198.51.128.1")
	if v := check(node1, m); v.Action != TempFail {
		t.Fatalf("other network: %+v", v)
	}
	// IPv6: the /64.
	m6 := msgOf(plainMsg)
	m6.RemoteIP = netip.MustParseAddr("2001:db8:1:2::10")
	check(node1, m6)
	ck.add(10 * time.Minute)
	m6.RemoteIP = netip.MustParseAddr("2001:db8:1:2:ffff::1")
	if v := check(node1, m6); v.Action != Accept {
		t.Fatalf("IPv6 same /64: %+v", v)
	}
	// Authenticated senders with a good score skip it.
	ma := msgOf(plainMsg)
	ma.RemoteIP = netip.MustParseAddr("203.0.113.5")
	ma.MailFrom = "news@bank.test"
	ma.Auth = AuthSummary{SPF: "pass", DKIMPassDomains: []string{"bank.test"}, DMARC: "pass", FromDomain: "bank.test"}
	if v := check(node1, ma); v.Action != Accept {
		t.Fatalf("authenticated sender greylisted: %+v", v)
	}
	// RELAYNETS clients are never greylisted.
	mt := msgOf(plainMsg)
	mt.RemoteIP = netip.MustParseAddr("192.0.2.99")
	mt.Trusted = true
	if v := check(node1, mt); v.Action != Accept {
		t.Fatalf("trusted client greylisted: %+v", v)
	}
	// A triplet unseen for longer than the window starts over.
	ck.add(36 * 24 * time.Hour)
	m.RemoteIP = netip.MustParseAddr("198.51.100.20")
	if v := check(node1, m); v.Action != TempFail {
		t.Fatalf("after the window: %+v", v)
	}
}

func TestGreylistNet(t *testing.T) {
	for in, want := range map[string]string{"198.51.100.20": "198.51.96.0/19", "::ffff:198.51.100.20": "198.51.96.0/19", "2001:db8:1:2::10": "2001:db8:1:2::/64"} {
		if got := greylistNet(netip.MustParseAddr(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestTokens(t *testing.T) {
	msg := "From: Shop <deals@cheap-pills.test>\r\nSubject: =?UTF-8?B?V2luIGEgZnJlZSBjcnVpc2U=?=\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Cheap VIAGRA n=C3=B6w, 12345 it's a deal!\r\n--b\r\nContent-Type: text/html\r\n\r\n<p style=\"x\">Click <b>here</b></p>\r\n--b--\r\n"
	toks := Tokens(strings.NewReader(msg))
	set := map[string]bool{}
	for _, tk := range toks {
		set[tk] = true
	}
	for _, want := range []string{"s:win", "s:free", "s:cruise", "fd:cheap-pills.test", "cheap", "viagra", "nöw", "it's", "deal", "click", "here"} {
		if !set[want] {
			t.Errorf("missing token %q in %v", want, toks)
		}
	}
	for _, not := range []string{"12345", "style", "a", "p"} {
		if set[not] {
			t.Errorf("unexpected token %q", not)
		}
	}
}

func TestSpamProbability(t *testing.T) {
	counts := map[string]countPair{"viagra": {9, 0}, "casino": {8, 1}, "meeting": {0, 9}, "the": {10, 10}}
	p, ok := SpamProbability(map[string]countPair{"viagra": counts["viagra"], "casino": counts["casino"], "the": counts["the"]}, 10, 10)
	if !ok || p < 0.95 {
		t.Errorf("spammy: %v %v", p, ok)
	}
	p, ok = SpamProbability(map[string]countPair{"meeting": counts["meeting"], "the": counts["the"]}, 10, 10)
	if !ok || p > 0.1 {
		t.Errorf("hammy: %v %v", p, ok)
	}
	if _, ok := SpamProbability(counts, 10, 0); ok {
		t.Error("an opinion without ham training")
	}
	if _, ok := SpamProbability(map[string]countPair{"the": {10, 10}}, 10, 10); ok {
		t.Error("an opinion from neutral tokens only")
	}
	if ClassifierScore(1) != 7 || ClassifierScore(0) != -7 || ClassifierScore(0.5) != 0 {
		t.Error("ClassifierScore scale")
	}
}

const spamBody = "From: Deals <win@prizes.test>\r\nSubject: claim your prize now\r\n\r\nCongratulations winner! Claim your free casino bonus and cheap pills today.\r\n"
const hamBody = "From: Bob <bob@partner.test>\r\nSubject: project meeting notes\r\n\r\nHere are the notes from the project meeting; the budget review is on Tuesday.\r\n"

type bodyStore struct {
	st     LearnStore
	bodies map[int64]string
}

func (b *bodyStore) GetMailbox(ctx context.Context, user, name string) (*store.Mailbox, error) {
	return b.st.GetMailbox(ctx, user, name)
}

func (b *bodyStore) OpenBody(ctx context.Context, id int64) (io.ReadCloser, error) {
	s, ok := b.bodies[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return io.NopCloser(strings.NewReader(s)), nil
}

func (b *bodyStore) JunkTrain(ctx context.Context, user string, tokens []string, spam bool) error {
	return b.st.JunkTrain(ctx, user, tokens, spam)
}

// Junk moves train the user's own classifier in the background (Mailu's
// imapsieve rules), and the trained classifier then files that user's
// spam by its own score: Verdict.UserScores.
func TestLearnerTrainsClassifier(t *testing.T) {
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice", "bob")
	ctx := context.Background()
	if err := st.EnsureMailboxes(ctx, "alice@example.test", store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	bs := &bodyStore{st: st, bodies: map[int64]string{1: spamBody, 2: hamBody, 3: spamBody + "more casino\r\n"}}
	l := NewLearner(LearnerOptions{Store: bs, Classifier: true})
	l.Start(ctx)
	defer l.Close()
	junk := &store.Mailbox{Name: "Junk", SpecialUse: `\Junk`}
	inbox := &store.Mailbox{Name: "INBOX"}
	trash := &store.Mailbox{Name: "Trash", SpecialUse: `\Trash`}
	l.Copied("alice@example.test", "INBOX", junk, []int64{1, 3}) // spam
	l.Copied("alice@example.test", "Junk", inbox, []int64{2})    // ham
	l.Copied("alice@example.test", "Junk", trash, []int64{2})    // nothing
	l.Copied("alice@example.test", "INBOX", trash, []int64{1})   // nothing
	l.Copied("alice@example.test", "Junk", junk, []int64{1})     // nothing
	deadline := time.Now().Add(10 * time.Second)
	for l.Learned() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := l.Learned(); n != 3 {
		t.Fatalf("learned %d messages, want 3", n)
	}
	tot, err := st.JunkTotals(ctx, []string{"alice@example.test"})
	if err != nil || tot["alice@example.test"] != (store.JunkCounts{Spam: 2, Ham: 1}) {
		t.Fatalf("totals %+v %v", tot, err)
	}

	f := New(Options{Builtin: NewBuiltin(BuiltinOptions{Store: st, Classifier: true})})
	m := msgOf(strings.Replace(spamBody, "today", "tomorrow", 1))
	m.Users = []string{"alice@example.test", "bob@example.test"}
	v, err := f.Check(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	us, ok := v.UserScores["alice@example.test"]
	if !ok || us < v.Score+5 {
		t.Fatalf("alice's score %v (base %v): %+v", us, v.Score, v)
	}
	if _, ok := v.UserScores["bob@example.test"]; ok {
		t.Errorf("bob has no training but got a score: %+v", v.UserScores)
	}
	m = msgOf(hamBody)
	m.Users = []string{"alice@example.test"}
	if v, _ := f.Check(ctx, m); v.UserScores["alice@example.test"] > v.Score-3 {
		t.Errorf("ham scored %+v", v)
	}
}

// A full queue drops events (with a log line) instead of blocking IMAP.
func TestLearnerQueueFull(t *testing.T) {
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice")
	logs := &testutil.LogBuffer{}
	l := NewLearner(LearnerOptions{Store: st, Classifier: true, QueueSize: 1, Logger: slogTo(logs)})
	// Not started: nothing drains the queue.
	junk := &store.Mailbox{Name: "Junk", SpecialUse: `\Junk`}
	done := make(chan struct{})
	go func() {
		for range 5 {
			l.Copied("alice@example.test", "INBOX", junk, []int64{1})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Copied blocked")
	}
	if !strings.Contains(logs.String(), "queue full") {
		t.Errorf("no drop log line: %s", logs)
	}
	l.Close()
}

// An APPEND into Junk trains spam (Mailu's imapsieve causes COPY
// APPEND); an APPEND anywhere else trains nothing.
func TestLearnerAppendIntoJunk(t *testing.T) {
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice")
	ctx := context.Background()
	bs := &bodyStore{st: st, bodies: map[int64]string{1: spamBody, 2: hamBody}}
	l := NewLearner(LearnerOptions{Store: bs, Classifier: true})
	l.Start(ctx)
	defer l.Close()
	l.Appended("alice@example.test", &store.Mailbox{Name: "Sent", SpecialUse: `\Sent`}, 2) // nothing
	l.Appended("alice@example.test", &store.Mailbox{Name: "Spam", SpecialUse: `\Junk`}, 1) // spam
	deadline := time.Now().Add(10 * time.Second)
	for l.Learned() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Events are handled in order: had the Sent one been queued, it
	// would be the one trained.
	tot, err := st.JunkTotals(ctx, []string{"alice@example.test"})
	if err != nil || tot["alice@example.test"] != (store.JunkCounts{Spam: 1}) {
		t.Fatalf("totals %+v %v, want 1 spam and no ham", tot, err)
	}
	toks, err := st.JunkTokens(ctx, "alice@example.test", []string{"casino", "budget"})
	if err != nil || toks["casino"].Spam != 1 || toks["budget"].Spam != 0 {
		t.Fatalf("tokens %+v %v: want the Junk append trained, the Sent one not", toks, err)
	}
}
