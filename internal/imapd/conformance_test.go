package imapd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConformance runs the scripts in testdata/conformance, written in
// the spirit of Dovecot's imaptest scripts: commands, and the untagged
// and tagged responses the RFCs require for them. Each script gets a
// fresh server (port 143, plaintext logins allowed) with a fresh store,
// where alice@example.test and bob@example.test exist.
//
// Script lines (an optional connection number first, "2 C: ..."; 1 when
// omitted; a connection is opened and greeted on first use):
//
//	# comment
//	!deliver USER MAILBOX N   deliver N test messages (local delivery)
//	C: tag command...         send a command, read until its tagged response
//	W: text                   send text and CRLF, read nothing (\r\n in
//	                          text is sent as CRLF, for literals)
//	T: tag                    read until tag's tagged response (after W:)
//	R: pattern                read responses until one matches (IDLE)
//	S: pattern                a response of the last command matches; a
//	                          pattern starting with the tag matches the
//	                          tagged response (otherwise it must be OK)
//	S! pattern                no untagged response of the last command matches
//	S= n                      the last command had exactly n untagged responses
//
// Patterns match whole lines: %d is a number, %s any text, $name a number
// captured on first use and the same number afterwards (also in C: and
// W: lines); names are lower case, so keywords like $Label1 are text.
func TestConformance(t *testing.T) {
	files, err := filepath.Glob("testdata/conformance/*.imap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".imap"), func(t *testing.T) {
			runScript(t, f)
		})
	}
}

type scriptConn struct {
	c        *client
	untagged []string // responses of the last command
	tagged   string   // "tag rest"
	tag      string
	checked  bool // the tagged response was matched by an S: line
}

type scriptRun struct {
	t     *testing.T
	ts    *testServer
	conns map[int]*scriptConn
	vars  map[string]string
	file  string
	line  int
}

var scriptLineRE = regexp.MustCompile(`^(?:(\d+) )?([CWTRS]): ?(.*)$|^(?:(\d+) )?(S[!=]) ?(.*)$`)

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r := &scriptRun{t: t, ts: startServer(t, nil), conns: map[int]*scriptConn{}, vars: map[string]string{}, file: file}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		r.line++
		line := strings.TrimRight(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			r.directive(strings.Fields(line[1:]))
			continue
		}
		m := scriptLineRE.FindStringSubmatch(line)
		if m == nil {
			r.fail("cannot parse %q", line)
		}
		num, op, arg := m[1], m[2], m[3]
		if op == "" {
			num, op, arg = m[4], m[5], m[6]
		}
		n := 1
		if num != "" {
			n, _ = strconv.Atoi(num)
		}
		r.step(r.conn(n), op, arg)
	}
	for n, c := range r.conns {
		r.finishCommand(n, c)
	}
}

func (r *scriptRun) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s:%d: %s", filepath.Base(r.file), r.line, fmt.Sprintf(format, args...))
}

func (r *scriptRun) directive(f []string) {
	switch {
	case len(f) == 4 && f[0] == "deliver":
		n, err := strconv.Atoi(f[3])
		if err != nil {
			r.fail("deliver count %q", f[3])
		}
		var bodies []string
		for i := 0; i < n; i++ {
			bodies = append(bodies, testMessage(fmt.Sprintf("msg%d", i+1)))
		}
		deliver(r.t, r.ts.st, f[1], f[2], bodies...)
	default:
		r.fail("unknown directive %q", f)
	}
}

func (r *scriptRun) conn(n int) *scriptConn {
	if c, ok := r.conns[n]; ok {
		return c
	}
	c := &scriptConn{c: r.ts.dial(), checked: true}
	if g := c.c.read(); !strings.HasPrefix(g, "* OK ") {
		r.fail("connection %d greeting %q", n, g)
	}
	r.conns[n] = c
	return c
}

// finishCommand checks that an unchecked tagged response was OK.
func (r *scriptRun) finishCommand(n int, c *scriptConn) {
	if !c.checked && !strings.HasPrefix(c.tagged, c.tag+" OK") {
		r.fail("connection %d: %q (untagged %q)", n, c.tagged, c.untagged)
	}
	c.checked = true
}

func (r *scriptRun) subst(s string) string {
	return regexp.MustCompile(`\$[a-z][a-z0-9_]*`).ReplaceAllStringFunc(s, func(v string) string {
		val, ok := r.vars[v[1:]]
		if !ok {
			r.fail("variable %s is not set", v)
		}
		return val
	})
}

// match matches line against pattern, binding new variables on success.
func (r *scriptRun) match(pattern, line string) bool {
	var names []string
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "%d"):
			re.WriteString(`\d+`)
			i += 2
		case strings.HasPrefix(pattern[i:], "%s"):
			re.WriteString(`.*`)
			i += 2
		case pattern[i] == '$' && i+1 < len(pattern) && pattern[i+1] >= 'a' && pattern[i+1] <= 'z':
			j := i + 1
			for j < len(pattern) && (pattern[j] >= 'a' && pattern[j] <= 'z' || pattern[j] >= '0' && pattern[j] <= '9' || pattern[j] == '_') {
				j++
			}
			name := pattern[i+1 : j]
			if v, ok := r.vars[name]; ok {
				re.WriteString(regexp.QuoteMeta(v))
			} else {
				re.WriteString(`(\d+)`)
				names = append(names, name)
			}
			i = j
		default:
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			i++
		}
	}
	re.WriteString("$")
	m := regexp.MustCompile(re.String()).FindStringSubmatch(line)
	if m == nil {
		return false
	}
	for i, name := range names {
		r.vars[name] = m[i+1]
	}
	return true
}

func (r *scriptRun) step(c *scriptConn, op, arg string) {
	r.t.Helper()
	n := 0
	for k, v := range r.conns {
		if v == c {
			n = k
		}
	}
	switch op {
	case "C":
		r.finishCommand(n, c)
		text := r.subst(arg)
		tag, _, _ := strings.Cut(text, " ")
		c.c.send(text + "\r\n")
		r.collect(c, tag)
	case "W":
		r.finishCommand(n, c)
		c.c.send(strings.ReplaceAll(r.subst(arg), `\r\n`, "\r\n") + "\r\n")
	case "T":
		r.collect(c, arg)
	case "R":
		_ = c.c.conn.SetReadDeadline(time.Now().Add(updateWait))
		for {
			resp := c.c.read()
			if r.match(arg, resp) {
				break
			}
		}
		_ = c.c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	case "S":
		if c.tag != "" && strings.HasPrefix(arg, c.tag+" ") {
			if !r.match(arg, c.tagged) {
				r.fail("tagged %q does not match %q (untagged %q)", c.tagged, arg, c.untagged)
			}
			c.checked = true
			return
		}
		for _, u := range c.untagged {
			if r.match(arg, u) {
				return
			}
		}
		r.fail("no response matches %q in %q (tagged %q)", arg, c.untagged, c.tagged)
	case "S!":
		for _, u := range c.untagged {
			if r.match(arg, u) {
				r.fail("unexpected %q", u)
			}
		}
	case "S=":
		want, err := strconv.Atoi(arg)
		if err != nil || len(c.untagged) != want {
			r.fail("%d untagged responses, want %s: %q", len(c.untagged), arg, c.untagged)
		}
	}
}

func (r *scriptRun) collect(c *scriptConn, tag string) {
	c.tag = tag
	u, tagged := c.c.collect(tag)
	c.untagged, c.tagged, c.checked = u, tag+" "+tagged, false
}
