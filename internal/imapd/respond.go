package imapd

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// respWriter writes server responses. Errors are sticky and surface at
// Flush; the session ends on a write error.
//
// A response is built piece by piece and ended with CRLF:
//
//	w.Untagged()                       // "* "
//	w.Uint(n); w.Raw(" FETCH (FLAGS ")
//	w.Flags(flags); w.Raw(")")
//	w.CRLF()
type respWriter struct {
	bw *bufio.Writer
	// utf8 allows UTF-8 in quoted strings (IMAP4rev2, RFC 9051 4.3;
	// RFC 6855 UTF8=ACCEPT). Otherwise 8-bit strings go as literals.
	utf8 bool
	err  error
	// z, when COMPRESS=DEFLATE is on, is flushed after bw so that each
	// flushed response reaches the client whole (RFC 4978 4).
	z interface{ Flush() error }
}

// respBufSize is the response buffer: two TLS records of a FETCH body
// per write.
const respBufSize = 32 << 10

// newRespWriter writes responses through bw (a session's pooled writer).
func newRespWriter(bw *bufio.Writer) *respWriter {
	return &respWriter{bw: bw}
}

// Raw writes s as is: protocol text the server made up, never a client
// or message string.
func (w *respWriter) Raw(s string) {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
}

// Byte writes one byte.
func (w *respWriter) Byte(c byte) {
	if w.err == nil {
		w.err = w.bw.WriteByte(c)
	}
}

// Bytes writes p as is.
func (w *respWriter) Bytes(p []byte) {
	if w.err == nil {
		_, w.err = w.bw.Write(p)
	}
}

// Untagged starts an untagged response ("* ").
func (w *respWriter) Untagged() { w.Raw("* ") }

// CRLF ends a response line.
func (w *respWriter) CRLF() { w.Raw("\r\n") }

// Uint writes a number.
func (w *respWriter) Uint(n uint64) {
	if w.err == nil {
		// AvailableBuffer: a local array would escape through bufio's
		// direct write to the connection, one allocation per number.
		_, w.err = w.bw.Write(strconv.AppendUint(w.bw.AvailableBuffer(), n, 10))
	}
}

// String writes s as a quoted string, or as a literal when it cannot be
// quoted (CR, LF, NUL, 8-bit text in IMAP4rev1, or very long).
func (w *respWriter) String(s string) {
	if canQuote(s, w.utf8) {
		w.quoted(s)
		return
	}
	w.Literal([]byte(s))
}

// NString writes s, or NIL when it is empty and nilIfEmpty.
func (w *respWriter) NString(s string, nilIfEmpty bool) {
	if s == "" && nilIfEmpty {
		w.Raw("NIL")
		return
	}
	w.String(s)
}

// AString writes s as an atom when it is one, otherwise as a string (for
// mailbox names, so clients see INBOX rather than "INBOX").
func (w *respWriter) AString(s string) {
	if isAtom(s) {
		w.Raw(s)
		return
	}
	w.String(s)
}

func isAtom(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAStringChar(s[i]) {
			return false
		}
	}
	// NIL as a bare atom would read as nil.
	return !(len(s) == 3 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'i' && (s[2]|0x20) == 'l')
}

func (w *respWriter) quoted(s string) {
	w.Byte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' {
			w.Byte('\\')
		}
		w.Byte(c)
	}
	w.Byte('"')
}

// canQuote reports whether s fits a quoted string (RFC 9051 quoted:
// no CR, LF or NUL; 8-bit only as UTF-8 in IMAP4rev2).
func canQuote(s string, allowUTF8 bool) bool {
	if len(s) > 4096 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\r' || c == '\n' || c == 0:
			return false
		case c >= 0x80 && !allowUTF8:
			return false
		}
	}
	return !allowUTF8 || utf8.ValidString(s)
}

// Literal writes p as a literal: "{n}" CRLF and the bytes.
func (w *respWriter) Literal(p []byte) {
	w.LiteralHeader(int64(len(p)), false)
	w.Bytes(p)
}

// LiteralHeader writes "{n}" CRLF (or "~{n}" for a literal8, RFC 3516);
// the caller writes exactly n bytes after it (for bodies read from the
// store: io.Copy into the writer).
func (w *respWriter) LiteralHeader(n int64, binary bool) {
	if binary {
		w.Byte('~')
	}
	w.Byte('{')
	w.Uint(uint64(n))
	w.Raw("}\r\n")
}

// Write implements io.Writer for copying message bytes after a
// LiteralHeader.
func (w *respWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.bw.Write(p)
	w.err = err
	return n, err
}

// ReadFrom copies message bytes straight into the output buffer:
// io.Copy would otherwise allocate 32 KiB for every section it writes.
func (w *respWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for w.err == nil {
		if w.bw.Available() == 0 {
			if w.err = w.bw.Flush(); w.err != nil {
				break
			}
		}
		buf := w.bw.AvailableBuffer()[:w.bw.Available()]
		m, err := r.Read(buf)
		if m > 0 {
			_, w.err = w.bw.Write(buf[:m]) // fits: no copy beyond the buffer itself
			n += int64(m)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, w.err
}

// Flags writes a parenthesised flag list: "(\Seen $Junk)".
func (w *respWriter) Flags(flags []string) {
	w.Byte('(')
	for i, f := range flags {
		if i > 0 {
			w.Byte(' ')
		}
		// Flags are atoms by construction (the parser accepts nothing
		// else), so they go out as they came in.
		w.Raw(f)
	}
	w.Byte(')')
}

// Status writes a complete status response: tag (or "*") OK/NO/BAD/BYE,
// an optional response code in brackets, and text.
func (w *respWriter) Status(tag, kind, code, text string) {
	w.Raw(tag)
	w.Byte(' ')
	w.Raw(kind)
	if code != "" {
		w.Raw(" [")
		w.Raw(code)
		w.Byte(']')
	}
	if text == "" {
		text = kind // resp-text needs at least one character
	}
	w.Byte(' ')
	w.Raw(text)
	w.CRLF()
}

// Continue writes a continuation request ("+ text").
func (w *respWriter) Continue(text string) {
	w.Raw("+ ")
	w.Raw(text)
	w.CRLF()
}

// Flush sends what is buffered and returns the first error.
func (w *respWriter) Flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err == nil && w.z != nil {
		w.err = w.z.Flush()
	}
	return w.err
}

// Err is the first write error.
func (w *respWriter) Err() error { return w.err }
