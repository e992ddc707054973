package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/imapd"
	"github.com/petrelmail/petrel/internal/pop3d"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

// fetchEnv is a local Petrel built as serve builds it (user alice) and a
// remote Petrel store (user carol) served by the real pop3d on 995 and
// imapd on 993, over TLS with a certificate the poller trusts.
type fetchEnv struct {
	p            *parts
	remote       *sqlstore.Store
	pop3, imap   string // host:port
	cert         testutil.Cert
	sealedPass   string
	alice, carol string
}

func newFetchEnv(t *testing.T) *fetchEnv {
	t.Helper()
	ctx := t.Context()
	_, p := testParts(t, map[string]string{"FETCHMAIL_ENABLED": "true", "FETCHMAIL_DELAY": "60"})
	if p.fetcher == nil {
		t.Fatal("FETCHMAIL_ENABLED=true built no poller")
	}
	addDomain(t, p)
	u := store.NewUser("alice", "example.test", 0, 80)
	if err := p.store.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}

	e := &fetchEnv{p: p, alice: "alice@example.test", carol: "carol@remote.test"}
	e.remote = testutil.OpenStore(t, t.TempDir(), "remote.test", "carol")
	e.cert = testutil.NewCert(t, "remote.test")
	authn := testutil.NewFakeAuth(map[string]string{e.carol: "carol-remote-pw"})
	e.pop3, _ = testutil.Serve(t, pop3d.New(pop3d.Options{Implicit: true, TLSConfig: e.cert.Server, Hostname: "remote.test",
		Auth: authn, Store: e.remote}), 10*time.Second)
	e.imap, _ = testutil.Serve(t, imapd.New(imapd.Options{Implicit: true, TLSConfig: e.cert.Server, Hostname: "remote.test",
		Auth: authn, Store: e.remote}), 10*time.Second)
	var err error
	if e.sealedPass, err = p.fetchSealer.Seal("carol-remote-pw"); err != nil {
		t.Fatal(err)
	}
	return e
}

