package filter

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// walkWouldSkip is what walk decides at the top of the message, from
// go-message's own parse: one text part without a file name, nothing to
// look into.
func walkWouldSkip(data []byte) bool {
	ent, err := message.Read(bytes.NewReader(data))
	if ent == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		return false
	}
	if ent.MultipartReader() != nil {
		return false
	}
	mt, _, _ := ent.Header.ContentType()
	return strings.HasPrefix(mt, "text/") && partFileName(ent.Header) == ""
}

func plainTextOf(data []byte) bool {
	return plainText(bufio.NewReaderSize(bytes.NewReader(data), scanPeek))
}

func TestPlainText(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", scanPeek) + "\r\n"
	for _, c := range []struct {
		name, msg string
		fast      bool
	}{
		{"no content type", "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n", true},
		{"text/plain", "Content-Type: text/plain; charset=utf-8\r\n\r\nbody", true},
		{"folded", "Content-Type: text/html;\r\n\tcharset=\"iso-8859-1\"\r\nTo: x@y\r\n\r\nbody", true},
		{"folded onto the next line", "Content-Type:\r\n text/plain\r\n\r\nbody", true},
		{"bare LF", "Content-Type: text/plain\n\nbody", true},
		{"unparsable but text", "Content-Type: text/plain; ;;\r\n\r\nbody", true},
		{"multipart", "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n", false},
		{"a disposition", "Content-Disposition: inline\r\n\r\nbody", false},
		{"a name", "Content-Type: text/plain; name=run.exe\r\n\r\nMZ", false},
		{"an RFC 2231 name", "Content-Type: text/plain; name*=UTF-8''run.exe\r\n\r\nMZ", false},
		{"a name in another parameter", "Content-Type: text/plain; x=\"name=a.exe\"\r\n\r\nbody", false},
		{"a folded name", "Content-Type: text/plain;\r\n name=a.exe\r\n\r\nbody", false},
		{"two content types", "Content-Type: text/plain\r\nContent-Type: application/zip\r\n\r\nPK", false},
		{"an application part", "Content-Type: application/zip\r\n\r\nPK\x03\x04", false},
		{"upper case raw", "Content-Type: Text/Plain; ;;\r\n\r\nbody", false},
		{"space before the colon", "Content-Type : text/plain\r\n\r\nbody", false},
		{"a field name out of ASCII", "\xad: x\r\n\r\nbody", false},
		{"leading continuation", " x\r\nContent-Type: text/plain\r\n\r\nbody", false},
		{"no end of header", "Content-Type: text/plain\r\n", false},
		{"a header over the buffer", long + "Content-Type: text/plain\r\n\r\nbody", false},
	} {
		if got := plainTextOf([]byte(c.msg)); got != c.fast {
			t.Errorf("%s: plainText = %v, want %v", c.name, got, c.fast)
		}
		if c.fast && !walkWouldSkip([]byte(c.msg)) {
			t.Errorf("%s: the fast path skips a message walk would look into", c.name)
		}
	}
}

// TestScanAfterPeek: a message plainText passes on is still scanned from
// its first byte (the peek consumes nothing).
func TestScanAfterPeek(t *testing.T) {
	sc := newAttachScanner(ForbiddenExtensions, false)
	msg := mimeWith(attachment("Content-Disposition: attachment", "setup.exe", []byte("MZ")))
	for range 2 { // the second time with a pooled reader
		f, err := sc.scan(strings.NewReader(msg))
		if err != nil || f.Forbidden != "setup.exe" {
			t.Fatalf("scan = %+v, %v; want setup.exe forbidden", f, err)
		}
	}
}

// FuzzPlainText: whenever the fast path skips a message, the MIME scan
// finds nothing in it either.
func FuzzPlainText(f *testing.F) {
	f.Add([]byte("Content-Type: text/plain\r\n\r\nbody"))
	f.Add([]byte("Content-Type: text/plain;\r\n name=a.exe\r\n\r\nMZ"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n"))
	f.Add([]byte("\xad:\n\n"))
	sc := newAttachScanner(append([]string{"txt"}, ForbiddenExtensions...), true)
	f.Fuzz(func(t *testing.T, data []byte) {
		if !plainTextOf(data) {
			return
		}
		if found, err := sc.scanMIME(bytes.NewReader(data)); err != nil || found != (attachFinding{}) {
			t.Fatalf("fast path skipped %q: the scan finds %+v, %v", data, found, err)
		}
	})
}

// BenchmarkAttachScan: the scan of a single-part text message with the
// fast path (scan) and without it (scanMIME), and of a multipart one.
func BenchmarkAttachScan(b *testing.B) {
	text := "From: <alice@sender.test>\r\nTo: <bob@example.test>\r\nSubject: hello\r\nMessage-ID: <1@sender.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		strings.Repeat("A line of text in the body of the message.\r\n", 50)
	alt := mimeWith(attachment("Content-Disposition: attachment", "report.pdf", []byte("%PDF-1.4")))
	sc := newAttachScanner(ForbiddenExtensions, false)
	for _, c := range []struct {
		name string
		msg  string
		scan func(io.Reader) (attachFinding, error)
	}{
		{"text", text, sc.scan},
		{"text-without-fast-path", text, sc.scanMIME},
		{"multipart", alt, sc.scan},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.scan(strings.NewReader(c.msg)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
