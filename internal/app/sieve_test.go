package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/smtpd"
	"github.com/petrelmail/petrel/internal/store"
)

// fakeScripts is the SieveScripts contract ManageSieve's store fulfils:
// each user's active script, ErrNotFound without one.
type fakeScripts struct {
	mu      sync.Mutex
	scripts map[string]string
	reads   int
}

func (f *fakeScripts) SieveActiveScript(_ context.Context, email string) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	s, ok := f.scripts[email]
	if !ok {
		return "", nil, store.ErrNotFound
	}
	return "main", []byte(s), nil
}

func (f *fakeScripts) set(email, script string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[email] = script
}

// scoreChecker is a content filter that scores a message by its
// X-Test-Score field, so spamtest sees a real verdict.
type scoreChecker struct{}

func (scoreChecker) Check(_ context.Context, m *filter.Message) (filter.Verdict, error) {
	r, err := m.Open()
	if err != nil {
		return filter.Verdict{}, err
	}
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if v, ok := strings.CutPrefix(line, "X-Test-Score: "); ok {
			score, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return filter.Verdict{Action: filter.Accept, Score: score, Scored: true}, nil
		}
		if err != nil || strings.TrimSpace(line) == "" {
			return filter.Verdict{Action: filter.Accept}, nil
		}
	}
}

// sieveServer is Petrel's port 25 as serve builds it, with users' Sieve
// scripts from a fakeScripts.
type sieveServer struct {
	p       *parts
	scripts *fakeScripts
	addr    string
}

func newSieveServer(t testing.TB, users ...string) *sieveServer {
	// A script changed by a test applies at once.
	return startSieveServer(t, sieveSetup{on: true, ttl: time.Millisecond, checker: true}, users...)
}

// sieveSetup says how startSieveServer builds delivery.
type sieveSetup struct {
	on      bool          // Sieve turned on
	ttl     time.Duration // the script cache's TTL; 0: the default
	checker bool          // scoreChecker scores messages
}

func startSieveServer(t testing.TB, setup sieveSetup, users ...string) *sieveServer {
	ctx := context.Background()
	cfg, p := testParts(t, map[string]string{"RECIPIENT_DELIMITER": "+"})
	addDomain(t, p)
	for _, u := range users {
		nu := store.NewUser(u, "example.test", 0, 80)
		if err := p.store.CreateUser(ctx, &nu); err != nil {
			t.Fatal(err)
		}
	}
	s := &sieveServer{p: p, scripts: &fakeScripts{scripts: map[string]string{}}}
	// The deliverer serve builds, with the scripts turned on.
	old := p.deliverer
	var sv *inbound.SieveOptions
	if setup.on {
		sv = p.sieveOptionsFor(s.scripts)
		sv.CacheTTL = setup.ttl
	}
	p.deliverer = inbound.NewDeliverer(p.delivererOptions(sv))
	p.deliverer.Start(ctx)
	t.Cleanup(func() { p.deliverer.Close() })
	_ = old.Close()

	o := smtpOptions(cfg, p)
	o.Role = smtpd.RoleMX
	o.Verifier, o.LocalDomains = nil, nil
	o.Checker = nil
	if setup.checker {
		o.Checker = scoreChecker{}
	}
	srv := smtpd.New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	s.addr = ln.Addr().String()
	return s
}

// send delivers one message over SMTP and returns the server's error.
func (s *sieveServer) send(t testing.TB, from, rcpt, msg string) error {
	return s.sendTo(t, from, []string{rcpt}, msg)
}

func (s *sieveServer) sendTo(t testing.TB, from string, rcpts []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, rcpt := range rcpts {
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, strings.ReplaceAll(msg, "\n", "\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (s *sieveServer) createMailbox(t testing.TB, user, name string) {
	t.Helper()
	_, err := s.p.store.CreateMailbox(context.Background(), user+"@example.test", name, "")
	if err != nil && !errors.Is(err, store.ErrMailboxExists) {
		t.Fatal(err)
	}
}

// stored is one message read back from a mailbox.
type stored struct {
	flags []string
	body  string
}

func (s *sieveServer) mailbox(t testing.TB, user, name string) []stored {
	t.Helper()
	ctx := context.Background()
	infos, err := s.p.store.ListMessages(ctx, user+"@example.test", name)
	if err != nil {
		return nil // no such mailbox
	}
	var out []stored
	for _, m := range infos {
		rc, err := s.p.store.OpenBody(ctx, m.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, stored{flags: m.Flags, body: string(b)})
	}
	return out
}

// where lists user's mailboxes holding a message, as "name[flags]".
func (s *sieveServer) where(t testing.TB, user string) []string {
	t.Helper()
	boxes, err := s.p.store.ListMailboxes(context.Background(), user+"@example.test")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		for _, m := range s.mailbox(t, user, b.Name) {
			f := slices.Clone(m.flags)
			slices.Sort(f)
			out = append(out, b.Name+"["+strings.Join(f, " ")+"]")
		}
	}
	slices.Sort(out)
	return out
}

func (s *sieveServer) queue(t testing.TB) []string {
	t.Helper()
	items, err := s.p.store.ListQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%s -> %s", it.Sender, it.Recipient))
	}
	slices.Sort(out)
	return out
}

