package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// testDecoder reads in followed by a line end (a token ends at the next
// byte, which on a connection is never EOF).
func testDecoder(in string) (*decoder, *int) {
	d := newDecoder(bufio.NewReader(strings.NewReader(in+"\r\n")), 200, 100)
	conts := new(int)
	d.cont = func() error { *conts++; return nil }
	return d, conts
}

func TestDecoderTokens(t *testing.T) {
	tests := []struct {
		in    string
		parse func(d *decoder) any
		want  any
		conts int
		err   string // substring of the error, "" for none
	}{
		{"abc", func(d *decoder) any { return d.Atom() }, "abc", 0, ""},
		{"INBOX]x", func(d *decoder) any { return d.AString() }, "INBOX]x", 0, ""},
		{`"a \"q\" \\ b"`, func(d *decoder) any { return d.AString() }, `a "q" \ b`, 0, ""},
		{"{5}\r\nhello", func(d *decoder) any { return d.AString() }, "hello", 1, ""},
		{"{5+}\r\nhello", func(d *decoder) any { return d.AString() }, "hello", 0, ""},
		{"{0}\r\n", func(d *decoder) any { return d.String() }, "", 1, ""},
		{"{101}\r\n", func(d *decoder) any { return d.String() }, "", 0, "over the limit"},
		{`"unterminated`, func(d *decoder) any { return d.String() }, "", 0, "Unterminated"},
		{"\"bad\r\n\"", func(d *decoder) any { return d.String() }, "", 0, "Unterminated"},
		{`"bad \x"`, func(d *decoder) any { return d.String() }, "", 0, "escape"},
		{"NIL", func(d *decoder) any { s, ok := d.NString(); return []any{s, ok} }, []any{"", false}, 0, ""},
		{`"x"`, func(d *decoder) any { s, ok := d.NString(); return []any{s, ok} }, []any{"x", true}, 0, ""},
		{"4294967295", func(d *decoder) any { return d.Number() }, uint32(4294967295), 0, ""},
		{"4294967296", func(d *decoder) any { return d.Number() }, uint32(0), 0, "out of range"},
		{"9223372036854775807", func(d *decoder) any { return d.Number64() }, uint64(1<<63 - 1), 0, ""},
		{"0", func(d *decoder) any { return d.NzNumber() }, uint32(0), 0, "non-zero"},
		{`\seen`, func(d *decoder) any { return d.Flag() }, `\Seen`, 0, ""},
		{`$Junk`, func(d *decoder) any { return d.Flag() }, `$Junk`, 0, ""},
		{"1:3,5,*,7:*,9:2", func(d *decoder) any { return d.SeqSet().String() }, "1:3,5,*,7:*,2:9", 0, ""},
		{"*:4", func(d *decoder) any { return d.SeqSet().String() }, "4:*", 0, ""},
		{"$", func(d *decoder) any { return d.SeqSet() }, numSet(nil), 0, "not allowed"},
		{"$", func(d *decoder) any { return d.SeqSetOrSaved().isSaved() }, true, 0, ""},
		{"1:*", func(d *decoder) any { return d.SeqSetOrSaved().isSaved() }, false, 0, ""},
		{"1:", func(d *decoder) any { return d.SeqSet() }, numSet(nil), 0, "number"},
		{"0", func(d *decoder) any { return d.SeqSet() }, numSet(nil), 0, "non-zero"},
		{"%/a*", func(d *decoder) any { return d.ListMailbox() }, "%/a*", 0, ""},
		{"(a b (c) d)", func(d *decoder) any {
			var out []string
			d.List(func() bool {
				if d.Is('(') {
					d.List(func() bool { out = append(out, "<"+d.Atom()+">"); return true })
					return true
				}
				out = append(out, d.Atom())
				return true
			})
			return out
		}, []string{"a", "b", "<c>", "d"}, 0, ""},
		{"()", func(d *decoder) any { n := 0; d.List(func() bool { n++; return true }); return n }, 0, 0, ""},
		{"(a  b)", func(d *decoder) any { d.List(func() bool { d.Atom(); return true }); return nil }, nil, 0, "atom"},
	}
	for _, tt := range tests {
		d, conts := testDecoder(tt.in)
		got := tt.parse(d)
		err := d.Err()
		if tt.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.in, err)
				continue
			}
			if !equalAny(got, tt.want) {
				t.Errorf("%q: got %#v, want %#v", tt.in, got, tt.want)
			}
		} else if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
		}
		if *conts != tt.conts {
			t.Errorf("%q: %d continuation requests, want %d", tt.in, *conts, tt.conts)
		}
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case []string:
		y, ok := b.([]string)
		return ok && slices.Equal(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	case numSet:
		y, ok := b.(numSet)
		return ok && slices.Equal(x, y)
	}
	return a == b
}

