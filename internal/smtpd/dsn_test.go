package smtpd

import (
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// RFC 3461: RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT reach the
// envelope (decoded from xtext); malformed ones are refused by go-smtp
// with 501 and never reach it.
func TestDSNParametersKept(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<carol@remote.test> RET=HDRS ENVID=QQ+2B314159", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Alice+40Old.Example", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS", 501, "")
	c.cmd("RCPT TO:<bob@example.test> NOTIFY=SOMETIMES", 501, "")
	c.cmd("DATA", 354, "")
	c.write("Subject: dsn\r\n\r\nhi\r\n.\r\n")
	c.expect(250, "2.0.0")
	c.cmd("MAIL FROM:<carol@remote.test> RET=MOST", 501, "")
	c.cmd("MAIL FROM:<carol@remote.test> ENVID=\x01", 501, "")

	got := e.deliv.delivered()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	env := got[0].env
	if env.DSNRet != "HDRS" || env.DSNEnvID != "QQ+314159" {
		t.Errorf("RET=%q ENVID=%q", env.DSNRet, env.DSNEnvID)
	}
	if len(env.Routes) != 2 {
		t.Fatalf("%d routes", len(env.Routes))
	}
	if d := env.Routes[0].DSN; d != (store.RcptDSN{Notify: "SUCCESS,DELAY", ORcpt: "rfc822;Alice@Old.Example"}) {
		t.Errorf("alice's DSN parameters %+v", d)
	}
	if d := env.Routes[1].DSN; d != (store.RcptDSN{}) {
		t.Errorf("bob's DSN parameters %+v; want none", d)
	}
}