func (s *sieveServer) queuedBody(t testing.TB, rcpt string) string {
	t.Helper()
	items, err := s.p.store.ListQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Recipient == rcpt {
			rc, err := s.p.store.OpenBody(context.Background(), it.BodyID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			return string(b)
		}
	}
	t.Fatalf("nothing queued for %s", rcpt)
	return ""
}

const sieveMsg = `From: Wile E. Coyote <coyote@desert.example>
To: alice@example.test
Subject: [acme] rockets on sale
Date: Mon, 1 Dec 2026 10:00:00 +0100
Message-ID: <m1@desert.example>
List-Id: Acme deals <deals@acme.example>
X-Priority: 2
X-Spam-Status: No

Dear Alice,
MAKE MONEY FAST with rockets.
`

// TestSieveDelivery sends mail over port 25 to a user whose active script
// comes from an RFC example for each extension, then reads back where the
// store put it (mailbox and flags), what it queued, and the stored text.
func TestSieveDelivery(t *testing.T) {
	cases := []struct {
		name, script, rcpt, msg string
		where                   []string // alice's mailboxes
		queue                   []string // outbound queue
		bodyHas                 string   // in the copy of the first mailbox listed
	}{
		{name: "no script", where: []string{"INBOX[]"}},
		{name: "keep", script: `keep;`, where: []string{"INBOX[]"}},
		{name: "discard", script: `if header :contains "from" "coyote" { discard; }`},
		{name: "fileinto", script: `require "fileinto"; if header :contains "subject" "[acme]" { fileinto "Deals"; }`, where: []string{"Deals[]"}},
		{name: "fileinto create", script: `require ["fileinto", "mailbox"]; fileinto :create "Lists/acme";`, where: []string{"Lists/acme[]"}},
		{name: "fileinto copy", script: `require ["fileinto", "copy"]; fileinto :copy "Archive";`, where: []string{"Archive[]", "INBOX[]"}},
		{name: "imap4flags", script: `require ["imap4flags", "fileinto"]; if header :contains "from" "coyote" { setflag "\\Flagged"; addflag "$Rockets"; fileinto "Trash"; }`,
			where: []string{`Trash[$rockets \Flagged]`}}, // go-sieve lower-cases keywords (IMAP compares them without case)
		{name: "envelope", script: `require ["envelope", "fileinto"]; if envelope :domain :is "from" "desert.example" { fileinto "Junk"; }`, where: []string{"Junk[]"}},
		{name: "subaddress", script: `require ["envelope", "subaddress", "fileinto", "variables"]; if envelope :matches :detail "to" "*" { fileinto "${1}"; }`,
			rcpt: "alice+lists@example.test", where: []string{"lists[]"}},
		{name: "body", script: `require ["body", "fileinto"]; if body :text :contains "money fast" { fileinto "Junk"; }`, where: []string{"Junk[]"}},
		{name: "variables", script: `require ["fileinto", "variables"]; if header :matches "List-Id" "*<*@*" { fileinto "lists.${2}"; }`, where: []string{"lists.deals[]"}},
		{name: "relational", script: `require ["relational", "comparator-i;ascii-numeric", "fileinto"]; if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "Priority"; }`,
			where: []string{"Priority[]"}},
		{name: "date", script: `require ["date", "relational", "fileinto"]; if date :value "ge" :originalzone "date" "hour" "09" { fileinto "Office"; }`, where: []string{"Office[]"}},
		{name: "regex", script: `require ["regex", "fileinto", "variables"]; if header :regex "subject" "^\\[([a-z]+)\\]" { fileinto "${1}"; }`, where: []string{"acme[]"}},
		{name: "header index", script: `require ["index", "fileinto"]; if header :index 1 :last :contains "Received" "client.remote.test" { fileinto "Direct"; }`,
			where: []string{"Direct[]"}},
		{name: "mailbox exists", script: `require ["fileinto", "mailbox"]; if mailboxexists "Sent" { fileinto "Sent"; }`, where: []string{"Sent[]"}},
		{name: "editheader", script: `require ["editheader"]; deleteheader "X-Spam-Status"; addheader "X-Sieve-Seen" "yes";`,
			where: []string{"INBOX[]"}, bodyHas: "X-Sieve-Seen: yes\r\n"},
		{name: "spamtest", script: `require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"]; if spamtest :value "ge" :comparator "i;ascii-numeric" "4" { fileinto "Suspect"; }`,
			msg: "X-Test-Score: 6\n" + sieveMsg, where: []string{"Suspect[]"}},
		{name: "spamtestplus", script: `require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric"]; if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "40" { fileinto "Suspect"; }`,
			msg: "X-Test-Score: 6.5\n" + sieveMsg, where: []string{"Suspect[]"}},
		{name: "spam over threshold goes to Junk before the script", script: `require "fileinto"; fileinto "Elsewhere";`,
			msg: "X-Test-Score: 14\n" + sieveMsg, where: []string{`Junk[\Seen]`}},
		{name: "redirect remote", script: `redirect "wile@acme.example";`,
			queue: []string{"coyote@desert.example -> wile@acme.example"}},
		{name: "redirect local copy", script: `require "copy"; redirect :copy "bob@example.test";`, where: []string{"INBOX[]"}},
		{name: "reject", script: `require "reject"; reject "No rockets, thanks.";`,
			queue: []string{" -> coyote@desert.example"}},
		{name: "ereject", script: `require "ereject"; ereject "No rockets.";`,
			queue: []string{" -> coyote@desert.example"}},
		{name: "vacation", script: `require "vacation"; vacation :days 3 :subject "Away" "Back on Monday.";`,
			msg:   strings.Replace(sieveMsg, "List-Id: Acme deals <deals@acme.example>\n", "", 1),
			where: []string{"INBOX[]"}, queue: []string{"alice@example.test -> coyote@desert.example"}},
		{name: "vacation not to lists", script: `require "vacation"; vacation "Back on Monday.";`, where: []string{"INBOX[]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSieveServer(t, "alice", "bob")
			// The folders a script files into exist, as the user made
			// them, unless the script creates them (RFC 5490 :create).
			if !strings.Contains(c.script, ":create") {
				for _, w := range c.where {
					s.createMailbox(t, "alice", strings.SplitN(w, "[", 2)[0])
				}
			}
			if c.script != "" {
				s.scripts.set("alice@example.test", c.script)
			}
			rcpt, msg := c.rcpt, c.msg
			if rcpt == "" {
				rcpt = "alice@example.test"
			}
			if msg == "" {
				msg = sieveMsg
			}
			if err := s.send(t, "coyote@desert.example", rcpt, msg); err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := s.where(t, "alice"); !slices.Equal(got, c.where) {
				t.Errorf("alice's mailboxes: %v, want %v", got, c.where)
			}
			if got := s.queue(t); !slices.Equal(got, c.queue) {
				t.Errorf("queue: %v, want %v", got, c.queue)
			}
			if c.bodyHas != "" {
				m := s.mailbox(t, "alice", strings.SplitN(c.where[0], "[", 2)[0])
				if len(m) != 1 || !strings.Contains(m[0].body, c.bodyHas) {
					t.Errorf("stored copy lacks %q:\n%v", c.bodyHas, m)
				}
			}
		})
	}
}