// put stores a message in carol's remote mailbox.
func (e *fetchEnv) put(t *testing.T, mailbox, id, body string) {
	t.Helper()
	err := e.remote.CommitMessages(t.Context(), []*store.NewMessage{{
		ID: id, Sender: "orig@sender.test", ReceivedAt: time.Now(), Size: int64(len(body)), Body: []byte(body),
		Targets: []store.MailboxTarget{{User: e.carol, Mailbox: mailbox}}, DeliveryKey: store.NewDeliveryKey(),
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// account adds a fetched account for alice on the remote server.
func (e *fetchEnv) account(t *testing.T, proto string, keep bool, folders ...string) *store.Fetch {
	t.Helper()
	addr := e.pop3
	if proto == "imap" {
		addr = e.imap
	}
	host, port, _ := strings.Cut(addr, ":")
	f := &store.Fetch{UserEmail: e.alice, Protocol: proto, Host: host, TLS: true, Username: e.carol,
		Password: e.sealedPass, Keep: keep, Folders: folders}
	f.Port = atoi(t, port)
	if err := e.p.store.CreateFetch(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	return f
}

// poller is a fresh poller (as after a restart) whose clock is `later`
// ahead, so every account is due; it trusts the remote certificate.
func (e *fetchEnv) poller(later time.Duration) *fetch.Poller {
	return fetch.New(fetch.Options{
		Store: e.p.store, Sink: fetchSink{e.p}, Sealer: e.p.fetchSealer, Delay: time.Minute,
		Owner: "test", TLSConfig: e.cert.Client, Timeout: 20 * time.Second, MaxSize: 1 << 20,
		Now: func() time.Time { return time.Now().Add(later) },
	})
}

func (e *fetchEnv) inbox(t *testing.T, st *sqlstore.Store, user, mailbox string) []string {
	t.Helper()
	infos, err := st.ListMessages(t.Context(), user, mailbox)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mi := range infos {
		rc, err := st.OpenBody(t.Context(), mi.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, string(b))
	}
	return out
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestFetchPOP3DeletesAndDelivers: a POP3 account that does not keep mail
// gets both remote messages delivered to alice's INBOX through local
// delivery (Return-Path from the remote copy, a Received trace), the
// remote maildrop is emptied, and the account records a clean check.
func TestFetchPOP3DeletesAndDelivers(t *testing.T) {
	e := newFetchEnv(t)
	e.put(t, "INBOX", "r1", "Return-Path: <orig@sender.test>\r\nFrom: orig@sender.test\r\nSubject: one\r\n\r\nfirst\r\n")
	e.put(t, "INBOX", "r2", "From: other@sender.test\r\nSubject: two\r\n\r\n.leading dot\r\nsecond\r\n")
	f := e.account(t, "pop3", false)
	if err := e.poller(time.Hour).PollDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := e.inbox(t, e.p.store, e.alice, "INBOX")
	if len(got) != 2 {
		t.Fatalf("alice has %d messages, want 2: %q", len(got), got)
	}
	if !strings.HasPrefix(got[0], "Return-Path: <orig@sender.test>\r\nReceived: from 127.0.0.1\r\n\tby mail.example.test (Petrel) with POP3S") ||
		strings.Count(got[0], "Return-Path:") != 1 || !strings.HasSuffix(got[0], "Subject: one\r\n\r\nfirst\r\n") {
		t.Errorf("first message: %q", got[0])
	}
	if !strings.HasSuffix(got[1], "\r\n\r\n.leading dot\r\nsecond\r\n") || !strings.HasPrefix(got[1], "Return-Path: <>\r\n") {
		t.Errorf("second message (dot-stuffing, null sender): %q", got[1])
	}
	if left := e.inbox(t, e.remote, e.carol, "INBOX"); len(left) != 0 {
		t.Errorf("remote maildrop still holds %d messages", len(left))
	}
	acct, err := e.p.store.GetFetch(t.Context(), f.ID)
	if err != nil || acct.LastCheck.IsZero() || acct.Error != "" {
		t.Fatalf("account after the poll: %+v, %v", acct, err)
	}
}

// TestFetchIMAPKeepsAndNeverDuplicates: an IMAP account that keeps mail,
// over two folders, delivers each message once; a restarted poller
// fetches nothing again, and then only what arrived since.
func TestFetchIMAPKeepsAndNeverDuplicates(t *testing.T) {
	e := newFetchEnv(t)
	e.put(t, "INBOX", "i1", "Subject: in inbox\r\n\r\na\r\n")
	e.put(t, "Junk", "j1", "Subject: in junk\r\n\r\nb\r\n")
	e.put(t, "Archive", "x1", "Subject: not asked for\r\n\r\nc\r\n")
	e.account(t, "imap", true, "INBOX", "Junk")
	if err := e.poller(time.Hour).PollDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := e.inbox(t, e.p.store, e.alice, "INBOX"); len(got) != 2 || !strings.Contains(got[0]+got[1], "with IMAPS") {
		t.Fatalf("after the first poll alice has %d messages: %q", len(got), got)
	}
	// A restart: a new poller, later, with the same store.
	if err := e.poller(3 * time.Hour).PollDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := e.inbox(t, e.p.store, e.alice, "INBOX"); len(got) != 2 {
		t.Fatalf("after a restart alice has %d messages, want still 2", len(got))
	}
	e.put(t, "INBOX", "i2", "Subject: new one\r\n\r\nd\r\n")
	if err := e.poller(5 * time.Hour).PollDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := e.inbox(t, e.p.store, e.alice, "INBOX")
	if len(got) != 3 || !strings.HasSuffix(got[2], "Subject: new one\r\n\r\nd\r\n") {
		t.Fatalf("after a new remote message alice has %d messages: %q", len(got), got)
	}
	if n := len(e.inbox(t, e.remote, e.carol, "INBOX")) + len(e.inbox(t, e.remote, e.carol, "Junk")); n != 3 {
		t.Errorf("remote holds %d messages, want all 3 kept", n)
	}
}

// TestFetchErrorIsRecorded: a wrong password leaves the account with the
// server's refusal for the user to see, nothing delivered, and the
// password never appears in it.
func TestFetchErrorIsRecorded(t *testing.T) {
	e := newFetchEnv(t)
	e.put(t, "INBOX", "r1", "Subject: x\r\n\r\nx\r\n")
	f := e.account(t, "imap", true)
	f.Password, _ = e.p.fetchSealer.Seal("wrong-password")
	if err := e.p.store.UpdateFetch(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	if err := e.poller(time.Hour).PollDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	acct, _ := e.p.store.GetFetch(t.Context(), f.ID)
	if acct.Error == "" || !strings.Contains(acct.Error, "LOGIN") || strings.Contains(acct.Error, "wrong-password") {
		t.Fatalf("recorded error %q", acct.Error)
	}
	if got := e.inbox(t, e.p.store, e.alice, "INBOX"); len(got) != 0 {
		t.Fatalf("delivered %d messages with a refused login", len(got))
	}
}

// scanChecker stands in for the port 25 content checks: a message with
// "EICAR" is refused, one with "cheap pills" scores as spam.
type scanChecker struct{ seen []filter.Message }

func (c *scanChecker) Check(ctx context.Context, m *filter.Message) (filter.Verdict, error) {
	c.seen = append(c.seen, *m)
	rc, err := m.Open()
	if err != nil {
		return filter.Verdict{}, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	switch {
	case strings.Contains(string(b), "EICAR"):
		return filter.Verdict{Action: filter.Reject, Reason: "virus", Virus: "Eicar-Test-Signature"}, nil
	case strings.Contains(string(b), "cheap pills"):
		return filter.Verdict{Scored: true, Score: 14, AddHeaders: []filter.Header{{Name: "X-Spam", Value: "Yes"}}}, nil
	}
	return filter.Verdict{Scored: true, Score: 0}, nil
}

// TestFetchScanAppliesFilters: with "rescan" the content checks see each
// fetched message (as a trusted local injection, like Mailu's fetchmail):
// a virus is refused for good and deleted remotely, spam lands in Junk by
// the user's spam settings with the checks' header, clean mail in INBOX.
func TestFetchScanAppliesFilters(t *testing.T) {
	e := newFetchEnv(t)
	chk := &scanChecker{}
	e.p.checker = chk
	e.put(t, "INBOX", "v1", "Subject: attachment\r\n\r\nX5O!P%@AP EICAR\r\n")
	e.put(t, "INBOX", "s1", "Subject: offer\r\n\r\ncheap pills\r\n")
	e.put(t, "INBOX", "c1", "Subject: hello\r\n\r\nclean\r\n")
	f := e.account(t, "pop3", false)
	f.Scan = true
	if err := e.p.store.UpdateFetch(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	if err := e.poller(time.Hour).PollDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(chk.seen) != 3 || !chk.seen[0].Trusted || chk.seen[0].Rcpts[0] != e.alice {
		t.Fatalf("checks saw %+v", chk.seen)
	}
	inbox, junk := e.inbox(t, e.p.store, e.alice, "INBOX"), e.inbox(t, e.p.store, e.alice, "Junk")
	if len(inbox) != 1 || !strings.HasSuffix(inbox[0], "clean\r\n") {
		t.Errorf("INBOX: %q", inbox)
	}
	if len(junk) != 1 || !strings.Contains(junk[0], "X-Spam: Yes\r\n") || !strings.HasSuffix(junk[0], "cheap pills\r\n") {
		t.Errorf("Junk: %q", junk)
	}
	if left := e.inbox(t, e.remote, e.carol, "INBOX"); len(left) != 0 {
		t.Errorf("remote still holds %d messages; the refused one should go too", len(left))
	}
	acct, _ := e.p.store.GetFetch(t.Context(), f.ID)
	if acct.Error != "" {
		t.Errorf("a refused message made the poll fail: %q", acct.Error)
	}
}

// crashAfterDeliver delivers through the real sink and then fails, as a
// poller that died right after the delivery commit: the poller records
// nothing itself, deletes nothing and stops.
type crashAfterDeliver struct {
	sink      fetchSink
	delivered int
}

var errCrash = errors.New("simulated crash after the delivery")

func (c *crashAfterDeliver) Deliver(ctx context.Context, f *store.Fetch, key string, msg []byte) error {
	if err := c.sink.Deliver(ctx, f, key, msg); err != nil {
		return err
	}
	c.delivered++
	return errCrash
}

// TestFetchExactlyOnceAcrossCrash: for POP3 without keep and IMAP with
// keep, a poller that dies between storing a message and its own
// bookkeeping (recording the key, DELE/EXPUNGE) is followed by a fresh
// poller (a restart): alice holds each message once, and without keep
// the remote copy is removed then.
func TestFetchExactlyOnceAcrossCrash(t *testing.T) {
	for _, tc := range []struct {
		proto string
		keep  bool
	}{{"pop3", false}, {"imap", false}, {"imap", true}} {
		t.Run(fmt.Sprintf("%s keep=%v", tc.proto, tc.keep), func(t *testing.T) {
			e := newFetchEnv(t)
			e.put(t, "INBOX", "r1", "Subject: only once\r\n\r\nbody\r\n")
			e.account(t, tc.proto, tc.keep)
			crash := &crashAfterDeliver{sink: fetchSink{e.p}}
			crashed := fetch.New(fetch.Options{
				Store: e.p.store, Sink: crash, Sealer: e.p.fetchSealer, Delay: time.Minute,
				Owner: "crashed", TLSConfig: e.cert.Client, Timeout: 20 * time.Second,
				Now: func() time.Time { return time.Now().Add(time.Hour) },
			})
			if err := crashed.PollDue(t.Context()); err != nil {
				t.Fatal(err)
			}
			if crash.delivered != 1 || len(e.inbox(t, e.p.store, e.alice, "INBOX")) != 1 {
				t.Fatalf("the crashed poll delivered %d", crash.delivered)
			}
			if n := len(e.inbox(t, e.remote, e.carol, "INBOX")); n != 1 {
				t.Fatalf("the crashed poll removed the remote copy (%d left)", n)
			}
			// The restart: a new poller once the lease has run out.
			if err := e.poller(3 * time.Hour).PollDue(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := e.inbox(t, e.p.store, e.alice, "INBOX")
			if len(got) != 1 || !strings.HasSuffix(got[0], "Subject: only once\r\n\r\nbody\r\n") {
				t.Fatalf("after the restart alice holds %d copies: %q", len(got), got)
			}
			want := 0
			if tc.keep {
				want = 1
			}
			if n := len(e.inbox(t, e.remote, e.carol, "INBOX")); n != want {
				t.Fatalf("remote holds %d messages after the restart, want %d", n, want)
			}
		})
	}
}
