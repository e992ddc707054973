package imapmsg

import (
	"slices"
	"strings"
	"testing"
)

func TestHTMLText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"<p>Hello <b>Pe</b>trel &amp; friends</p>", "\nHello Petrel & friends\n"},
		{"a<br>b<div>c</div>", "a\nb\nc\n"},
		{"<style>p{color:red}</style>x<script>var y=1</script>z", "xz"},
		{"<!-- hidden -->&eacute;t&#233;", "été"},
	}
	for _, c := range cases {
		if got := HTMLText(c.in); got != c.want {
			t.Errorf("HTMLText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIndexText(t *testing.T) {
	msg := "From: =?utf-8?q?J=C3=B6rg?= <j@x.test>\r\nSubject: Hi\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<i>Gr=FC=DFe</i>\r\n" +
		"--B\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nsecret\r\n" +
		"--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--B--\r\n"
	st := ParseBytes([]byte(msg))
	r := strings.NewReader(msg)
	header, body, err := IndexText(r, st, TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(header, "from: jörg <j@x.test>") || !strings.Contains(header, "subject: hi") {
		t.Errorf("header %q", header)
	}
	all := strings.Join(body, "|")
	if !strings.Contains(all, "grüße") || strings.Contains(all, "<i>") || strings.Contains(all, "secret") ||
		!strings.Contains(all, "subject: inner") || !strings.Contains(all, "inner body") {
		t.Errorf("body %q", body)
	}
	_, body, _ = IndexText(r, st, TextOptions{Attachments: true})
	if !slices.ContainsFunc(body, func(s string) bool { return strings.Contains(s, "secret") }) {
		t.Errorf("with attachments: %q", body)
	}
}