// TestSieveBrokenScriptKeepsInInbox: a script that fails at run time, or
// no longer compiles, never loses the message: the user's copy lands in
// INBOX with an X-Sieve-Error field saying why, and the other recipient
// of the same transaction gets the message untouched.
func TestSieveBrokenScriptKeepsInInbox(t *testing.T) {
	cases := []struct{ name, script, why string }{
		{"too many redirects", `redirect "a@r.example"; redirect "b@r.example"; redirect "c@r.example";
redirect "d@r.example"; redirect "e@r.example"; redirect "f@r.example";`, "too many"},
		{"does not compile", "require \"fileinto\";\nfileinto \"x\"\nkeep;", "does not compile: line 2"},
		{"missing mailbox", `require "fileinto"; fileinto "Nowhere";`, `mailbox "Nowhere" does not exist`},
		{"reject with keep", `require "reject"; keep; reject "no";`, "reject cannot be combined"},
		{"bad variable", `require ["variables", "fileinto", "mailbox"]; fileinto :create "${envelope.from}";`, "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSieveServer(t, "alice", "bob")
			s.scripts.set("alice@example.test", c.script)
			if err := s.sendTo(t, "coyote@desert.example", []string{"alice@example.test", "bob@example.test"}, sieveMsg); err != nil {
				t.Fatalf("send: %v", err)
			}
			if got := s.where(t, "alice"); !slices.Equal(got, []string{"INBOX[]"}) {
				t.Fatalf("alice's mailboxes: %v, want INBOX only", got)
			}
			m := s.mailbox(t, "alice", "INBOX")
			// Local delivery's Return-Path first, then the script's error.
			if len(m) != 1 || !strings.HasPrefix(m[0].body, "Return-Path: <coyote@desert.example>\r\nX-Sieve-Error: main: ") || !strings.Contains(m[0].body, c.why) ||
				!strings.Contains(m[0].body, "Subject: [acme] rockets on sale\r\n") {
				t.Fatalf("alice's copy does not explain %q:\n%v", c.why, m)
			}
			if q := s.queue(t); len(q) != 0 {
				t.Errorf("queue after a failed script: %v", q)
			}
			b := s.mailbox(t, "bob", "INBOX")
			if len(b) != 1 || strings.Contains(b[0].body, "X-Sieve-Error") {
				t.Fatalf("bob's copy: %v", b)
			}
		})
	}
}

