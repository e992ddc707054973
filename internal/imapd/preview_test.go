package imapd

import (
	"strings"
	"testing"
)

// An 8-bit preview is a literal in IMAP4rev1 and a quoted UTF-8 string
// once IMAP4rev2 is enabled (RFC 8970 3, RFC 9051 4.3).
func TestPreviewLiteral(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln\r\n")
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	if u := c.ok("FETCH 1 (PREVIEW)"); len(u) != 1 || u[0] != "* 1 FETCH (PREVIEW {17}\r\nGrüße aus Köln)" {
		t.Fatalf("rev1 PREVIEW: %q", u)
	}
	c.ok("ENABLE IMAP4rev2")
	if u := c.ok("FETCH 1 (PREVIEW)"); len(u) != 1 || u[0] != `* 1 FETCH (PREVIEW "Grüße aus Köln")` {
		t.Fatalf("rev2 PREVIEW: %q", u)
	}
	if u := c.ok("FETCH 1 (FLAGS)"); len(u) != 1 || strings.Contains(u[0], `\Seen`) {
		t.Fatalf("PREVIEW set \\Seen: %q", u)
	}
}
