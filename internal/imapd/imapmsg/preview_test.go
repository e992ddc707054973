package imapmsg

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPreview(t *testing.T) {
	long := strings.Repeat("Grüße ", 100)
	for _, tc := range []struct{ name, msg, want string }{
		{"plain", "Subject: x\r\n\r\nHello   there,\r\n\r\n  how are\tyou?\r\n", "Hello there, how are you?"},
		{"quoted lines left out", "Subject: x\r\n\r\nYes.\r\n> On Monday you wrote:\r\n> old text\r\nBye\r\n", "Yes. Bye"},
		{"quoted-printable latin-1", "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nVoil=E0 le=\r\n r=E9sum=E9\r\n", "Voilà le résumé"},
		{"html only", "Content-Type: text/html\r\n\r\n<html><head><title>T</title><style>p{}</style></head><body><p>Caf&eacute; <b>now</b></p><!-- no --></body></html>\r\n", "Café now"},
		{"plain preferred over html", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\ncGxhaW4gdGV4dA==\r\n--b--\r\n", "plain text"},
		{"attachment skipped", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b--\r\n", "body"},
		{"no text", "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n", ""},
	} {
		st := ParseBytes([]byte(tc.msg))
		if got := Preview(bytes.NewReader([]byte(tc.msg)), st); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	msg := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + long + "\r\n"
	got := Preview(bytes.NewReader([]byte(msg)), ParseBytes([]byte(msg)))
	if n := utf8.RuneCountInString(got); n != maxPreview || !strings.HasPrefix(long, got) {
		t.Errorf("long text: %d characters %q", n, got)
	}
}
