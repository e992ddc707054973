package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one IMAP connection: raw tagged commands over implicit TLS, no
// library, so that the load client costs little CPU next to the servers.
type conn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	tag int
	// literalPlus: the server announced LITERAL+ (RFC 7888), so APPEND
	// sends its literal without waiting for "+".
	literalPlus bool
	line        []byte // reused by readLine
	rawLen      int    // bytes of the last line read, CRLF included
}

// dialer holds what every connection needs.
type dialer struct {
	addr    string
	tls     *tls.Config
	timeout time.Duration
}

// dial connects, does the TLS handshake and reads the greeting.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.addr, err)
	}
	tc := tls.Client(raw, d.tls)
	_ = raw.SetDeadline(time.Now().Add(d.timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	c := &conn{c: tc, r: bufio.NewReaderSize(tc, 32<<10), w: bufio.NewWriterSize(tc, 16<<10)}
	greet, err := c.readLine()
	if err != nil {
		c.c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(greet, []byte("* OK")) {
		c.c.Close()
		return nil, fmt.Errorf("greeting: %q", greet)
	}
	c.literalPlus = bytes.Contains(greet, []byte("LITERAL+"))
	return c, nil
}

// setDeadline bounds the next exchange.
func (c *conn) setDeadline(d time.Duration) { _ = c.c.SetDeadline(time.Now().Add(d)) }

func (c *conn) close() error { return c.c.Close() }

// readLine returns the next line without CRLF. The slice is valid until
// the next read.
func (c *conn) readLine() ([]byte, error) {
	c.line = c.line[:0]
	for {
		frag, err := c.r.ReadSlice('\n')
		c.line = append(c.line, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(c.line) > 1<<20 {
			return nil, errors.New("response line over 1 MiB")
		}
	}
	c.rawLen = len(c.line)
	return bytes.TrimRight(c.line, "\r\n"), nil
}

// literalSize reports the size of the literal announced at the end of an
// IMAP response line ("... {123}" or "{123+}" for LITERAL+ / "~{123}" for
// literal8), or ok=false when the line ends with none.
func literalSize(line []byte) (n int64, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	digits := line[i+1 : len(line)-1]
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	for _, b := range digits {
		if b < '0' || b > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// status is the result of a tagged response line: "TAG OK ...".
type status struct {
	cond string // OK, NO or BAD
	text string
}

// parseTagged splits a response line; tagged=false for untagged ("*")
// and continuation ("+") lines or for another tag.
func parseTagged(line []byte, tag string) (st status, tagged bool) {
	if len(line) <= len(tag) || !bytes.HasPrefix(line, []byte(tag)) || line[len(tag)] != ' ' {
		return status{}, false
	}
	rest := line[len(tag)+1:]
	cond, text, _ := bytes.Cut(rest, []byte(" "))
	return status{cond: string(bytes.ToUpper(cond)), text: string(text)}, true
}

// untagged is what a command's caller may want to see of one untagged
// response: its first line (literals replaced by their size) and how many
// literal bytes it carried.
type untagged struct {
	line     []byte // first line; valid only during the callback
	litBytes int64
}

// nextTag returns a fresh tag.
func (c *conn) nextTag() string {
	c.tag++
	return "a" + strconv.Itoa(c.tag)
}

// readUntil reads responses until the tagged one, skipping literals, and
// calls fn (if any) for every untagged response. It returns the bytes
// read (lines and literals).
func (c *conn) readUntil(tag string, fn func(untagged)) (status, int64, error) {
	var total int64
	for {
		line, err := c.readLine()
		if err != nil {
			return status{}, total, err
		}
		total += int64(c.rawLen)
		if st, ok := parseTagged(line, tag); ok {
			return st, total, nil
		}
		if len(line) > 0 && line[0] == '+' {
			return status{}, total, fmt.Errorf("unexpected continuation %q", line)
		}
		var first []byte
		if fn != nil {
			first = append(first, line...)
		}
		var lit int64
		for {
			n, ok := literalSize(line)
			if !ok {
				break
			}
			if _, err := io.CopyN(io.Discard, c.r, n); err != nil {
				return status{}, total, fmt.Errorf("reading literal: %w", err)
			}
			lit += n
			total += n
			if line, err = c.readLine(); err != nil {
				return status{}, total, err
			}
			total += int64(c.rawLen)
		}
		if fn != nil {
			fn(untagged{line: first, litBytes: lit})
		}
	}
}

// cmd sends one command and reads to its tagged response; anything but
// OK is an error.
func (c *conn) cmd(command string, fn func(untagged)) (int64, error) {
	tag := c.nextTag()
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(command)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	st, n, err := c.readUntil(tag, fn)
	if err != nil {
		return n, fmt.Errorf("%s: %w", verb(command), err)
	}
	if st.cond != "OK" {
		return n, fmt.Errorf("%s: %s %s", verb(command), st.cond, st.text)
	}
	return n, nil
}

func verb(command string) string {
	v, _, _ := bytesCutString(command, ' ')
	return v
}

func bytesCutString(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// quote makes an IMAP quoted string (RFC 9051 4.3); callers pass plain
// ASCII user names and passwords.
func quote(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(append(b, '"'))
}

func (c *conn) login(user, pass string) error {
	_, err := c.cmd("LOGIN "+quote(user)+" "+quote(pass), nil)
	return err
}

// logout sends LOGOUT and waits for its tagged OK (the server's BYE comes
// first).
func (c *conn) logout() error {
	_, err := c.cmd("LOGOUT", nil)
	return err
}

// startAppend writes an APPEND of msg to mailbox and returns its tag.
// With LITERAL+ the whole command goes out at once (so several may be in
// flight); otherwise it waits for the server's "+" before the literal.
func (c *conn) startAppend(mailbox string, msg []byte) (string, error) {
	tag := c.nextTag()
	fmt.Fprintf(c.w, "%s APPEND %s {%d", tag, quote(mailbox), len(msg))
	if c.literalPlus {
		c.w.WriteString("+}\r\n")
	} else {
		c.w.WriteString("}\r\n")
		if err := c.w.Flush(); err != nil {
			return "", err
		}
		line, err := c.readLine()
		if err != nil {
			return "", err
		}
		if len(line) == 0 || line[0] != '+' {
			return "", fmt.Errorf("APPEND: no continuation: %q", line)
		}
	}
	c.w.Write(msg)
	c.w.WriteString("\r\n")
	return tag, nil
}

// appendMsg APPENDs one message and waits for its tagged OK.
func (c *conn) appendMsg(mailbox string, msg []byte) error {
	tag, err := c.startAppend(mailbox, msg)
	if err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	st, _, err := c.readUntil(tag, nil)
	if err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	if st.cond != "OK" {
		return fmt.Errorf("APPEND: %s %s", st.cond, st.text)
	}
	return nil
}
