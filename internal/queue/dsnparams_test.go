package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// submitDSN queues a message with RFC 3461 parameters.
func (h *harness) submitDSN(id, sender string, p *store.DSNParams, rcpts ...string) {
	h.t.Helper()
	body := []byte("From: <" + sender + ">\r\nSubject: test " + id + "\r\n\r\nsecret body of " + id + "\r\n")
	m := &store.NewMessage{ID: id, Sender: sender, Body: body, Size: int64(len(body)), Remote: rcpts, DSN: p}
	if err := h.st.CommitMessages(context.Background(), []*store.NewMessage{m}); err != nil {
		h.t.Fatal(err)
	}
	h.clock.notBefore(time.Now()) // the entry is due on the fake clock
}

func TestDSNParamsReachTransport(t *testing.T) {
	h := newHarness(t)
	h.submitDSN("m1", "alice@example.com", &store.DSNParams{Ret: "HDRS", EnvID: "env-1",
		Rcpts: map[string]store.RcptDSN{"bob@remote.example": {Notify: "FAILURE", ORcpt: "rfc822;b@alias.example"}}},
		"bob@remote.example", "carol@remote.example")
	h.start(nil)
	h.settle()
	h.tr.mu.Lock()
	defer h.tr.mu.Unlock()
	if len(h.tr.calls) != 1 {
		t.Fatalf("%d transport calls", len(h.tr.calls))
	}
	m := h.tr.calls[0]
	if m.Ret != "HDRS" || m.EnvID != "env-1" || m.DSN["bob@remote.example"] != (store.RcptDSN{Notify: "FAILURE", ORcpt: "rfc822;b@alias.example"}) {
		t.Errorf("message DSN parameters: ret=%q envid=%q dsn=%v", m.Ret, m.EnvID, m.DSN)
	}
	if _, ok := m.DSN["carol@remote.example"]; ok {
		t.Errorf("carol has DSN parameters she was not given: %v", m.DSN)
	}
}

// NOTIFY=NEVER, or a list without FAILURE, means no failure DSN.
func TestNotifyNeverNoBounce(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error { return perm(550, "5.1.1", "User unknown") }
	h.submitDSN("m1", "alice@example.com", &store.DSNParams{Rcpts: map[string]store.RcptDSN{
		"bob@remote.example": {Notify: "NEVER"}, "carol@remote.example": {Notify: "SUCCESS,DELAY"}}},
		"bob@remote.example", "carol@remote.example")
	h.submitDSN("m2", "alice@example.com", &store.DSNParams{Rcpts: map[string]store.RcptDSN{
		"dave@remote.example": {Notify: "FAILURE"}}}, "dave@remote.example", "erin@remote.example")
	h.start(nil)
	h.settle()
	if q := h.queue(); len(q) != 0 {
		t.Fatalf("entries left: %+v", q)
	}
	bs := h.bo.all()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs, want one (for m2's dave and erin)", len(bs))
	}
	dsnOf(t, bs[0], "alice@example.com", false, "dave@remote.example", "erin@remote.example")
}

// NOTIFY=SUCCESS: a next hop without DSN gets a "relayed" notice from
// us; one with DSN reports itself.
func TestNotifySuccessRelayed(t *testing.T) {
	h := newHarness(t)
	h.tr.noDSN = true
	h.submitDSN("m1", "alice@example.com", &store.DSNParams{EnvID: "env-7", Rcpts: map[string]store.RcptDSN{
		"bob@remote.example": {Notify: "SUCCESS"}}}, "bob@remote.example", "carol@remote.example")
	h.start(nil)
	h.settle()
	bs := h.bo.all()
	if len(bs) != 1 {
		t.Fatalf("%d notices, want 1", len(bs))
	}
	p := parseDSN(t, bs[0].msg)
	if len(p.perRcpt) != 1 || p.perRcpt[0].Get("Action") != "relayed" || p.perRcpt[0].Get("Status") != "2.0.0" ||
		!strings.HasSuffix(p.perRcpt[0].Get("Final-Recipient"), "bob@remote.example") || p.perMessage.Get("Original-Envelope-Id") != "env-7" {
		t.Errorf("notice: %v %v", p.perMessage, p.perRcpt)
	}
	if p.header.Get("Subject") != "Successful Mail Delivery Report" {
		t.Errorf("Subject %q", p.header.Get("Subject"))
	}

	h2 := newHarness(t)
	h2.submitDSN("m1", "alice@example.com", &store.DSNParams{Rcpts: map[string]store.RcptDSN{
		"bob@remote.example": {Notify: "SUCCESS"}}}, "bob@remote.example")
	h2.start(nil)
	h2.settle()
	if n := len(h2.bo.all()); n != 0 {
		t.Errorf("%d notices for a DSN-capable next hop, want none", n)
	}
}

// RET=HDRS returns the headers only; RET=FULL the whole message.
func TestRetFullAndHdrs(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error { return perm(550, "5.1.1", "User unknown") }
	h.submitDSN("hdrs", "alice@example.com", &store.DSNParams{Ret: "HDRS", Rcpts: map[string]store.RcptDSN{
		"bob@remote.example": {ORcpt: "rfc822;Bob@Alias.Example"}}}, "bob@remote.example")
	h.submitDSN("full", "alice@example.com", &store.DSNParams{Ret: "FULL"}, "carol@remote.example")
	h.start(nil)
	h.settle()
	bs := h.bo.all()
	if len(bs) != 2 {
		t.Fatalf("%d DSNs, want 2", len(bs))
	}
	for _, b := range bs {
		p := parseDSN(t, b.msg)
		full := strings.Contains(string(b.msg), "test full")
		switch {
		case full && (!strings.Contains(p.headers, "secret body of full") || p.types[2] != "message/rfc822"):
			t.Errorf("RET=FULL DSN lacks the body: types %v\n%s", p.types, b.msg)
		case !full && (strings.Contains(string(b.msg), "secret body") || p.types[2] != "text/rfc822-headers"):
			t.Errorf("RET=HDRS DSN carries more than headers: types %v\n%s", p.types, b.msg)
		case !full && p.perRcpt[0].Get("Original-Recipient") != "rfc822; Bob@Alias.Example":
			t.Errorf("Original-Recipient %q", p.perRcpt[0].Get("Original-Recipient"))
		}
	}
}
