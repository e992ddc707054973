package imapmsg

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// sexp is a parsed IMAP response value: a string (atom, quoted or
// literal) or a list.
type sexp struct {
	list  []sexp
	isStr bool
	str   string
	nil_  bool
}

// parseSexp parses one IMAP value from b (RFC 9051 4) and returns the rest.
func parseSexp(b []byte) (sexp, []byte, error) {
	if len(b) == 0 {
		return sexp{}, nil, fmt.Errorf("unexpected end")
	}
	switch b[0] {
	case '(':
		var v sexp
		b = b[1:]
		for {
			if len(b) == 0 {
				return sexp{}, nil, fmt.Errorf("unterminated list")
			}
			if b[0] == ')' {
				return v, b[1:], nil
			}
			if len(v.list) > 0 {
				if b[0] != ' ' && !(b[0] == '(' && v.list[len(v.list)-1].list != nil) {
					return sexp{}, nil, fmt.Errorf("missing space at %q", b)
				}
				if b[0] == ' ' {
					b = b[1:]
				}
			}
			item, rest, err := parseSexp(b)
			if err != nil {
				return sexp{}, nil, err
			}
			if item.list == nil && !item.isStr && !item.nil_ {
				item.list = []sexp{}
			}
			v.list = append(v.list, item)
			b = rest
		}
	case '"':
		var s []byte
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
				if i >= len(b) || (b[i] != '"' && b[i] != '\\') {
					return sexp{}, nil, fmt.Errorf("bad escape")
				}
				s = append(s, b[i])
			case '"':
				return sexp{isStr: true, str: string(s)}, b[i+1:], nil
			case '\r', '\n', 0:
				return sexp{}, nil, fmt.Errorf("CR/LF/NUL in quoted string")
			default:
				s = append(s, b[i])
			}
		}
		return sexp{}, nil, fmt.Errorf("unterminated quoted string")
	case '{':
		end := bytes.Index(b, []byte("}\r\n"))
		if end < 0 {
			return sexp{}, nil, fmt.Errorf("bad literal")
		}
		n, err := strconv.Atoi(string(b[1:end]))
		if err != nil || end+3+n > len(b) {
			return sexp{}, nil, fmt.Errorf("bad literal length")
		}
		lit := b[end+3 : end+3+n]
		if bytes.IndexByte(lit, 0) >= 0 {
			return sexp{}, nil, fmt.Errorf("NUL in literal")
		}
		return sexp{isStr: true, str: string(lit)}, b[end+3+n:], nil
	}
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != ')' && b[i] != '(' {
		i++
	}
	if i == 0 {
		return sexp{}, nil, fmt.Errorf("unexpected %q", b[0])
	}
	if string(b[:i]) == "NIL" {
		return sexp{nil_: true}, b[i:], nil
	}
	return sexp{isStr: true, str: string(b[:i])}, b[i:], nil
}

// checkWire asserts that b is exactly one well-formed IMAP value.
func checkWire(t testing.TB, what string, b []byte) sexp {
	t.Helper()
	v, rest, err := parseSexp(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("%s is not one IMAP value (%v, %d bytes left): %q", what, err, len(rest), b)
	}
	return v
}

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse feeds arbitrary messages to the structure parser and checks
// that offsets stay consistent, every part can be extracted and the
// FETCH values are well-formed IMAP.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		st, err := Parse(bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, st)
		checkWire(t, "BODYSTRUCTURE", st.AppendBodyStructure(nil, true))
		checkWire(t, "BODY", st.AppendBodyStructure(nil, false))
		checkWire(t, "ENVELOPE", st.AppendEnvelope(nil))
		r := bytes.NewReader(msg)
		var walk func(p *Part, path []int)
		walk = func(p *Part, path []int) {
			for _, spec := range []Specifier{SpecNone, SpecHeader, SpecText, SpecMIME, SpecHeaderFields} {
				if spec == SpecMIME && len(path) == 0 {
					continue
				}
				sec := Section{Part: path, Specifier: spec}
				if spec == SpecHeaderFields {
					sec.Fields = []string{"Subject", "Content-Type"}
				}
				sr, err := st.Extract(r, sec)
				if err != nil {
					t.Fatalf("Extract(%s): %v", sec, err)
				}
				if _, err := io.Copy(io.Discard, sr); err != nil {
					t.Fatalf("reading %s: %v", sec, err)
				}
			}
			for i, c := range p.Children {
				if len(path) < 8 {
					walk(c, append(path[:len(path):len(path)], i+1))
				}
			}
		}
		walk(st.Root, nil)
		if _, err := ReadHeader(r, int64(len(msg))); err != nil {
			t.Fatal(err)
		}
		key := &SearchKey{Op: SearchText, Value: "x"}
		if _, err := Match(key, &fakeMessage{msg: msg}); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseSection checks that section specs either fail with ErrSection
