package inbound

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// arEnv is an auto-reply test setup over a real sqlstore.
type arEnv struct {
	t      *testing.T
	sq     *sqlstore.Store
	router *Router
	d      *Deliverer
	queued atomic.Int64
	ids    atomic.Int64
	mids   atomic.Int64
	now    atomic.Pointer[time.Time]
	logs   *attrSink
}

// attrSink collects log records together with the attributes of
// Logger.With, which the auto-replier uses for msgid and user.
type attrSink struct {
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
}

func newAttrSink() *attrSink { return &attrSink{mu: new(sync.Mutex), recs: new([]slog.Record)} }

func (h *attrSink) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrSink) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, r)
	return nil
}
func (h *attrSink) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrSink{mu: h.mu, recs: h.recs, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *attrSink) WithGroup(string) slog.Handler { return h }

// find returns the records with message msg and msgid id.
func (h *attrSink) find(msg, id string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range *h.recs {
		if r.Message == msg && attr(r, "msgid").String() == id {
			out = append(out, r)
		}
	}
	return out
}

// failingClaims wraps the store's AutoReplies with an error.
type failingClaims struct{ store.AutoReplies }

func (failingClaims) ClaimAutoReply(context.Context, string, string, string, time.Time, time.Duration) (bool, error) {
	return false, errBackend
}

type failingRouter struct{}

func (failingRouter) Resolve(context.Context, string) (Route, error) { return Route{}, errBackend }

func newAREnv(t *testing.T, mod func(*AutoReplyOptions)) *arEnv {
	t.Helper()
	sq := openSQLStore(t)
	e := &arEnv{t: t, sq: sq, logs: newAttrSink()}
	e.setNow(time.Date(2025, 3, 4, 10, 30, 0, 0, time.UTC))
	ctx := context.Background()
	for _, d := range []string{"example.com", "example.org"} {
		if err := sq.CreateDomain(ctx, &store.Domain{Name: d, MaxUsers: -1, MaxAliases: -1}); err != nil {
			t.Fatal(err)
		}
	}
	alice := replyUser(func(u *store.User) {
		u.DisplayedName = "Alice Example"
		u.ReplyStartDate = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		u.ReplyEndDate = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)
	})
	carol := replyUser(func(u *store.User) {
		u.Email, u.Localpart = "carol@example.com", "carol"
		u.ReplySubject, u.ReplyBody = "Parental leave", "Back in June."
	})
	bob := store.NewUser("bob", "example.org", 0, 80)
	for _, u := range []*store.User{alice, carol, &bob} {
		if err := sq.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := sq.CreateAlias(ctx, &store.Alias{Email: "team@example.com", Localpart: "team", DomainName: "example.com", Destination: []string{"alice@example.com", "carol@example.com"}}); err != nil {
		t.Fatal(err)
	}
	e.router = NewRouter(RouterOptions{Accounts: sq, Delimiters: "+"})
	opts := AutoReplyOptions{
		Users:        sq,
		Sent:         sq,
		Router:       e.router,
		Hostname:     "mail.example.com",
		NewID:        func() string { return fmt.Sprintf("reply%d", e.ids.Add(1)) },
		NewMessageID: func() string { return fmt.Sprintf("20250304.ar%d", e.mids.Add(1)) },
		Queued:       func() { e.queued.Add(1) },
	}
	if mod != nil {
		mod(&opts)
	}
	e.d = NewDeliverer(DelivererOptions{
		Store: sq, Blobs: sq.Blobs(), InlineMax: sq.InlineMax(), Logger: slog.New(e.logs),
		Now:       func() time.Time { return *e.now.Load() },
		AutoReply: &opts,
	})
	e.d.Start(context.Background())
	t.Cleanup(func() { e.d.Close() })
	return e
}

func (e *arEnv) setNow(t time.Time) { e.now.Store(&t) }