func TestDecoderLineLimit(t *testing.T) {
	d, _ := testDecoder(strings.Repeat("a", 300) + "\r\nNEXT\r\n")
	d.Atom()
	if !errors.Is(d.Err(), errLineTooLong) {
		t.Fatalf("err %v", d.Err())
	}
	// The rest of an over-long line is not read: its end may never come,
	// so the session closes (issue 17).
	if d.skipRest(1 << 20) {
		t.Fatal("skipRest read on after an over-long line")
	}
	if !errors.Is(d.Err(), errLineTooLong) {
		t.Fatalf("err after skipRest %v", d.Err())
	}
}

// TestSkipRest checks that a refused command is skipped to its end,
// literals included, and the next command reads cleanly.
func TestSkipRest(t *testing.T) {
	tests := []struct {
		name, in string
		parse    func(d *decoder)
	}{
		{"rest of line", "a b c\r\n", func(d *decoder) { d.Number() }},
		{"non-sync literal inside", "x {3+}\r\nabc y {2+}\r\nzz end\r\n", func(d *decoder) { d.Number() }},
		{"sync literal ends it", "x {3}\r\n", func(d *decoder) { d.Number() }},
		{"too big sync", "{500}\r\n", func(d *decoder) { _ = d.String() }},
		{"too big non-sync", "{150+}\r\n" + strings.Repeat("q", 150) + " more\r\n", func(d *decoder) { _ = d.String() }},
		{"bare LF", "x y\n", func(d *decoder) { d.Number() }},
	}
	for _, tt := range tests {
		d, _ := testDecoder(tt.in + "NEXT\r\n")
		tt.parse(d)
		if d.Err() == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !d.skipRest(1 << 20) {
			t.Errorf("%s: skipRest failed", tt.name)
			continue
		}
		d.reset()
		if a := d.Atom(); a != "NEXT" || d.End() != nil {
			t.Errorf("%s: next command %q %v", tt.name, a, d.Err())
		}
	}
	// A literal larger than the budget gives up.
	d, _ := testDecoder("{99999999+}")
	_ = d.String()
	if d.skipRest(1000) {
		t.Fatal("skipRest should give up")
	}
}

func TestResolve(t *testing.T) {
	v := &view{}
	for _, u := range []uint32{3, 5, 9, 10, 20} {
		v.msgs = append(v.msgs, msgInfo(u))
	}
	tests := []struct {
		set   string
		uid   bool
		want  []uint32
		valid bool
	}{
		{"1:3", false, []uint32{1, 2, 3}, true},
		{"*", false, []uint32{5}, true},
		{"4:*,2,2", false, []uint32{2, 4, 5}, true},
		{"6", false, nil, false},
		{"3:7", false, []uint32{3, 4, 5}, false},
		{"5:9", true, []uint32{2, 3}, true},
		{"1:*", true, []uint32{1, 2, 3, 4, 5}, true},
		{"100:*", true, []uint32{5}, true}, // RFC 9051 6.4.8: "*" is the last UID
		{"11:19", true, nil, true},
		{"1:4,4:9", true, []uint32{1, 2, 3}, true},
	}
	for _, tt := range tests {
		d, _ := testDecoder(tt.set)
		set := d.SeqSet()
		got, valid := v.resolve(set, tt.uid)
		if !slices.Equal(got, tt.want) || valid != tt.valid {
			t.Errorf("%s uid=%v: got %v %v, want %v %v", tt.set, tt.uid, got, valid, tt.want, tt.valid)
		}
	}
	empty := &view{}
	if _, valid := empty.resolve(numSet{{0, 0}}, false); valid {
		t.Error(`"*" in an empty mailbox is valid`)
	}
	if got, valid := empty.resolve(numSet{{1, 0}}, true); !valid || got != nil {
		t.Error("UID set in an empty mailbox")
	}
}

