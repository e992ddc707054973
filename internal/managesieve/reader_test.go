package managesieve

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func newTestReader(in string, maxLine int) *cmdReader {
	return &cmdReader{
		r:         bufio.NewReaderSize(strings.NewReader(in), maxLine),
		maxString: 64,
		maxScript: 128,
		maxSkip:   512,
		arm:       func(bool) bool { return true },
	}
}

func TestReadCommand(t *testing.T) {
	type want struct {
		name string
		args []string // strings as s, numbers as #n, atoms as @a
		err  string   // "" ok, else a substring of the error or "syntax" / "toolarge:script" / "toolarge"
	}
	tests := []struct {
		in    string
		wants []want
	}{
		{"CAPABILITY\r\n", []want{{name: "CAPABILITY"}}},
		{"noop\n", []want{{name: "noop"}}},
		{"\r\n", []want{{name: ""}}},
		{`PUTSCRIPT "a b" {5+}` + "\r\nkeep;\r\nLOGOUT\r\n", []want{{name: "PUTSCRIPT", args: []string{"a b", "keep;"}}, {name: "LOGOUT"}}},
		{`PUTSCRIPT {1+}` + "\r\nx {2}\r\nab\r\n", []want{{name: "PUTSCRIPT", args: []string{"x", "ab"}}}},
		{`HAVESPACE "x" 4294967295` + "\r\n", []want{{name: "HAVESPACE", args: []string{"x", "#4294967295"}}}},
		{`HAVESPACE "x" 4294967296` + "\r\n", []want{{err: "bad number"}}},
		{`RENAMESCRIPT "a\"b\\c" "d"` + "\r\n", []want{{name: "RENAMESCRIPT", args: []string{`a"b\c`, "d"}}}},
		{`GETSCRIPT "a\nb"` + "\r\n", []want{{err: "bad quoted string"}}},
		{`GETSCRIPT "ab` + "\r\n", []want{{err: "bad quoted string"}}},
		{`GETSCRIPT "a"b` + "\r\n", []want{{err: "bad quoted string"}}},
		{`GETSCRIPT  "a"  ` + "\r\n", []want{{name: "GETSCRIPT", args: []string{"a"}}}},
		{`AUTHENTICATE PLAIN` + "\r\n", []want{{name: "AUTHENTICATE", args: []string{"@PLAIN"}}}},
		{"PUT{SCRIPT\r\nNOOP\r\n", []want{{err: "bad command name"}, {name: "NOOP"}}},
		// A bad line's literal is skipped, not run as commands.
		{`PUTSCRIPT ( {6+}` + "\r\nLOGOUT\r\nNOOP\r\n", []want{{err: "unexpected character"}, {name: "NOOP"}}},
		// Over the limits: a script literal and a string literal are read
		// and dropped; beyond maxSkip the session must end.
		{`PUTSCRIPT "a" {129+}` + "\r\n" + strings.Repeat("x", 129) + "\r\nNOOP\r\n", []want{{err: "toolarge:script"}, {name: "NOOP"}}},
		{`PUTSCRIPT "a" {128+}` + "\r\n" + strings.Repeat("x", 128) + "\r\n", []want{{name: "PUTSCRIPT", args: []string{"a", strings.Repeat("x", 128)}}}},
		{`CHECKSCRIPT {129+}` + "\r\n" + strings.Repeat("x", 129) + "\r\n", []want{{err: "toolarge:script"}}},
		{`GETSCRIPT {65+}` + "\r\n" + strings.Repeat("x", 65) + "\r\nNOOP\r\n", []want{{err: "toolarge"}, {name: "NOOP"}}},
		{`PUTSCRIPT "a" {513+}` + "\r\n", []want{{err: errLiteralHuge.Error()}}},
		{`PUTSCRIPT "a" {99999999999+}` + "\r\n", []want{{err: "bad literal"}}},
		{`X "a" "b" "c" "d" "e" "f" "g" "h" "i"` + "\r\n", []want{{err: "too many arguments"}}},
		{strings.Repeat("x", 100) + "\r\n", []want{{err: errLineTooLong.Error()}}},
		{"NOOP", []want{{err: "EOF"}}},
	}
	for _, tc := range tests {
		cr := newTestReader(tc.in, 64)
		for i, w := range tc.wants {
			cmd, err := cr.readCommand()
			if w.err != "" {
				var tl *tooLargeError
				got := ""
				switch {
				case err == nil:
					got = "no error"
				case errors.As(err, &tl) && tl.script:
					got = "toolarge:script"
				case errors.As(err, &tl):
					got = "toolarge"
				default:
					got = err.Error()
				}
				if !strings.Contains(got, w.err) || (w.err == "toolarge" && got != "toolarge") {
					t.Errorf("%q #%d: error %q, want %q", tc.in, i, got, w.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q #%d: %v", tc.in, i, err)
				break
			}
			var args []string
			for _, a := range cmd.args {
				switch a.kind {
				case argNumber:
					args = append(args, "#"+strconv.FormatUint(a.n, 10))
				case argAtom:
					args = append(args, "@"+string(a.s))
				default:
					args = append(args, string(a.s))
				}
			}
			if cmd.name != w.name || strings.Join(args, "|") != strings.Join(w.args, "|") {
				t.Errorf("%q #%d: got %q %q, want %q %q", tc.in, i, cmd.name, args, w.name, w.args)
			}
		}
	}
}

func TestReadResponse(t *testing.T) {
	cr := newTestReader("\"abc\"\r\n{3+}\r\nxyz\r\n\"a\" \"b\"\r\nNOPE\r\n", 64)
	for _, want := range []string{"abc", "xyz"} {
		if got, err := cr.readResponse(); err != nil || string(got) != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	for range 2 {
		var se *syntaxError
		if _, err := cr.readResponse(); !errors.As(err, &se) {
			t.Fatalf("want a syntax error, got %v", err)
		}
	}
}

func TestWriteString(t *testing.T) {
	var b bytes.Buffer
	s := &session{w: bufio.NewWriter(&b)}
	s.writeString([]byte(`a"b\c`))
	s.writeString([]byte("x\r\ny"))
	s.writeString([]byte(strings.Repeat("z", maxQuoted+1)))
	s.w.Flush()
	want := `"a\"b\\c"` + "{4}\r\nx\r\ny{1025}\r\n" + strings.Repeat("z", maxQuoted+1)
	if b.String() != want {
		t.Fatalf("got %q", b.String())
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"main": true, "Main ü": true, "a/b.sieve": true, `q"\`: true,
		"": false, "a\x00": false, "a\tb": false, "a\u0085": false, "a\u2028": false, "\xff": false,
		strings.Repeat("n", maxNameLength): true, strings.Repeat("n", maxNameLength+1): false,
	} {
		if got := validName([]byte(name)) == ""; got != ok {
			t.Errorf("validName(%q) = %v, want %v", name, got, ok)
		}
	}
}

// encode writes cmd back in the grammar, every string as a literal.
func encode(cmd *command) string {
	var b strings.Builder
	b.WriteString(cmd.name)
	for _, a := range cmd.args {
		b.WriteByte(' ')
		switch a.kind {
		case argNumber:
			b.WriteString(strconv.FormatUint(a.n, 10))
		case argAtom:
			b.Write(a.s)
		default:
			b.WriteString("{" + strconv.Itoa(len(a.s)) + "+}\r\n")
			b.Write(a.s)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// FuzzReadCommand: the reader never panics, never returns a literal over
// its limit, and what it parses reads back the same after re-encoding.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"CAPABILITY\r\n",
		`PUTSCRIPT "a b" {5+}` + "\r\nkeep;\r\nLOGOUT\r\n",
		`HAVESPACE "x" 123` + "\r\n",
		`RENAMESCRIPT "a\"b\\c" {3}` + "\r\nabc\r\n",
		`PUTSCRIPT ( {6+}` + "\r\nLOGOUT\r\nNOOP\r\n",
		`AUTHENTICATE "PLAIN" "AGFAYgBj"` + "\r\n\"*\"\r\n",
		`PUTSCRIPT "a" {129+}` + "\r\n" + strings.Repeat("x", 129) + "\r\nNOOP\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cr := newTestReader(in, 64)
		for range 50 {
			cmd, err := cr.readCommand()
			var se *syntaxError
			var tl *tooLargeError
			if errors.As(err, &se) || errors.As(err, &tl) {
				continue
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errLineTooLong) && !errors.Is(err, errLiteralHuge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(cmd.args) > maxArgs {
				t.Fatalf("%d arguments", len(cmd.args))
			}
			for i, a := range cmd.args {
				limit := cr.maxString
				if isScriptArg(cmd.name, i) {
					limit = cr.maxScript
				}
				if a.literal && int64(len(a.s)) > limit {
					t.Fatalf("literal of %d octets over %d", len(a.s), limit)
				}
			}
			enc := encode(cmd)
			again, err := (&cmdReader{r: bufio.NewReaderSize(strings.NewReader(enc), 1<<16), maxString: 1 << 20, maxScript: 1 << 20,
				maxSkip: 1 << 20, arm: func(bool) bool { return true }}).readCommand()
			if err != nil {
				t.Fatalf("re-encoded %q: %v", enc, err)
			}
			if encode(again) != enc {
				t.Fatalf("round trip: %q then %q", enc, encode(again))
			}
		}
	})
}
