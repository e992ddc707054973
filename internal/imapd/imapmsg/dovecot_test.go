package imapmsg

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDovecotOracle compares ENVELOPE, BODYSTRUCTURE, BODY and sections of
// every testdata message with Dovecot's. It runs when IMAPMSG_DOVECOT
// holds a shell command that speaks IMAP in PREAUTH state on stdin/stdout
// over an empty mailbox, for example (as a user other than root):
//
//	env USER=t HOME=/tmp/d/t MAIL=maildir:/tmp/d/t /usr/lib/dovecot/imap -c /tmp/d/dovecot.conf
func TestDovecotOracle(t *testing.T) {
	cmdline := os.Getenv("IMAPMSG_DOVECOT")
	if cmdline == "" {
		t.Skip("IMAPMSG_DOVECOT not set")
	}
	files, _ := filepath.Glob("testdata/*.eml")
	// Where Petrel deliberately differs from Dovecot 2.3.
	skip := map[string]string{
		"lf-only.eml":          "Dovecot reports sizes with bare LFs counted as CRLF",
		"weird-addresses.eml":  "Petrel keeps addresses after a syntax error and reads Content-Type: text as text/plain",
		"rfc822-base64.eml/BS": "Dovecot counts the line break before the boundary into an encoded message/rfc822",
		"plain.eml/BS":         "Dovecot lower-cases a Content-Type equal to its default",
		// RFC 2046 5.1.1: the CRLF before "--abc" belongs to that delimiter,
		// not to the epilogue of the multipart that ended just before it.
		// Dovecot keeps it in the inner multipart, which would break
		// signatures over such a part (RFC 1847 2.1).
		"nested-multipart.eml/BODY[1]":   "CRLF before the outer delimiter",
		"nested-multipart.eml/BODY[1.2]": "CRLF before the outer delimiter",
		"rfc822-base64.eml/BODY[1]":      "Dovecot counts the line break before the boundary into an encoded message/rfc822",
	}
	cmd := exec.Command("sh", "-c", cmdline)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	c := &oracleConn{t: t, w: stdin, r: bufio.NewReader(stdout)}
	c.line() // greeting
	for _, f := range files {
		msg := readTestMessage(t, filepath.Base(f))
		fmt.Fprintf(c.w, "a APPEND INBOX {%d}\r\n", len(msg))
		if l := c.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("APPEND: %q", l)
		}
		_, _ = c.w.Write(append(msg, "\r\n"...))
		c.until("a ")
	}
	c.cmd("a SELECT INBOX")
	sections := []string{"", "HEADER", "TEXT", "1", "1.MIME", "2", "2.MIME", "2.HEADER", "2.TEXT", "2.1",
		"2.2.1", "3.1", "1.1", "1.2", "3.1.MIME"}
	for i, f := range files {
		name := filepath.Base(f)
		if skip[name] != "" {
			continue
		}
		msg := readTestMessage(t, name)
		st := ParseBytes(msg)
		items := "ENVELOPE BODYSTRUCTURE BODY"
		for _, s := range sections {
			items += " BODY.PEEK[" + s + "]"
		}
		resp := c.cmd(fmt.Sprintf("a FETCH %d (%s)", i+1, items))
		got := map[string]string{}
		// The response is "* n FETCH (name value ...)" on one logical line.
		start := bytes.IndexByte(resp, '(')
		v := checkWire(t, "FETCH response", bytes.TrimRight(resp[start:], "\r\n"))
		for j := 0; j+1 < len(v.list); j += 2 {
			key, val := strings.ToUpper(v.list[j].str), v.list[j+1]
			if strings.HasPrefix(key, "BODY[") {
				got[key] = strconv.Quote(val.str) // sections compare byte for byte
			} else {
				got[key] = render(val)
			}
		}
		want := map[string]string{
			"ENVELOPE": render(checkWire(t, "ENVELOPE", st.AppendEnvelope(nil))),
		}
		if skip[name+"/BS"] == "" {
			want["BODYSTRUCTURE"] = render(checkWire(t, "BODYSTRUCTURE", st.AppendBodyStructure(nil, true)))
			want["BODY"] = render(checkWire(t, "BODY", st.AppendBodyStructure(nil, false)))
		}
		for _, s := range sections {
			sec, err := ParseSection(s)
			if err != nil {
				t.Fatal(err)
			}
			sr, _ := st.Extract(bytes.NewReader(msg), sec)
			b, _ := io.ReadAll(sr)
			want["BODY["+strings.ToUpper(s)+"]"] = strconv.Quote(string(b))
		}
		for k, w := range want {
			if skip[name+"/"+k] != "" {
				continue
			}
			if g, ok := got[k]; !ok || g != w {
				t.Errorf("%s %s:\n dovecot %s\n petrel  %s", name, k, g, w)
			}
		}
	}
}

type oracleConn struct {
	t *testing.T
	w io.Writer
	r *bufio.Reader
}

var literalRE = regexp.MustCompile(`\{(\d+)\}\r\n$`)

// line reads one logical response line, literals included.
func (c *oracleConn) line() string {
	var b strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading from dovecot: %v (%q)", err, b.String())
		}
		b.WriteString(l)
		m := literalRE.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.r, lit); err != nil {
			c.t.Fatal(err)
		}
		b.Write(lit)
	}
}

// until reads lines up to the tagged one and returns the untagged ones.
func (c *oracleConn) until(tag string) []byte {
	var out []byte
	for {
		l := c.line()
		if strings.HasPrefix(l, tag) {
			if !strings.HasPrefix(l, tag+"OK") {
				c.t.Fatalf("dovecot: %q", l)
			}
			return out
		}
		if strings.HasPrefix(l, "* ") && strings.Contains(l, "FETCH") {
			out = append(out, l...)
		}
	}
}

func (c *oracleConn) cmd(line string) []byte {
	fmt.Fprintf(c.w, "%s\r\n", line)
	return c.until("a ")
}

// render prints a value canonically: strings quoted with Go syntax and
// their whitespace runs collapsed (Dovecot and Petrel unfold differently),
// NIL and "" alike, type names compared without case.
func render(v sexp) string {
	switch {
	case v.nil_:
		return `""`
	case v.isStr:
		return strconv.Quote(strings.Join(strings.Fields(v.str), " "))
	}
	parts := make([]string, len(v.list))
	for i, e := range v.list {
		parts[i] = render(e)
	}
	return "(" + strings.Join(parts, " ") + ")"
}
