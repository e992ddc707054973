package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// syntaxError is a command the server cannot parse: the client gets a
// tagged BAD with the text (RFC 9051 7.1.5), and the rest of the command
// is skipped.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// literalTooBigError is a literal over the limit the reader was given. For
// APPEND it becomes NO [TOOBIG] (RFC 7889); elsewhere BAD.
type literalTooBigError struct {
	size, limit int64
}

func (e *literalTooBigError) Error() string {
	return fmt.Sprintf("literal of %d octets is over the limit of %d", e.size, e.limit)
}

// errLineTooLong: a command line (outside literals) over maxLine.
var errLineTooLong = &syntaxError{msg: "Command line too long"}

// decoder reads one command from the client, token by token, straight off
// the connection: a literal's continuation request ("+ Ready for
// literal") is sent only when the parser reaches the literal (RFC 9051
// 7.5), and LITERAL+ literals {n+} (RFC 7888) need none.
//
// Errors are sticky: after the first one every method returns a zero
// value, and Err (or End) reports it. Syntax errors are *syntaxError;
// anything else is an I/O error that ends the session.
type decoder struct {
	r *bufio.Reader
	// cont sends the continuation request for a synchronizing literal and
	// flushes the output.
	cont func() error
	// arm is called before reading a literal's bytes, so a long upload
	// gets fresh read deadlines.
	arm func()

	maxLine    int   // bytes of one command line outside literals
	maxLiteral int64 // bytes of one literal inside a command (not APPEND's message)

	lineLeft int  // bytes the current line may still have
	eol      bool // the command's final CRLF was consumed
	// skipLiteral is a non-synchronizing literal the parser refused: its
	// bytes follow and must be read before the line can be skipped.
	skipLiteral int64
	err         error
	// refusal is a NO for a command that parses but cannot be done (a
	// valid astring that is no valid mailbox name): End returns it once
	// the line is read, so the client gets NO rather than BAD.
	refusal error
}

func newDecoder(r *bufio.Reader, maxLine int, maxLiteral int64) *decoder {
	return &decoder{r: r, maxLine: maxLine, maxLiteral: maxLiteral, lineLeft: maxLine}
}

// reset prepares for the next command.
func (d *decoder) reset() {
	d.lineLeft = d.maxLine
	d.eol = false
	d.skipLiteral = 0
	d.err = nil
	d.refusal = nil
}

// Err is the first error, if any.
func (d *decoder) Err() error { return d.err }

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &syntaxError{msg: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) ioFail(err error) {
	if d.err == nil {
		d.err = &readError{err}
	}
}

// readError is a failure to read from the client (EOF, timeout, reset):
// the session ends.
type readError struct{ err error }

func (e *readError) Error() string { return "read: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// peek returns the next byte without consuming it; 0 after an error.
func (d *decoder) peek() byte {
	if d.err != nil {
		return 0
	}
	b, err := d.r.Peek(1)
	if err != nil {
		d.ioFail(err)
		return 0
	}
	return b[0]
}

// next consumes one byte of the command line.
func (d *decoder) next() byte {
	if d.err != nil {
		return 0
	}
	if d.lineLeft <= 0 {
		d.err = errLineTooLong
		return 0
	}
	c, err := d.r.ReadByte()
	if err != nil {
		d.ioFail(err)
		return 0
	}
	d.lineLeft--
	return c
}

// Is reports whether the next byte is c, without consuming it.
func (d *decoder) Is(c byte) bool { return d.err == nil && d.peek() == c }

// Accept consumes c if it is next.
func (d *decoder) Accept(c byte) bool {
	if d.Is(c) {
		d.next()
		return true
	}
	return false
}

// Expect consumes c or fails.
func (d *decoder) Expect(c byte, what string) bool {
	if d.Accept(c) {
		return true
	}
	d.fail("Expected %s", what)
	return false
}

// SP consumes one space.
func (d *decoder) SP() bool { return d.Expect(' ', "a space") }

// AtEOL reports whether the command line ends here.
func (d *decoder) AtEOL() bool {
	c := d.peek()
	return c == '\r' || c == '\n'
}

// End consumes the final CRLF (a bare LF is accepted from sloppy clients)
// and returns the first error of the command.
func (d *decoder) End() error {
	if d.err != nil {
		return d.err
	}
	if d.Accept('\r') {
		if !d.Accept('\n') {
			d.fail("Expected CRLF")
			return d.err
		}
	} else if !d.Accept('\n') {
		d.fail("Unexpected characters at the end of the command")
		return d.err
	}
	d.eol = true
	return d.refusal
}

// refuse records a NO that End returns after the rest of the command.
func (d *decoder) refuse(code, text string) {
	if d.refusal == nil {
		d.refusal = no(code, text)
	}
}

// isAtomChar is RFC 9051 ATOM-CHAR: any CHAR except atom-specials.
func isAtomChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return c > 0x20 && c < 0x7f
}

