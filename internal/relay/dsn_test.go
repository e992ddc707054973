package relay_test

import (
	"testing"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/store"
)

// RFC 3461 4.1: the DSN parameters go on to a next hop that offers DSN;
// one without DSN gets none, and the result says so (the success notice
// is then Petrel's to send).
func TestDSNParametersRelayed(t *testing.T) {
	e := newEnv(t)
	e.dns.Add(t, "dsn.test. MX 10 mx.dsn.test.", "mx.dsn.test. A 127.0.0.81",
		"nodsn.test. MX 10 mx.nodsn.test.", "mx.nodsn.test. A 127.0.0.82")
	withDSN := e.sink("127.0.0.81", sinktest.Options{DSN: true}, false)
	without := e.sink("127.0.0.82", sinktest.Options{}, false)
	c := e.client(nil)

	m := msg("bob@dsn.test", "carol@dsn.test")
	m.Ret, m.EnvID = "HDRS", "QQ314159"
	m.DSN = map[string]store.RcptDSN{
		"bob@dsn.test":   {Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;Bob@Alias.Test"},
		"carol@dsn.test": {Notify: "NEVER,SUCCESS"}, // malformed: dropped, not fatal
	}
	res, err := deliver(t, c, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.NoDSN {
			t.Errorf("%s: err=%v NoDSN=%v; want accepted by a DSN server", r.Recipient, r.Err, r.NoDSN)
		}
	}
	got := withDSN.Messages()
	if len(got) != 1 {
		t.Fatalf("DSN sink got %d messages", len(got))
	}
	if got[0].Ret != "HDRS" || got[0].EnvID != "QQ314159" {
		t.Errorf("MAIL parameters RET=%q ENVID=%q", got[0].Ret, got[0].EnvID)
	}
	if p := got[0].RcptDSN["bob@dsn.test"]; p != "NOTIFY=SUCCESS,FAILURE ORCPT=RFC822;Bob@Alias.Test" {
		t.Errorf("bob's RCPT parameters %q", p)
	}
	if p, ok := got[0].RcptDSN["carol@dsn.test"]; ok {
		t.Errorf("carol's malformed NOTIFY was relayed: %q", p)
	}

	m = msg("dave@nodsn.test")
	m.Ret = "FULL"
	m.DSN = map[string]store.RcptDSN{"dave@nodsn.test": {Notify: "SUCCESS"}}
	res, err = deliver(t, c, m)
	if err != nil || len(res) != 1 || res[0].Err != nil || !res[0].NoDSN {
		t.Fatalf("no-DSN server: %+v, %v; want accepted with NoDSN", res, err)
	}
	if n := len(without.Messages()); n != 1 {
		t.Fatalf("no-DSN sink got %d messages", n)
	}
}
