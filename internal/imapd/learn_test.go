package imapd

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

type copyEvent struct {
	user, from, to string
	bodies         []int64
}

type fakeObserver struct {
	mu     sync.Mutex
	events []copyEvent
}

func (f *fakeObserver) Copied(user, from string, to *store.Mailbox, bodies []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, copyEvent{user, from, to.Name + "|" + to.SpecialUse, bodies})
}

func (f *fakeObserver) Appended(user string, to *store.Mailbox, body int64) {
	f.Copied(user, "APPEND", to, []int64{body})
}

// COPY and MOVE tell the observer which stored bodies went where, with
// the destination's special-use attribute, so that a Junk move can train
// the spam filters.
func TestCopyObserver(t *testing.T) {
	obs := &fakeObserver{}
	ts := startServer(t, func(_ *testServer, o *Options) { o.CopyObserver = obs })
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	inbox := listOf(t, ts, alice, "INBOX")
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.ok("UID MOVE 1,3 Junk")
	c.ok("COPY 1 Trash")
	c.expect("COPY 1 Nope", "NO [TRYCREATE]")
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.events) != 2 {
		t.Fatalf("events = %+v, want 2", obs.events)
	}
	e := obs.events[0]
	if e.user != alice || e.from != "INBOX" || e.to != `Junk|\Junk` || !slices.Equal(e.bodies, []int64{inbox[0].BodyID, inbox[2].BodyID}) {
		t.Errorf("move event = %+v (bodies %d, %d)", e, inbox[0].BodyID, inbox[2].BodyID)
	}
	if e := obs.events[1]; e.to != `Trash|\Trash` || !slices.Equal(e.bodies, []int64{inbox[1].BodyID}) {
		t.Errorf("copy event = %+v", e)
	}
}

// APPEND tells the observer the stored body and the destination, so that
// an APPEND into Junk can train the spam filters.
func TestAppendObserved(t *testing.T) {
	obs := &fakeObserver{}
	ts := startServer(t, func(_ *testServer, o *Options) { o.CopyObserver = obs })
	c := ts.login(alice, alicePass)
	msg := testMessage("appended")
	c.ok(fmt.Sprintf("APPEND Junk {%d+}\r\n%s", len(msg), msg))
	c.expect(fmt.Sprintf("APPEND Nope {%d+}\r\n%s", len(msg), msg), "NO [TRYCREATE]")
	junk := listOf(t, ts, alice, "Junk")
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(junk) != 1 || len(obs.events) != 1 {
		t.Fatalf("Junk has %d messages, events = %+v; want 1 and 1", len(junk), obs.events)
	}
	if e := obs.events[0]; e.user != alice || e.from != "APPEND" || e.to != `Junk|\Junk` || !slices.Equal(e.bodies, []int64{junk[0].BodyID}) {
		t.Errorf("append event = %+v, want body %d into Junk", e, junk[0].BodyID)
	}
}
