package fetch

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
	"strings"
	"time"
)

// pop3Client speaks the client side of RFC 1939 (with RFC 2449 UIDL):
// the few commands fetchmail uses. No library for it is served here
// (knadh/go-pop3 is not), and it is short.
type pop3Client struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// errPOP3 is a -ERR answer; its text is the server's.
type errPOP3 struct{ cmd, text string }

func (e *errPOP3) Error() string { return "POP3 " + e.cmd + ": -ERR " + e.text }

func dialPOP3(ctx context.Context, addr string, tc *tls.Config, timeout time.Duration) (*pop3Client, error) {
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if tc != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c := &pop3Client{conn: conn, r: bufio.NewReader(conn), timeout: timeout}
	if _, err := c.status("greeting"); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *pop3Client) Close() error { return c.conn.Close() }

// line reads one CRLF line without its ending.
func (c *pop3Client) line() (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// status reads a +OK/-ERR line.
func (c *pop3Client) status(cmd string) (string, error) {
	s, err := c.line()
	if err != nil {
		return "", fmt.Errorf("POP3 %s: %w", cmd, err)
	}
	if rest, ok := strings.CutPrefix(s, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	if rest, ok := strings.CutPrefix(s, "-ERR"); ok {
		return "", &errPOP3{cmd, strings.TrimSpace(rest)}
	}
	return "", fmt.Errorf("POP3 %s: unexpected answer %q", cmd, s)
}

// cmd sends one command; shown is what an error may name (never PASS's
// argument).
func (c *pop3Client) cmd(shown, line string) (string, error) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		return "", fmt.Errorf("POP3 %s: %w", shown, err)
	}
	return c.status(shown)
}

// multi reads a multi-line answer's data, dot-unstuffed, CRLF kept.
// More than limit bytes fail (limit <= 0: none).
func (c *pop3Client) multi(cmd string, limit int64) ([]byte, error) {
	var b bytes.Buffer
	atStart := true // a long line comes in pieces: only its first may be stuffed
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
		s, err := c.r.ReadSlice('\n')
		full := err == nil
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("POP3 %s: %w", cmd, err)
		}
		if atStart && full && (bytes.Equal(s, []byte(".\r\n")) || bytes.Equal(s, []byte(".\n"))) {
			return b.Bytes(), nil
		}
		if atStart && len(s) > 1 && s[0] == '.' {
			s = s[1:] // RFC 1939 3: byte-stuffed termination octet
		}
		b.Write(s)
		atStart = full
		if limit > 0 && int64(b.Len()) > limit {
			return nil, fmt.Errorf("POP3 %s: answer larger than %d bytes", cmd, limit)
		}
	}
}

func (c *pop3Client) login(user, pass string) error {
	if _, err := c.cmd("USER", "USER "+user); err != nil {
		return err
	}
	_, err := c.cmd("PASS", "PASS "+pass)
	return err
}

// pop3Msg is one message of the maildrop.
type pop3Msg struct {
	num  int
	uid  string
	size int64
}

// list returns every message with its UIDL and size, in number order.
func (c *pop3Client) list() ([]pop3Msg, error) {
	if _, err := c.cmd("UIDL", "UIDL"); err != nil {
		return nil, fmt.Errorf("%w (the server must support UIDL, RFC 2449)", err)
	}
	data, err := c.multi("UIDL", 64<<20)
	if err != nil {
		return nil, err
	}
	var msgs []pop3Msg
	idx := map[int]int{}
	for _, ln := range strings.Split(string(data), "\n") {
		f := strings.Fields(ln)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		idx[n] = len(msgs)
		msgs = append(msgs, pop3Msg{num: n, uid: f[1]})
	}
	if _, err := c.cmd("LIST", "LIST"); err != nil {
		return nil, err
	}
	data, err = c.multi("LIST", 64<<20)
	if err != nil {
		return nil, err
	}
	for _, ln := range strings.Split(string(data), "\n") {
		f := strings.Fields(ln)
		if len(f) < 2 {
			continue
		}
		n, err1 := strconv.Atoi(f[0])
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if i, ok := idx[n]; ok && err1 == nil && err2 == nil {
			msgs[i].size = size
		}
	}
	return msgs, nil
}

func (c *pop3Client) retr(n int, limit int64) ([]byte, error) {
	if _, err := c.cmd("RETR", "RETR "+strconv.Itoa(n)); err != nil {
		return nil, err
	}
	return c.multi("RETR", limit)
}

func (c *pop3Client) dele(n int) error {
	_, err := c.cmd("DELE", "DELE "+strconv.Itoa(n))
	return err
}

// quit ends the session; RFC 1939 6: only now are DELEs carried out.
func (c *pop3Client) quit() error {
	_, err := c.cmd("QUIT", "QUIT")
	return err
}
