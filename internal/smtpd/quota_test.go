package smtpd

import (
	"testing"

	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/store"
)

// TestRcptQuota: a recipient whose mailbox is full is refused at its own
// RCPT (452 4.2.2), one whose whole quota is below the declared SIZE with
// 552 5.2.2; the other recipients of the transaction still get the
// message (it used to be 552 after DATA for everyone).
func TestRcptQuota(t *testing.T) {
	user := func(local string, quota, used int64) *store.User {
		u := store.NewUser(local, "example.test", quota, 80)
		u.QuotaBytesUsed = used
		return &u
	}
	acc := &memAccounts{
		domains: map[string]bool{"example.test": true},
		users: map[string]*store.User{
			"alice@example.test": user("alice", 0, 0),
			"full@example.test":  user("full", 1000, 1000),
			"small@example.test": user("small", 100, 0),
		},
		aliases: map[string]*store.Alias{"team@example.test": {Email: "team@example.test", Localpart: "team",
			DomainName: "example.test", Destination: []string{"full@example.test", "alice@example.test"}}},
	}
	router := inbound.NewRouter(inbound.RouterOptions{Accounts: acc})
	e := startServer(t, RoleMX, func(o *Options) { o.Router = router })

	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<full@example.test>", 452, "4.2.2")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<team@example.test>", 250, "2.0.0") // alice has room
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(250, "2.0.0")
	got := e.deliv.delivered()
	if len(got) != 1 || len(got[0].env.Routes) != 2 || got[0].env.Routes[0].Rcpt != "alice@example.test" {
		t.Fatalf("delivered %+v, want alice and the alias only", got)
	}

	c.cmd("MAIL FROM:<s@remote.test> SIZE=500", 250, "2.0.0")
	c.cmd("RCPT TO:<small@example.test>", 552, "5.2.2") // can never fit
	c.cmd("RCPT TO:<full@example.test>", 452, "4.2.2")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
}