// send delivers body from sender to rcpts, resolved by the router as
// smtpd does, and fails the test if the delivery fails.
func (e *arEnv) send(id, sender, body string, rcpts ...string) {
	e.t.Helper()
	if err := e.trySend(id, sender, body, rcpts...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *arEnv) trySend(id, sender, body string, rcpts ...string) error {
	var routes []Route
	for _, r := range rcpts {
		rt, err := e.router.Resolve(context.Background(), r)
		if err != nil {
			return err
		}
		routes = append(routes, rt)
	}
	env := &Envelope{ID: id, Sender: sender, Routes: routes, ReceivedAt: *e.now.Load()}
	if err := deliverBody(context.Background(), e.d, env, []byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
		return fmt.Errorf("delivery of %s: %w", id, err)
	}
	return nil
}

// queue returns the outbound queue's entries with their bodies.
func (e *arEnv) queue() ([]store.QueueItem, []string) {
	e.t.Helper()
	items, err := e.sq.ListQueue(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		rc, err := e.sq.OpenBody(context.Background(), it.BodyID)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out = append(out, string(b))
	}
	return items, out
}

const origMsg = `From: Bob Remote <bob@remote.test>
To: Alice <alice@example.com>
Subject: Lunch?
Message-ID: <lunch-1@remote.test>
Date: Tue, 4 Mar 2025 10:29:00 +0000

Shall we?
`

func TestAutoReplyQueuedOncePerDay(t *testing.T) {
	e := newAREnv(t, nil)
	e.send("m1", "bob@remote.test", origMsg, "alice@example.com")

	items, bodies := e.queue()
	if len(items) != 1 {
		t.Fatalf("%d queue entries after the first message, want 1 auto-reply", len(items))
	}
	if items[0].Recipient != "bob@remote.test" || items[0].Sender != "alice@example.com" || items[0].MessageID != "reply1" {
		t.Errorf("queue entry %s from %q to %q; want reply1 from alice@example.com to bob@remote.test",
			items[0].MessageID, items[0].Sender, items[0].Recipient)
	}
	golden(t, "autoreply/reply.golden", []byte(bodies[0]))
	if e.queued.Load() != 1 {
		t.Errorf("Queued called %d times, want 1", e.queued.Load())
	}
	if n := len(bodiesOf(t, e.sq, "alice@example.com")); n != 1 {
		t.Errorf("alice has %d messages, want the original", n)
	}
	if len(e.logs.find("auto-reply sent", "m1")) != 1 {
		t.Error("no \"auto-reply sent\" log record for m1")
	}

	// Later the same day, and with another recipient address of hers: no reply.
	e.setNow(time.Date(2025, 3, 4, 18, 0, 0, 0, time.UTC))
	e.send("m2", "bob@remote.test", strings.Replace(origMsg, "lunch-1", "lunch-2", 1), "alice@example.com")
	e.send("m3", "Bob@Remote.Test", strings.Replace(origMsg, "lunch-1", "lunch-3", 1), "alice+work@example.com")
	if items, _ := e.queue(); len(items) != 1 {
		t.Fatalf("%d queue entries after more mail the same day, want still 1", len(items))
	}
	// A day after the first reply: answered again.
	e.setNow(time.Date(2025, 3, 5, 10, 31, 0, 0, time.UTC))
	e.send("m4", "bob@remote.test", strings.Replace(origMsg, "lunch-1", "lunch-4", 1), "alice@example.com")
	items, bodies = e.queue()
	if len(items) != 2 {
		t.Fatalf("%d queue entries the next day, want 2", len(items))
	}
	if !strings.Contains(bodies[1], "In-Reply-To: <lunch-4@remote.test>\r\n") {
		t.Errorf("second reply does not answer lunch-4:\n%s", bodies[1])
	}
	if n := len(bodiesOf(t, e.sq, "alice@example.com")); n != 4 {
		t.Errorf("alice has %d messages, want 4", n)
	}
}

func bodiesOf(t *testing.T, sq *sqlstore.Store, user string) []string { return bodies(t, sq, user) }

func TestAutoReplyLocalSender(t *testing.T) {
	e := newAREnv(t, nil)
	// bob is local too and has his own auto-reply: he must not answer
	// alice's auto-reply.
	u, _ := e.sq.GetUser(context.Background(), "bob@example.org")
	u.ReplyEnabled, u.ReplySubject, u.ReplyBody = true, "Bob is away", "Away."
	if err := e.sq.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	msg := strings.ReplaceAll(origMsg, "bob@remote.test", "bob@example.org")
	e.send("m1", "bob@example.org", msg, "alice@example.com")

	if items, _ := e.queue(); len(items) != 0 {
		t.Fatalf("%d queue entries; a local sender's reply goes to the mailbox", len(items))
	}
	got := bodiesOf(t, e.sq, "bob@example.org")
	if len(got) != 1 {
		t.Fatalf("bob has %d messages, want alice's auto-reply", len(got))
	}
	m, _ := replyFields(t, []byte(got[0]))
	if m.Header.Get("From") != "\"Alice Example\" <alice@example.com>" || m.Header.Get("To") != "\"Bob Remote\" <bob@example.org>" ||
		m.Header.Get("Auto-Submitted") != "auto-replied" || m.Header.Get("In-Reply-To") != "<lunch-1@remote.test>" {
		t.Errorf("reply in bob's INBOX:\n%s", got[0])
	}
	if n := len(bodiesOf(t, e.sq, "alice@example.com")); n != 1 {
		t.Errorf("alice has %d messages, want only the original (bob must not answer an auto-reply)", n)
	}
	if e.queued.Load() != 0 {
		t.Error("Queued called for a local reply")
	}
}

func TestAutoReplyDateWindow(t *testing.T) {
	cases := []struct {
		name string
		now  time.Time
		want int
	}{
		{"before the start date", time.Date(2025, 2, 28, 23, 59, 0, 0, time.UTC), 0},
		{"on the start date", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), 1},
		{"on the end date", time.Date(2025, 3, 31, 23, 59, 0, 0, time.UTC), 1},
		{"after the end date", time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAREnv(t, nil)
			e.setNow(tc.now)
			e.send("m1", "bob@remote.test", origMsg, "alice@example.com")
			if items, _ := e.queue(); len(items) != tc.want {
				t.Errorf("%d auto-replies, want %d", len(items), tc.want)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		e := newAREnv(t, nil)
		u, _ := e.sq.GetUser(context.Background(), "alice@example.com")
		u.ReplyEnabled = false
		if err := e.sq.UpdateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		e.send("m1", "bob@remote.test", origMsg, "alice@example.com")
		if items, _ := e.queue(); len(items) != 0 {
			t.Errorf("%d auto-replies from a user whose auto-reply is off", len(items))
		}
	})
}

func TestAutoReplyAliasAndDisplayName(t *testing.T) {
	e := newAREnv(t, nil)
	// team@ reaches alice (display name) and carol (none): two replies.
	e.send("m1", "bob@remote.test", strings.Replace(origMsg, "To: Alice <alice@example.com>", "To: team@example.com", 1), "team@example.com")
	items, bodies := e.queue()
	if len(items) != 2 {
		t.Fatalf("%d auto-replies, want one from each of alice and carol", len(items))
	}
	froms := map[string]string{}
	for i, it := range items {
		m, _ := replyFields(t, []byte(bodies[i]))
		froms[it.Sender] = m.Header.Get("From")
	}
	if froms["alice@example.com"] != "\"Alice Example\" <alice@example.com>" || froms["carol@example.com"] != "carol@example.com" {
		t.Errorf("From fields by envelope sender: %q", froms)
	}
}

func TestAutoReplySuppressed(t *testing.T) {
	cases := []struct {
		name, sender, msg string
	}{
		{"null sender", "", origMsg},
		{"mailer-daemon", "MAILER-DAEMON@remote.test", origMsg},
		{"mailing list", "bob@remote.test", "List-Id: <l.remote.test>\n" + origMsg},
		{"auto-submitted", "bob@remote.test", "Auto-Submitted: auto-generated\n" + origMsg},
		{"precedence", "bob@remote.test", "Precedence: bulk\n" + origMsg},
		{"no-reply from", "bob@remote.test", strings.Replace(origMsg, "<bob@remote.test>", "<noreply@remote.test>", 1)},
		{"own address", "alice@example.com", origMsg},
		{"malformed header", "bob@remote.test", " continuation first\n" + origMsg},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAREnv(t, nil)
			e.send("m1", tc.sender, tc.msg, "alice@example.com")
			if items, _ := e.queue(); len(items) != 0 {
				t.Errorf("%d auto-replies, want none", len(items))
			}
			if n := len(bodiesOf(t, e.sq, "alice@example.com")); n != 1 {
				t.Errorf("alice has %d messages, want the original", n)
			}
		})
	}
}

