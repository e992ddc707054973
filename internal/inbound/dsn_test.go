package inbound

import (
	"context"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// RFC 3461: a local route with NOTIFY=SUCCESS gets a "delivered" notice
// once committed; other routes, and the null sender, get none.
func TestSuccessNotice(t *testing.T) {
	st := newMemStore()
	type notice struct {
		sender string
		rcpts  []string
		orcpt  string
	}
	got := make(chan notice, 4)
	h := newHarness(t, st, DelivererOptions{SuccessNotice: func(ctx context.Context, env *Envelope, routes []Route, headers []byte) error {
		n := notice{sender: env.Sender}
		for _, r := range routes {
			n.rcpts = append(n.rcpts, r.Rcpt)
			n.orcpt = r.DSN.ORcpt
		}
		got <- n
		return nil
	}})
	body := []byte("Subject: dsn\r\n\r\nhi\r\n")
	asked := toBox("a@example.com")
	asked.DSN = store.RcptDSN{Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;A@Example.com"}
	plain := toBox("b@example.com")
	never := toBox("c@example.com")
	never.DSN = store.RcptDSN{Notify: "NEVER"}
	if err := h.deliver(context.Background(), env("s1", asked, plain, never), body); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n.sender != "sender@remote.test" || len(n.rcpts) != 1 || n.rcpts[0] != "a@example.com" || n.orcpt != "rfc822;A@Example.com" {
			t.Errorf("notice %+v; want one for a@example.com", n)
		}
	default:
		t.Fatal("no success notice")
	}
	if err := h.deliver(context.Background(), env("s2", plain), body); err != nil {
		t.Fatal(err)
	}
	e := env("s3", asked)
	e.Sender = ""
	if err := h.deliver(context.Background(), e, body); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		t.Fatalf("unexpected notice %+v", n)
	default:
	}
}

// Remote addresses keep their route's DSN parameters, and an alias
// expansion names the address the client gave as ORCPT.
func TestRemoteDSNParams(t *testing.T) {
	e := &Envelope{ID: "x", Sender: "s@remote.test", DSNRet: "HDRS", DSNEnvID: "id1", Routes: []Route{
		{Kind: RouteLocal, Rcpt: "alias@example.com", Remote: []string{"far@other.test"}, DSN: store.RcptDSN{Notify: "FAILURE"}},
		{Kind: RouteForeign, Rcpt: "direct@other.test", Remote: []string{"direct@other.test"}},
	}}
	h := newHarness(t, newMemStore(), DelivererOptions{})
	m := h.d.newMessage(e)
	if m.DSN == nil || m.DSN.Ret != "HDRS" || m.DSN.EnvID != "id1" {
		t.Fatalf("DSN %+v", m.DSN)
	}
	if got := m.DSN.Rcpts["far@other.test"]; got != (store.RcptDSN{Notify: "FAILURE", ORcpt: "rfc822;alias@example.com"}) {
		t.Errorf("far@other.test: %+v", got)
	}
	if got := m.DSN.Rcpts["direct@other.test"]; got != (store.RcptDSN{}) {
		t.Errorf("direct@other.test: %+v", got)
	}
}

// RFC 8689: REQUIRETLS goes with the message to its queue entries,
// alias expansions (forwards) included.
func TestRequireTLSKept(t *testing.T) {
	h := newHarness(t, newMemStore(), DelivererOptions{})
	routes := []Route{
		{Kind: RouteLocal, Rcpt: "alias@example.com", Remote: []string{"far@other.test"}},
		{Kind: RouteForeign, Rcpt: "direct@other.test", Remote: []string{"direct@other.test"}},
	}
	if m := h.d.newMessage(&Envelope{ID: "r", Sender: "s@remote.test", RequireTLS: true, Routes: routes}); !m.RequireTLS || len(m.Remote) != 2 {
		t.Errorf("with REQUIRETLS: RequireTLS=%v remote=%v", m.RequireTLS, m.Remote)
	}
	if m := h.d.newMessage(&Envelope{ID: "p", Sender: "s@remote.test", Routes: routes}); m.RequireTLS {
		t.Error("RequireTLS set without REQUIRETLS")
	}
}
