package smtpd

import (
	"strings"
	"testing"
)

// RFC 8689 4.1: REQUIRETLS is offered only under TLS, taken only under
// TLS (530 5.7.10 in clear), and reaches the envelope.
func TestRequireTLSPort25(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	if caps := c.ehlo(); hasCap(caps, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered in clear: %q", caps)
	}
	c.cmd("MAIL FROM:<carol@remote.test> REQUIRETLS", 530, "5.7.10")
	c.starttls(e.cert.Client)
	if caps := c.ehlo(); !hasCap(caps, "REQUIRETLS") {
		t.Errorf("REQUIRETLS not offered after STARTTLS: %q", caps)
	}
	c.cmd("MAIL FROM:<carol@remote.test> REQUIRETLS", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: secret\r\n\r\nhi\r\n.\r\n")
	c.expect(250, "2.0.0")
	c.cmd("MAIL FROM:<carol@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: plain\r\n\r\nhi\r\n.\r\n")
	c.expect(250, "2.0.0")

	got := e.deliv.delivered()
	if len(got) != 2 || !got[0].env.RequireTLS || got[1].env.RequireTLS {
		t.Fatalf("deliveries %d; want 2, the first with RequireTLS only", len(got))
	}
	if !strings.Contains(e.logs.String(), "requiretls=true") {
		t.Errorf("the received record does not say REQUIRETLS:\n%s", e.logs)
	}
}

func TestRequireTLSSubmission(t *testing.T) {
	for _, role := range []Role{RoleSubmission, RoleSubmissions} {
		t.Run(role.String(), func(t *testing.T) {
			e := startServer(t, role, nil)
			c := e.dial()
			caps := c.ehlo()
			if role == RoleSubmission {
				if hasCap(caps, "REQUIRETLS") {
					t.Errorf("REQUIRETLS offered in clear: %q", caps)
				}
				c.starttls(e.cert.Client)
				caps = c.ehlo()
			}
			if !hasCap(caps, "REQUIRETLS") {
				t.Errorf("REQUIRETLS not offered under TLS: %q", caps)
			}
			c.login("alice@example.test", "alice-secret-pw")
			c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS", 250, "2.0.0")
			c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
			c.cmd("DATA", 354, "")
			c.write("Subject: secret\r\n\r\nhi\r\n.\r\n")
			c.expect(250, "2.0.0")
			if got := e.deliv.delivered(); len(got) != 1 || !got[0].env.RequireTLS {
				t.Fatalf("deliveries %+v; want one with RequireTLS", got)
			}
		})
	}
}