// or round-trip through String.
func FuzzParseSection(f *testing.F) {
	for _, s := range []string{"", "HEADER", "1.2.3", "4.MIME", "2.HEADER.FIELDS (From To)",
		`HEADER.FIELDS.NOT ("Subject")`, "TEXT", "1.TEXT", "0", "1..2", "HEADER.FIELDS ()"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		sec, err := ParseSection(spec)
		if err != nil {
			return
		}
		again, err := ParseSection(sec.String())
		if err != nil {
			t.Fatalf("ParseSection(%q).String() = %q does not parse: %v", spec, sec.String(), err)
		}
		if again.String() != sec.String() {
			t.Fatalf("%q: %q then %q", spec, sec.String(), again.String())
		}
	})
}

// FuzzParseSearch checks that the search parser never panics and that
// what it accepts can be matched.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{"ALL", "OR (FROM a NOT TO b) UID 4:* SINCE 1-Jan-2020", `HEADER X "y"`,
		`MODSEQ "/flags/\\Seen" all 7`, "NOT NOT NOT SEEN", "1:3,5 BODY x TEXT y LARGER 5"} {
		f.Add(s)
	}
	msg := []byte("From: a@example.com\r\nSubject: hi\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nbody\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := LexSearch(s)
		if err != nil {
			return
		}
		key, err := ParseSearch(toks)
		if err != nil {
			return
		}
		key.Resolve(10, 100)
		if _, err := Match(key, &fakeMessage{seq: 1, uid: 7, msg: msg}); err != nil {
			t.Fatalf("Match(%q): %v", s, err)
		}
	})
}

// FuzzSearchFields: the stored search fields of any header block are
// computed without panicking, are case-folded, and a SUBJECT search
// answered from them agrees with one that reads the header.
func FuzzSearchFields(f *testing.F) {
	addSeeds(f)
	f.Add([]byte("From: \"a, b\" <x@y> (c), g: d@e;\r\nSubject: =?UTF-8?Q?=C3=A9?= x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := ReadHeader(bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			return
		}
		vals := SearchFields(h)
		for i, v := range vals {
			if v != fold(v) {
				t.Fatalf("field %d not folded: %q", i, v)
			}
		}
		m := &fakeMessage{seq: 1, uid: 1, msg: msg}
		st := &storedMessage{fakeMessage: m, vals: vals}
		for _, needle := range []string{"a", "x", "@"} {
			key := &SearchKey{Op: SearchHeader, Field: "Subject", Value: needle}
			a, err1 := Match(key, m)
			b, err2 := Match(key, st)
			if err1 == nil && err2 == nil && a != b {
				t.Fatalf("SUBJECT %q: header %v, stored %v", needle, a, b)
			}
			key = &SearchKey{Op: SearchHeader, Field: "From", Value: needle, Address: true}
			a, err1 = Match(key, m)
			b, err2 = Match(key, st)
			if err1 == nil && err2 == nil && a != b {
				t.Fatalf("FROM %q: header %v, stored %v", needle, a, b)
			}
		}
	})
}
