package managesieve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The command reader: RFC 5804 4's grammar for what a client sends. A
// command is an atom (its name) and arguments separated by SP: quoted
// strings, literals and numbers. A literal ("{n+}" CRLF, then n octets)
// ends its line; the command goes on after the octets, on what reads as
// the next line. RFC 5804 4 only has the non-synchronising form from
// clients; "{n}" is taken the same way, as Dovecot does, since ManageSieve
// has no continuation reply a client could wait for.

type argKind int

const (
	argString argKind = iota // quoted string or literal
	argNumber
	argAtom // unquoted word: not in the grammar after the name, taken for leniency where harmless
)

type arg struct {
	kind    argKind
	s       []byte
	n       uint64
	literal bool
}

type command struct {
	name string // as sent; callers compare case-insensitively
	args []arg
}

var (
	errLineTooLong = errors.New("line too long")
	errDraining    = errors.New("server shutting down")
	// errLiteralHuge: a literal beyond what the reader will even skip;
	// the session must end, as its octets cannot be told from commands.
	errLiteralHuge = errors.New("literal too large")
)

// syntaxError is a command the reader could parse no further; the rest of
// it has been read (and skipped), so the session can answer NO and go on.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// tooLargeError: a literal over its limit was read and dropped; script is
// true for a PUTSCRIPT or CHECKSCRIPT script (RFC 5804 QUOTA/MAXSIZE).
type tooLargeError struct {
	script bool
	limit  int64
}

func (e *tooLargeError) Error() string { return fmt.Sprintf("literal over %d octets", e.limit) }

// maxArgs bounds the arguments of one command: RENAMESCRIPT and
// HAVESPACE have two, PUTSCRIPT two; a few more are allowed so that the
// session, not the reader, says "too many arguments".
const maxArgs = 8

// maxQuoted is RFC 5804 4's bound on a quoted string: "limited to 1024
// octets between the <">s".
const maxQuoted = 1024

// cmdReader reads commands from a client.
type cmdReader struct {
	r *bufio.Reader // its size bounds a line (MaxLineLength)
	// maxString bounds a literal that is not a script (a name, a SASL
	// response); maxScript the script of PUTSCRIPT and CHECKSCRIPT.
	maxString, maxScript int64
	// maxSkip is the largest literal that is read and dropped when over
	// its limit, so the session can answer NO and go on.
	maxSkip int64
	// arm is called before each blocking read (it sets the deadline);
	// first is the read that starts a command; false means the server is
	// shutting down.
	arm func(first bool) bool
	// inCmd: the command's first line has been read.
	inCmd bool
}

// readLine reads one line without its CRLF (a bare LF is accepted).
func (cr *cmdReader) readLine() ([]byte, error) {
	if !cr.arm(!cr.inCmd) {
		return nil, errDraining
	}
	b, err := cr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errLineTooLong
	}
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b, nil
}

// readFull reads n octets of a literal, arming the deadline for every
// chunk, so a slow client sending a big script is not cut off while a
// stalled one is; with dst nil the octets are dropped.
func (cr *cmdReader) readFull(dst []byte, n int64) error {
	const chunk = 64 << 10
	var buf []byte
	if dst == nil {
		buf = make([]byte, min(n, chunk))
	}
	for off := int64(0); off < n; {
		if !cr.arm(false) {
			return errDraining
		}
		m := min(n-off, chunk)
		var p []byte
		if dst != nil {
			p = dst[off : off+m]
		} else {
			p = buf[:m]
		}
		if _, err := io.ReadFull(cr.r, p); err != nil {
			return err
		}
		off += m
	}
	return nil
}

// readCommand reads one command. A nil error comes with a command whose
// name may be "" (an empty line). *syntaxError and *tooLargeError leave
// the connection at the next command; any other error ends the session.
func (cr *cmdReader) readCommand() (*command, error) {
	cr.inCmd = false
	line, err := cr.readLine()
	if err != nil {
		return nil, err
	}
	cr.inCmd = true
	i := 0
	for i < len(line) && isAtomChar(line[i]) {
		i++
	}
	cmd := &command{name: string(line[:i])}
	if i < len(line) && line[i] != ' ' {
		return nil, cr.fail(line, "bad command name")
	}
	cmd.args, err = cr.readArgs(cmd.name, line[i:], maxArgs)
	if err != nil {
		return nil, err
	}
	return cmd, nil
}

// readResponse reads a client's answer to a SASL challenge: one string
// (RFC 5804 2.1), quoted or a literal, alone on its line.
func (cr *cmdReader) readResponse() ([]byte, error) {
	cr.inCmd = true // inside AUTHENTICATE
	line, err := cr.readLine()
	if err != nil {
		return nil, err
	}
	args, err := cr.readArgs("", append([]byte{' '}, line...), 1)
	if err != nil {
		return nil, err
	}
	if len(args) != 1 || args[0].kind != argString {
		return nil, &syntaxError{"expected a string"}
	}
	return args[0].s, nil
}