// TestAutoReplyFailureKeepsDelivery: whatever stops the reply, the
// original is delivered and Deliver reports success.
func TestAutoReplyFailureKeepsDelivery(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*AutoReplyOptions)
		log  string
	}{
		{"store cannot record", func(o *AutoReplyOptions) { o.Sent = failingClaims{o.Sent} }, "no auto-reply: cannot record it"},
		{"sender does not resolve", func(o *AutoReplyOptions) { o.Router = failingRouter{} }, "no auto-reply: sender does not resolve"},
		{"user cannot be read", func(o *AutoReplyOptions) { o.Users = failingUsers{} }, "no auto-reply: cannot read the user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAREnv(t, tc.mod)
			e.send("m1", "bob@remote.test", origMsg, "alice@example.com")
			if n := len(bodiesOf(t, e.sq, "alice@example.com")); n != 1 {
				t.Errorf("alice has %d messages, want the original", n)
			}
			if items, _ := e.queue(); len(items) != 0 {
				t.Errorf("%d queue entries, want none", len(items))
			}
			if len(e.logs.find(tc.log, "m1")) != 1 {
				t.Errorf("no %q log record", tc.log)
			}
		})
	}
	t.Run("reply of an unknown local sender", func(t *testing.T) {
		e := newAREnv(t, nil)
		e.send("m1", "ghost@example.org", origMsg, "alice@example.com")
		if n := len(bodiesOf(t, e.sq, "alice@example.com")); n != 1 {
			t.Errorf("alice has %d messages, want the original", n)
		}
		if items, _ := e.queue(); len(items) != 0 {
			t.Errorf("%d queue entries, want none", len(items))
		}
	})
	t.Run("incomplete options disable auto-replies", func(t *testing.T) {
		e := newAREnv(t, func(o *AutoReplyOptions) { o.Sent = nil })
		e.send("m1", "bob@remote.test", origMsg, "alice@example.com")
		if items, _ := e.queue(); len(items) != 0 {
			t.Errorf("%d queue entries, want none", len(items))
		}
		if e.d.reply != nil {
			t.Error("auto-replier built without a store")
		}
	})
}

