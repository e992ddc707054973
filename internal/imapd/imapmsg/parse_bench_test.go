package imapmsg

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkParse: the structure of a 4 KiB two-part message, as FETCH
// BODYSTRUCTURE parses it, and its header alone (ENVELOPE).
func BenchmarkParse(b *testing.B) {
	msg := []byte("From: Alice <alice@example.org>\r\nTo: bob@example.test\r\nSubject: the plan\r\n" +
		"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("Some text of the message body.\r\n", 60) +
		"--b\r\nContent-Type: text/html\r\n\r\n<p>" + strings.Repeat("Some text of the message body.\r\n", 60) + "</p>\r\n--b--\r\n")
	r := bytes.NewReader(msg)
	b.Run("structure", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(r, int64(len(msg))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("header", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseHeader(r, int64(len(msg))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
