package tests

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// TestDeliveredOn25FetchedOverIMAP: a message delivered on port 25 is read
// back with Python's imaplib on 993 byte for byte, apart from the trace
// headers Petrel prepends (dot-stuffing, 8-bit text and a long line
// included), and the mailbox list shows the special-use folders.
func TestDeliveredOn25FetchedOverIMAP(t *testing.T) {
	s := withUsers(t, nil)
	long := strings.Repeat("x", 3000)
	original := "From: Bob Sender <bob@example.org>\r\n" +
		"To: alice@example.test\r\n" +
		"Subject: =?utf-8?q?caf=C3=A9?=\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Grüße aus Köln.\r\n" +
		".a line that starts with a dot\r\n" +
		"..two dots\r\n" +
		long + "\r\n" +
		"end\r\n"
	stuffed := strings.ReplaceAll("\r\n"+original, "\r\n.", "\r\n..")[2:]
	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.example.org", "250")
	d.send("MAIL FROM:<bob@example.org> BODY=8BITMIME", "250")
	d.send("RCPT TO:<alice@example.test>", "250")
	d.send("DATA", "354")
	d.send(stuffed+".", "250")
	d.send("QUIT", "221")

	script := `
import imaplib, os, ssl, base64
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
typ, boxes = m.list()
print("LIST", b" | ".join(boxes).decode())
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"1", (typ, data)
typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[] RFC822.SIZE FLAGS)")
assert typ == "OK", typ
print("BODY", base64.b64encode(data[0][1]).decode())
typ, data = m.search(None, "SUBJECT", "caf")
print("SEARCH", data[0].decode())
m.store("1", "+FLAGS", "\\Flagged")
typ, data = m.fetch("1", "(FLAGS)")
print("FLAGS", data[0].decode())
m.logout()
`
	out, err := runPython(t, script, map[string]string{"A993": s.addr[993]})
	if err != nil {
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, s.logs())
	}
	var fetched []byte
	for _, line := range strings.Split(out, "\n") {
		if b64, ok := strings.CutPrefix(line, "BODY "); ok {
			fetched, err = base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.HasSuffix(fetched, []byte(original)) {
		t.Fatalf("fetched message does not end with the original:\n%q", fetched)
	}
	trace := string(fetched[:len(fetched)-len(original)])
	for _, line := range strings.Split(strings.TrimSuffix(trace, "\r\n"), "\r\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "Received:") && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") &&
			!strings.HasPrefix(line, "Return-Path:") && !strings.HasPrefix(line, "Authentication-Results:") &&
			!strings.HasPrefix(line, "X-Spam") {
			t.Errorf("unexpected header added in front of the message: %q", line)
		}
	}
	for _, want := range []string{`\Sent`, `\Trash`, `\Junk`, `\Drafts`, "SEARCH 1", `\Flagged`} {
		if !strings.Contains(out, want) {
			t.Errorf("imaplib output lacks %q:\n%s", want, out)
		}
	}
}