type failingUsers struct{}

func (failingUsers) GetUser(context.Context, string) (*store.User, error) { return nil, errBackend }

// TestAutoReplyLargeOriginal: the header of a body that spilled to a blob
// file is read from the file.
func TestAutoReplyLargeOriginal(t *testing.T) {
	e := newAREnv(t, nil)
	big := origMsg + strings.Repeat("0123456789abcdef\n", (int(e.sq.InlineMax())/17)+100)
	e.send("m1", "bob@remote.test", big, "alice@example.com")
	items, bodies := e.queue()
	if len(items) != 1 || !strings.Contains(bodies[0], "In-Reply-To: <lunch-1@remote.test>") {
		t.Fatalf("%d auto-replies to a large message, want 1 answering it", len(items))
	}
}

// TestAutoReplyConcurrentSameSender: simultaneous messages from one sender
// get one reply.
func TestAutoReplyConcurrentSameSender(t *testing.T) {
	e := newAREnv(t, nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.trySend(fmt.Sprintf("m%d", i), "bob@remote.test", strings.Replace(origMsg, "lunch-1", fmt.Sprintf("c%d", i), 1), "alice@example.com"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if items, _ := e.queue(); len(items) != 1 {
		t.Fatalf("%d auto-replies to 8 simultaneous messages, want 1", len(items))
	}
}

func TestAutoReplyPrune(t *testing.T) {
	e := newAREnv(t, nil)
	e.send("m1", "bob@remote.test", origMsg, "alice@example.com")
	// Nine days later (still within alice's dates) another sender
	// writes: that delivery prunes the records older than a week.
	e.setNow(time.Date(2025, 3, 13, 11, 0, 0, 0, time.UTC))
	e.send("m2", "dora@remote.test", strings.ReplaceAll(origMsg, "bob@", "dora@"), "alice@example.com")
	n, err := e.sq.PruneAutoReplies(context.Background(), time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d records older than March 1st", n)
	}
	// Only dora's record is left: pruning everything older than her
	// reply finds nothing; bob's was pruned by the delivery of m2.
	if n, _ := e.sq.PruneAutoReplies(context.Background(), time.Date(2025, 3, 13, 10, 0, 0, 0, time.UTC)); n != 0 {
		t.Errorf("bob's record was not pruned opportunistically (%d pruned now)", n)
	}
	if n, _ := e.sq.PruneAutoReplies(context.Background(), time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)); n != 1 {
		t.Errorf("%d records, want dora's", n)
	}
}

// TestRouteAutoReply: the router marks exactly the mailboxes whose user
// has the auto-reply enabled, so other deliveries read no user row.
func TestRouteAutoReply(t *testing.T) {
	e := newAREnv(t, nil)
	cases := []struct {
		rcpt string
		want []string
	}{
		{"alice@example.com", []string{"alice@example.com"}},
		{"alice+tag@example.com", []string{"alice@example.com"}},
		{"team@example.com", []string{"alice@example.com", "carol@example.com"}},
		{"bob@example.org", nil},
		{"x@remote.test", nil},
	}
	for _, tc := range cases {
		rt, err := e.router.Resolve(context.Background(), tc.rcpt)
		if err != nil {
			t.Fatal(err)
		}
		if !sameSet(rt.AutoReply, tc.want) {
			t.Errorf("Resolve(%s).AutoReply = %q, want %q", tc.rcpt, rt.AutoReply, tc.want)
		}
	}
	// A forward without a kept copy never reaches the mailbox: no reply
	// (Mailu forwards in Postfix, before sieve).
	u, _ := e.sq.GetUser(context.Background(), "alice@example.com")
	u.ForwardEnabled, u.ForwardDestination, u.ForwardKeep = true, []string{"elsewhere@remote.test"}, false
	if err := e.sq.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if rt, _ := e.router.Resolve(context.Background(), "alice@example.com"); len(rt.AutoReply) != 0 {
		t.Errorf("forward without keep: AutoReply = %q", rt.AutoReply)
	}
}