// TestSieveVacationOncePerSender: RFC 5230's vacation answers a sender once
// per :days (the auto-reply store remembers), from the user, marked
// auto-replied; a bounce and a no-reply sender get nothing.
func TestSieveVacationOncePerSender(t *testing.T) {
	s := newSieveServer(t, "alice")
	s.scripts.set("alice@example.test", `require "vacation";
vacation :days 3 :from "Alice <alice@example.test>" :subject "Away" "Back on Monday.";`)
	msg := strings.Replace(sieveMsg, "List-Id: Acme deals <deals@acme.example>\n", "", 1)
	for range 2 {
		if err := s.send(t, "coyote@desert.example", "alice@example.test", msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.send(t, "", "alice@example.test", msg); err != nil {
		t.Fatal(err)
	}
	if err := s.send(t, "no-reply@desert.example", "alice@example.test", msg); err != nil {
		t.Fatal(err)
	}
	if got := s.queue(t); !slices.Equal(got, []string{"alice@example.test -> coyote@desert.example"}) {
		t.Fatalf("queue: %v, want one reply", got)
	}
	reply := s.queuedBody(t, "coyote@desert.example")
	for _, want := range []string{"From: \"Alice\" <alice@example.test>\r\n", "Subject: Away\r\n", "Auto-Submitted: auto-replied\r\n",
		"In-Reply-To: <m1@desert.example>\r\n", "\r\n\r\nBack on Monday.\r\n"} {
		if !strings.Contains(reply, want) {
			t.Errorf("reply lacks %q:\n%s", want, reply)
		}
	}
	if n := len(s.mailbox(t, "alice", "INBOX")); n != 4 {
		t.Errorf("alice has %d messages, want 4 (vacation keeps)", n)
	}
}

// TestSieveRejectDSN: reject refuses the message to its sender with a DSN
// carrying the script's reason (RFC 5429 2.1), and stores nothing.
func TestSieveRejectDSN(t *testing.T) {
	s := newSieveServer(t, "alice")
	s.scripts.set("alice@example.test", "require \"reject\";\nreject text:\nNo rockets,\nthanks.\n.\n;")
	if err := s.send(t, "coyote@desert.example", "alice@example.test", sieveMsg); err != nil {
		t.Fatal(err)
	}
	if got := s.where(t, "alice"); len(got) != 0 {
		t.Errorf("alice's mailboxes: %v, want none", got)
	}
	dsn := s.queuedBody(t, "coyote@desert.example")
	for _, want := range []string{"Status: 5.7.1", "Sieve filter: No", "rockets, thanks.", "alice@example.test", "Subject: [acme] rockets on sale"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	// A bounce is never answered with a rejection.
	s2 := newSieveServer(t, "alice")
	s2.scripts.set("alice@example.test", `require "reject"; reject "no";`)
	if err := s2.send(t, "", "alice@example.test", sieveMsg); err != nil {
		t.Fatal(err)
	}
	if q := s2.queue(t); len(q) != 0 {
		t.Errorf("rejection of a bounce queued: %v", q)
	}
}

// TestSieveScriptChange: a script uploaded (or changed) after the first
// message applies to the next one.
func TestSieveScriptChange(t *testing.T) {
	s := newSieveServer(t, "alice")
	if err := s.send(t, "coyote@desert.example", "alice@example.test", sieveMsg); err != nil {
		t.Fatal(err)
	}
	s.scripts.set("alice@example.test", `require ["fileinto", "mailbox"]; fileinto :create "One";`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(s.mailbox(t, "alice", "One")) == 0 {
		if err := s.send(t, "coyote@desert.example", "alice@example.test", sieveMsg); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.mailbox(t, "alice", "One")) == 0 {
		t.Fatal("the new script never applied")
	}
}
