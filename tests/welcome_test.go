package tests

import (
	"strings"
	"testing"
)

// TestWelcomeMail: with WELCOME=true a user created by the CLI and one
// created over the REST API each find the welcome message in INBOX, once,
// and a restart sends nothing again (issue 15, Mailu's WELCOME settings).
func TestWelcomeMail(t *testing.T) {
	s := newServer(t, map[string]string{
		"WELCOME": "true", "WELCOME_SUBJECT": "Hello from Petrel", "WELCOME_BODY": "Your account works.",
		"API": "true", "API_TOKEN": "Api-Token-For-Tests-42",
	})
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.start()

	create := `
import json, os, ssl, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
req = urllib.request.Request("https://" + os.environ["A443"] + "/api/v1/user", method="POST",
    data=json.dumps({"email": "bob@example.test", "raw_password": "Secret-Bob-2"}).encode(),
    headers={"Authorization": "Bearer Api-Token-For-Tests-42", "Content-Type": "application/json"})
print("STATUS", urllib.request.urlopen(req, context=ctx).status)
`
	if out, err := runPython(t, create, map[string]string{"A443": s.addr[443]}); err != nil || !strings.Contains(out, "STATUS 200") {
		t.Fatalf("create bob over the API: %v\n%s\n%s", err, out, s.logs())
	}

	inbox := `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
for user, pw in (("alice@example.test", "Secret-Alice-1"), ("bob@example.test", "Secret-Bob-2")):
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    m.login(user, pw)
    typ, data = m.select("INBOX")
    typ, hits = m.search(None, "SUBJECT", '"Hello from Petrel"')
    typ, body = m.fetch("1", "(BODY.PEEK[TEXT])") if data[0] != b"0" else ("NO", [None])
    text = body[0][1].decode() if body[0] else ""
    print(user, "COUNT", data[0].decode(), "HITS", len(hits[0].split()), "BODY", "Your account works." in text)
    m.logout()
`
	check := func(when string) {
		t.Helper()
		out, err := runPython(t, inbox, map[string]string{"A993": s.addr[993]})
		if err != nil {
			t.Fatalf("%s: imaplib: %v\n%s\n%s", when, err, out, s.logs())
		}
		for _, user := range []string{"alice@example.test", "bob@example.test"} {
			if !strings.Contains(out, user+" COUNT 1 HITS 1 BODY True") {
				t.Errorf("%s: %s should have exactly the welcome message:\n%s", when, user, out)
			}
		}
	}
	check("after creation")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s.start()
	check("after a restart")
}