func TestCompactUIDs(t *testing.T) {
	tests := map[string][]uint32{
		"":          nil,
		"1":         {1},
		"1:3,7":     {1, 2, 3, 7},
		"5,3:4":     {5, 3, 4},
		"1,3,5:6,8": {1, 3, 5, 6, 8},
	}
	for want, in := range tests {
		if got := imapmsg.CompactUIDs(in); got != want {
			t.Errorf("%v: %q, want %q", in, got, want)
		}
	}
}

func TestUTF7(t *testing.T) {
	tests := []struct{ utf8, utf7 string }{
		{"INBOX", "INBOX"},
		{"A&B", "A&-B"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"😀", "&2D3eAA-"},
	}
	for _, tt := range tests {
		if got := encodeUTF7(tt.utf8); got != tt.utf7 {
			t.Errorf("encode %q: %q, want %q", tt.utf8, got, tt.utf7)
		}
		if got, err := decodeUTF7(tt.utf7); err != nil || got != tt.utf8 {
			t.Errorf("decode %q: %q %v", tt.utf7, got, err)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&AGE-", "a\x01", "&2D0-", "Entwürfe"} {
		if _, err := decodeUTF7(bad); err == nil {
			t.Errorf("decode %q: no error", bad)
		}
	}
}

func TestWildMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "a/b/c", true},
		{"%", "a/b", false},
		{"%", "a", true},
		{"a/%", "a/b", true},
		{"a/%", "a/b/c", false},
		{"a/*", "a/b/c", true},
		{"*c", "a/b/c", true},
		{"a%c", "abc", true},
		{"a%c", "a/c", false},
		{"", "", true},
		{"INBOX", "INBOX", true},
		{"Sent", "sent", false},
		{strings.Repeat("*", 50) + "x", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := wildMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("%q ~ %q: %v", tt.pattern, tt.name, got)
		}
	}
}

func TestWriterEncoding(t *testing.T) {
	tests := []struct {
		s        string
		utf8     bool
		want     string
		asString func(w *respWriter, s string)
	}{
		{"plain", false, `"plain"`, (*respWriter).String},
		{`q"b\`, false, `"q\"b\\"`, (*respWriter).String},
		{"line\r\nbreak", false, "{11}\r\nline\r\nbreak", (*respWriter).String},
		{"Grüße", false, "{7}\r\nGrüße", (*respWriter).String},
		{"Grüße", true, `"Grüße"`, (*respWriter).String},
		{"INBOX", false, "INBOX", (*respWriter).AString},
		{"NIL", false, `"NIL"`, (*respWriter).AString},
		{"a b", false, `"a b"`, (*respWriter).AString},
		{"", false, `""`, (*respWriter).AString},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := newRespWriter(bufio.NewWriterSize(&buf, respBufSize))
		w.utf8 = tt.utf8
		tt.asString(w, tt.s)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("%q: %q, want %q", tt.s, buf.String(), tt.want)
		}
	}
}

// FuzzStringRoundTrip: whatever the writer encodes as a string, the
// decoder reads back unchanged.
func FuzzStringRoundTrip(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "x\r\ny", "Grüße", "\x00", strings.Repeat("z", 5000)} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, allowUTF8 bool) {
		if allowUTF8 && !utf8.ValidString(s) {
			allowUTF8 = false
		}
		var buf bytes.Buffer
		w := newRespWriter(bufio.NewWriterSize(&buf, respBufSize))
		w.utf8 = allowUTF8
		w.AString(s)
		w.CRLF()
		_ = w.Flush()
		d := newDecoder(bufio.NewReader(&buf), 1<<20, 1<<20)
		got := d.AString()
		if d.Err() != nil || got != s {
			t.Fatalf("%q encoded as %q read back as %q (%v)", s, buf.String(), got, d.Err())
		}
	})
}

func msgInfo(uid uint32) viewMsg { return viewMsg{uid: uid} }