// readArgs parses " arg arg ..." from rest, reading literals and the
// lines after them.
func (cr *cmdReader) readArgs(name string, rest []byte, max int) ([]arg, error) {
	var args []arg
	for {
		if len(rest) == 0 {
			return args, nil
		}
		if rest[0] != ' ' {
			return nil, cr.fail(rest, "expected a space between arguments")
		}
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:] // lenient: several spaces, or a trailing one
		}
		if len(rest) == 0 {
			return args, nil
		}
		if len(args) == max {
			return nil, cr.fail(rest, "too many arguments")
		}
		switch c := rest[0]; {
		case c == '"':
			s, n, ok := parseQuoted(rest)
			if !ok {
				return nil, cr.fail(rest, "bad quoted string")
			}
			args = append(args, arg{kind: argString, s: s})
			rest = rest[n:]
		case c == '{':
			n, ok := parseLiteral(rest)
			if !ok {
				return nil, cr.fail(rest, "bad literal")
			}
			limit, script := cr.maxString, isScriptArg(name, len(args))
			if script {
				limit = cr.maxScript
			}
			if n > limit {
				if n > cr.maxSkip {
					return nil, errLiteralHuge
				}
				if err := cr.readFull(nil, n); err != nil {
					return nil, err
				}
				if err := cr.skipRest(); err != nil {
					return nil, err
				}
				return nil, &tooLargeError{script: script, limit: limit}
			}
			data := make([]byte, n)
			if err := cr.readFull(data, n); err != nil {
				return nil, err
			}
			args = append(args, arg{kind: argString, s: data, literal: true})
			next, err := cr.readLine()
			if err != nil {
				return nil, err
			}
			rest = next
		case c >= '0' && c <= '9':
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			// RFC 5804 4: number = 1*DIGIT, 0 <= number < 4,294,967,296.
			v, err := strconv.ParseUint(string(rest[:j]), 10, 32)
			if err != nil || (j < len(rest) && rest[j] != ' ') {
				return nil, cr.fail(rest, "bad number")
			}
			args = append(args, arg{kind: argNumber, n: v})
			rest = rest[j:]
		case isAtomChar(c):
			j := 0
			for j < len(rest) && isAtomChar(rest[j]) {
				j++
			}
			args = append(args, arg{kind: argAtom, s: append([]byte(nil), rest[:j]...)}) // rest is bufio's buffer
			rest = rest[j:]
		default:
			return nil, cr.fail(rest, "unexpected character")
		}
	}
}

// isScriptArg: the argument that holds a script (RFC 5804 2.6, 2.12).
func isScriptArg(name string, i int) bool {
	switch {
	case equalFold(name, "PUTSCRIPT"):
		return i == 1
	case equalFold(name, "CHECKSCRIPT"):
		return i == 0
	}
	return false
}

// fail skips what is left of a bad command and returns a syntax error. A
// literal announced at the end of the bad line is coming all the same
// (non-synchronising), so it is read and dropped, with the lines after
// it; one too large even for that ends the session.
func (cr *cmdReader) fail(line []byte, msg string) error {
	if err := cr.skipLiterals(line); err != nil {
		return err
	}
	return &syntaxError{msg}
}

func (cr *cmdReader) skipLiterals(line []byte) error {
	for range maxArgs {
		n, ok := trailingLiteral(line)
		if !ok {
			return nil
		}
		if n > cr.maxSkip {
			return errLiteralHuge
		}
		if err := cr.readFull(nil, n); err != nil {
			return err
		}
		next, err := cr.readLine()
		if err != nil {
			return err
		}
		line = next
	}
	return &syntaxError{"too many literals"}
}

// skipRest drops the rest of a command after a literal it has dropped.
func (cr *cmdReader) skipRest() error {
	line, err := cr.readLine()
	if err != nil {
		return err
	}
	return cr.skipLiterals(line)
}

// trailingLiteral finds a "{n+}" or "{n}" that ends line.
func trailingLiteral(line []byte) (int64, bool) {
	if len(line) == 0 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := len(line) - 1
	for i >= 0 && line[i] != '{' {
		i--
	}
	if i < 0 {
		return 0, false
	}
	return parseLiteral(line[i:])
}

// parseLiteral parses "{n+}" or "{n}" that must end b.
func parseLiteral(b []byte) (int64, bool) {
	if len(b) < 3 || b[0] != '{' || b[len(b)-1] != '}' {
		return 0, false
	}
	inner := b[1 : len(b)-1]
	if len(inner) > 0 && inner[len(inner)-1] == '+' {
		inner = inner[:len(inner)-1]
	}
	if len(inner) == 0 || len(inner) > 10 {
		return 0, false
	}
	for _, c := range inner {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(inner), 10, 64)
	if err != nil || n > 1<<32-1 {
		return 0, false
	}
	return n, true
}

// parseQuoted parses a quoted string at the start of b: RFC 5804 4
// quoted = DQUOTE *1024QUOTED-CHAR DQUOTE, where only DQUOTE and "\" are
// escaped and CR, LF and NUL cannot appear. It returns the value and the
// octets consumed.
func parseQuoted(b []byte) ([]byte, int, bool) {
	out := make([]byte, 0, min(len(b), maxQuoted))
	for i := 1; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			if i+1 < len(b) && b[i+1] != ' ' {
				return nil, 0, false
			}
			return out, i + 1, true
		case '\\':
			i++
			if i == len(b) || (b[i] != '"' && b[i] != '\\') {
				return nil, 0, false
			}
			out = append(out, b[i])
		case 0, '\r', '\n':
			return nil, 0, false
		default:
			out = append(out, c)
		}
		if len(out) > maxQuoted {
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// isAtomChar: what command names and lenient atoms are made of.
func isAtomChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@' || c == '/'
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