// isAStringChar is ASTRING-CHAR: ATOM-CHAR or resp-specials ("]").
func isAStringChar(c byte) bool { return isAtomChar(c) || c == ']' }

// isListChar is list-char: ATOM-CHAR, list-wildcards or resp-specials.
func isListChar(c byte) bool { return isAStringChar(c) || c == '%' || c == '*' }

// isTagChar is tag: 1*<any ASTRING-CHAR except "+">.
func isTagChar(c byte) bool { return isAStringChar(c) && c != '+' }

// run consumes the longest run of bytes for which ok holds.
func (d *decoder) run(ok func(byte) bool) string {
	var b strings.Builder
	for d.err == nil {
		c := d.peek()
		if d.err != nil || !ok(c) {
			break
		}
		b.WriteByte(d.next())
	}
	return b.String()
}

// Tag reads a command tag.
func (d *decoder) Tag() string {
	t := d.run(isTagChar)
	if t == "" {
		d.fail("Missing tag")
	}
	return t
}

// Atom reads an atom (case preserved).
func (d *decoder) Atom() string {
	a := d.run(isAtomChar)
	if a == "" {
		d.fail("Expected an atom")
	}
	return a
}

// Flag reads a flag: "\" atom or a keyword atom (RFC 9051 flag). The
// result keeps the client's case; system flags are canonicalised by
// canonicalFlag.
func (d *decoder) Flag() string {
	if d.Accept('\\') {
		a := d.run(isAtomChar)
		if a == "" {
			d.fail("Expected a flag")
			return ""
		}
		return canonicalFlag(`\` + a)
	}
	return d.Atom()
}

// Number reads an RFC 9051 number (32 bits).
func (d *decoder) Number() uint32 {
	n := d.number64()
	if d.err == nil && n > 0xffffffff {
		d.fail("Number out of range")
		return 0
	}
	return uint32(n)
}

// NzNumber reads a non-zero number.
func (d *decoder) NzNumber() uint32 {
	n := d.Number()
	if d.err == nil && n == 0 {
		d.fail("Expected a non-zero number")
	}
	return n
}

// Number64 reads a mod-sequence value (RFC 7162: up to 2^63-1).
func (d *decoder) Number64() uint64 {
	n := d.number64()
	if d.err == nil && n > 1<<63-1 {
		d.fail("Number out of range")
		return 0
	}
	return n
}

func (d *decoder) number64() uint64 {
	s := d.run(func(c byte) bool { return c >= '0' && c <= '9' })
	if d.err != nil {
		return 0
	}
	if s == "" {
		d.fail("Expected a number")
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		d.fail("Number out of range")
		return 0
	}
	return n
}

// Quoted reads a quoted string (the opening quote is next).
func (d *decoder) quoted() string {
	d.next() // "
	var b strings.Builder
	for d.err == nil {
		if c := d.peek(); c == '\r' || c == '\n' || c == 0 {
			// The line end stays unread so skipRest finds it.
			d.fail("Unterminated quoted string")
			return ""
		}
		c := d.next()
		switch {
		case d.err != nil:
			return ""
		case c == '"':
			return b.String()
		case c == '\\':
			if e := d.peek(); e != '"' && e != '\\' {
				d.fail("Bad escape in quoted string")
				return ""
			}
			b.WriteByte(d.next())
		default:
			b.WriteByte(c)
		}
	}
	return ""
}

// literalHeader reads "{n}" or "{n+}" (and "~{n}" literal8 when binary)
// through the CRLF after it; it returns the size and whether the client
// waits for a continuation request.
func (d *decoder) literalHeader() (n int64, sync bool) {
	d.next() // {
	n = int64(d.number64())
	nonSync := d.Accept('+')
	d.Expect('}', `"}"`)
	if d.err == nil {
		if d.Accept('\r') {
			d.Expect('\n', "CRLF after a literal header")
		} else {
			d.Expect('\n', "CRLF after a literal header")
		}
	}
	if d.err != nil {
		return 0, false
	}
	if n < 0 {
		d.fail("Literal size out of range")
		return 0, false
	}
	return n, !nonSync
}

// literalBody reads n bytes after a literal header, asking for them when
// sync. A literal over limit is refused before any continuation request;
// a non-synchronizing one is then skipped by skipRest.
func (d *decoder) literalBody(n int64, sync bool, limit int64) []byte {
	if d.err != nil {
		return nil
	}
	if n > limit {
		if sync {
			d.eol = true // the client waits and sends nothing more
		} else {
			d.skipLiteral = n
		}
		d.err = &literalTooBigError{size: n, limit: limit}
		return nil
	}
	if sync && d.cont != nil {
		if err := d.cont(); err != nil {
			d.ioFail(err)
			return nil
		}
	}
	buf := make([]byte, 0, min(n, 1<<20))
	for int64(len(buf)) < n {
		if d.arm != nil {
			d.arm()
		}
		chunk := min(n-int64(len(buf)), 64<<10)
		start := len(buf)
		buf = append(buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(d.r, buf[start:]); err != nil {
			d.ioFail(err)
			return nil
		}
	}
	// The line after a literal is a new line for the length limit.
	d.lineLeft = d.maxLine
	return buf
}

// Literal reads a literal of at most limit bytes (APPEND's message).
func (d *decoder) Literal(limit int64) []byte {
	if !d.Is('{') {
		d.fail("Expected a literal")
		return nil
	}
	n, sync := d.literalHeader()
	return d.literalBody(n, sync, limit)
}

// String reads a quoted string or a literal (RFC 9051 string).
func (d *decoder) String() string {
	switch d.peek() {
	case '"':
		return d.quoted()
	case '{':
		n, sync := d.literalHeader()
		return string(d.literalBody(n, sync, d.maxLiteral))
	}
	d.fail("Expected a string")
	return ""
}

// AString reads an astring: 1*ASTRING-CHAR or a string.
func (d *decoder) AString() string {
	switch d.peek() {
	case '"', '{':
		return d.String()
	}
	s := d.run(isAStringChar)
	if s == "" {
		d.fail("Expected a string or atom")
	}
	return s
}

// NString reads a string or NIL; ok is false for NIL.
func (d *decoder) NString() (s string, ok bool) {
	switch d.peek() {
	case '"', '{':
		return d.String(), true
	}
	a := d.run(isAtomChar)
	if d.err == nil && !strings.EqualFold(a, "NIL") {
		d.fail("Expected a string or NIL")
	}
	return "", false
}

// ListMailbox reads a list-mailbox (a LIST pattern): list-chars or a
// string.
func (d *decoder) ListMailbox() string {
	switch d.peek() {
	case '"', '{':
		return d.String()
	}
	s := d.run(isListChar)
	if s == "" {
		d.fail("Expected a mailbox pattern")
	}
	return s
}

// List reads "(" [elem *(SP elem)] ")", calling elem for each element;
// elem reads one element and returns false to stop on an error.
func (d *decoder) List(elem func() bool) bool {
	if !d.Expect('(', `"("`) {
		return false
	}
	if d.Accept(')') {
		return true
	}
	for {
		if !elem() || d.err != nil {
			if d.err == nil {
				d.fail("Bad list element")
			}
			return false
		}
		if d.Accept(')') {
			return true
		}
		if !d.SP() {
			return false
		}
	}
}

// SeqSetOrSaved reads a sequence-set or RFC 5182's "$" (savedSet),
// which stands alone (seq-last-command).
func (d *decoder) SeqSetOrSaved() numSet {
	if d.err == nil && d.peek() == '$' {
		d.next()
		return savedSet()
	}
	return d.SeqSet()
}

// SeqSet reads a sequence-set: numbers, "*", ranges a:b, comma-separated
// (RFC 9051 sequence-set). "$" is read by SeqSetOrSaved only.
func (d *decoder) SeqSet() numSet {
	var set numSet
	for d.err == nil {
		lo := d.seqNumber()
		hi := lo
		if d.Accept(':') {
			hi = d.seqNumber()
		}
		if d.err != nil {
			return nil
		}
		set = append(set, numRange{lo, hi}.normal())
		if !d.Accept(',') {
			break
		}
	}
	if d.err != nil {
		return nil
	}
	return set
}

func (d *decoder) seqNumber() uint32 {
	switch d.peek() {
	case '*':
		d.next()
		return 0
	case '$':
		d.fail("$ is not allowed here")
		return 0
	}
	return d.NzNumber()
}

// skipRest discards what is left of a refused command so that the next
// one can be read: the rest of the line, the bytes of any
// non-synchronizing literal in it and the lines after those. A
// synchronizing literal at the end of a line is not sent by the client
// (it waits for a continuation that never comes), so the command ends
// there. It returns false when the client sent too much garbage to go
// on (the session should then close), and at once, without reading, for
// a line over the limit: its end may never come (issue 17).
func (d *decoder) skipRest(budget int64) bool {
	if d.eol {
		return true
	}
	if d.err == errLineTooLong {
		return false
	}
	if d.err != nil {
		if _, ok := d.err.(*syntaxError); !ok {
			if _, ok := d.err.(*literalTooBigError); !ok {
				return false // I/O error
			}
		}
	}
	d.err = nil
	for {
		if d.skipLiteral > 0 {
			if d.skipLiteral > budget {
				return false
			}
			budget -= d.skipLiteral
			if d.arm != nil {
				d.arm()
			}
			if _, err := io.CopyN(io.Discard, d.r, d.skipLiteral); err != nil {
				return false
			}
			d.skipLiteral = 0
		}
		var tail []byte // the last bytes of the line, for a literal header
		for {
			c, err := d.r.ReadByte()
			if err != nil {
				return false
			}
			if budget--; budget < 0 {
				return false
			}
			if c == '\n' {
				break
			}
			tail = append(tail, c)
			if len(tail) > 32 {
				tail = tail[len(tail)-32:]
			}
		}
		tail = bytes.TrimSuffix(tail, []byte("\r"))
		n, sync, ok := trailingLiteral(tail)
		if !ok || sync {
			d.eol = true
			return true
		}
		d.skipLiteral = n
		if n == 0 {
			continue
		}
	}
}

// trailingLiteral reports whether line ends with a literal header.
func trailingLiteral(line []byte) (n int64, sync, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	num := line[i+1 : len(line)-1]
	sync = true
	if len(num) > 0 && num[len(num)-1] == '+' {
		sync = false
		num = num[:len(num)-1]
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || v < 0 {
		return 0, false, false
	}
	return v, sync, true
}

// isSyntaxError reports whether err is a client mistake (BAD) rather than
// an I/O failure.
func isSyntaxError(err error) bool {
	var se *syntaxError
	var lt *literalTooBigError
	return errors.As(err, &se) || errors.As(err, &lt)
}
