package tests

import (
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// tlsRelay starts a sink with a self-signed certificate for 127.0.0.1
// (STARTTLS, REQUIRETLS as asked) and a Petrel that relays to it and
// trusts it through RELAYHOST_CA_FILE.
func tlsRelay(t *testing.T, requireTLS bool) (*sinktest.Sink, *server) {
	t.Helper()
	cfg, _ := sinktest.Cert(t, "127.0.0.1")
	sink := sinktest.Start(t, sinktest.Options{TLS: cfg, REQUIRETLS: requireTLS})
	ca := filepath.Join(t.TempDir(), "relay-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := withUsers(t, map[string]string{
		"RELAYHOST":         fmt.Sprintf("[127.0.0.1]:%d", sink.Port()),
		"RELAYHOST_CA_FILE": ca,
	})
	return sink, s
}

// sendRequireTLS is Python's smtplib (an independent client): on port 25
// it checks that REQUIRETLS is neither offered nor taken in clear, then
// submits on 465 with MAIL FROM REQUIRETLS (when requiretls) and the
// given extra header.
const sendRequireTLS = `
import os, smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A25"].rsplit(":", 1)
with smtplib.SMTP(host, int(port)) as c:
    c.ehlo("client.example.net")
    assert not c.has_extn("requiretls"), "REQUIRETLS offered in clear"
    code, resp = c.docmd("MAIL FROM:<carol@remote.example> REQUIRETLS")
    assert code == 530 and resp.startswith(b"5.7.10"), (code, resp)
    c.docmd("RSET")
    c.starttls(context=ctx)
    c.ehlo("client.example.net")
    assert c.has_extn("requiretls"), "REQUIRETLS not offered after STARTTLS"
host, port = os.environ["A465"].rsplit(":", 1)
with smtplib.SMTP_SSL(host, int(port), context=ctx) as c:
    c.login("alice@example.test", "Secret-Alice-1")
    assert c.has_extn("requiretls"), "REQUIRETLS not offered on 465"
    msg = "From: alice@example.test\r\nTo: friend@remote.example\r\n" + os.environ["HDR"] + "Subject: confidential\r\n\r\nThe secret body text.\r\n"
    opts = ["REQUIRETLS"] if os.environ["REQ"] == "1" else []
    c.sendmail("alice@example.test", ["friend@remote.example"], msg, mail_options=opts)
print("sent")
`

func runSendRequireTLS(t *testing.T, s *server, requireTLS bool, header string) {
	t.Helper()
	req := "0"
	if requireTLS {
		req = "1"
	}
	out, err := runPython(t, sendRequireTLS, map[string]string{"A25": s.addr[25], "A465": s.addr[465], "REQ": req, "HDR": header})
	if err != nil || !strings.Contains(out, "sent") {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
}

// REQUIRETLS end to end: submitted with it, relayed over verified TLS to
// a relay that offers it, and passed on.
func TestRequireTLSRelayed(t *testing.T) {
	sink, s := tlsRelay(t, true)
	runSendRequireTLS(t, s, true, "")
	got := waitSink(t, sink, 1, s)[0]
	if !got.TLS || !got.RequireTLS {
		t.Errorf("relay got TLS=%v REQUIRETLS=%v; want both", got.TLS, got.RequireTLS)
	}
	if !s.waitLog(`tls_rule="REQUIRETLS (RFC 8689): verified TLS to RELAYHOST`) {
		t.Errorf("the delivery log does not name the rule:\n%s", s.logs())
	}
}

// A relay without REQUIRETLS never gets the message: the sender gets it
// back with 5.7.30, headers only. Without REQUIRETLS, "TLS-Required: No"
// travels unchanged.
func TestRequireTLSReturnedWithout(t *testing.T) {
	sink, s := tlsRelay(t, false)
	runSendRequireTLS(t, s, true, "")
	if !s.waitLog("msg=bounced") {
		t.Fatalf("no bounce logged:\n%s", s.logs())
	}
	runSendRequireTLS(t, s, false, "TLS-Required: No\r\n")
	got := waitSink(t, sink, 1, s)
	if len(got) != 1 || !got[0].HasHeader("TLS-Required: No") || got[0].RequireTLS {
		t.Errorf("relay got %d messages (want 1, with the TLS-Required header kept and no REQUIRETLS)", len(got))
	}
	s.stopClean()
	dsns := inbox(t, s, "alice@example.test")
	if len(dsns) != 1 {
		t.Fatalf("alice has %d messages, want the DSN", len(dsns))
	}
	for _, want := range []string{"Action: failed", "Status: 5.7.30", "REQUIRETLS support required", "Subject: confidential", "text/rfc822-headers"} {
		if !strings.Contains(dsns[0], want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsns[0])
		}
	}
	if strings.Contains(dsns[0], "The secret body text") {
		t.Errorf("the DSN carries the body of a REQUIRETLS message:\n%s", dsns[0])
	}
}
