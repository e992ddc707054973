package imapmsg

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readTestMessage(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func extract(t testing.TB, msg []byte, spec, partial string) string {
	t.Helper()
	sec, err := ParseSection(spec)
	if err != nil {
		t.Fatalf("ParseSection(%q): %v", spec, err)
	}
	st := ParseBytes(msg)
	sr, err := st.Extract(bytes.NewReader(msg), sec)
	if err != nil {
		t.Fatalf("Extract(%q): %v", spec, err)
	}
	if partial != "" {
		p, err := ParsePartial(partial)
		if err != nil {
			t.Fatalf("ParsePartial(%q): %v", partial, err)
		}
		sr = p.Apply(sr)
	}
	b, err := io.ReadAll(sr)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != sr.Size() {
		t.Fatalf("section %q: read %d bytes, Size() %d", spec, len(b), sr.Size())
	}
	return string(b)
}

// The expected values are what Dovecot 2.3.19 returns for the same
// messages (see dovecot_test.go for the cross-check).
func TestExtract(t *testing.T) {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	nested := readTestMessage(t, "nested-rfc822.eml")
	plain := readTestMessage(t, "plain.eml")
	top := readTestMessage(t, "toplevel-rfc822.eml")
	innerHeader := crlf(`From: Bob <bob@example.com>
To: Alice <alice@example.org>, Group: one@example.com, Two <two@example.com>;
Subject: Inner
Date: Wed, 16 Mar 2022 08:30:00 -0400
Message-ID: <inner@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

`)
	tests := []struct {
		msg           []byte
		spec, partial string
		want          string
	}{
		{nested, "", "", string(nested)},
		{nested, "1.TEXT", "", ""},
		{nested, "1.HEADER", "", ""},
		{nested, "1.MIME", "", crlf("Content-Type: text/plain\n\n")},
		{nested, "1", "", "See below."},
		{nested, "9", "", ""},
		{nested, "2.1", "", "inner plain"},
		{nested, "2.2", "", "<p>inner html</p>"},
		{nested, "2.3", "", ""},
		{nested, "2.1.1", "", "inner plain"},
		{nested, "3.1", "", "just text"},
		{nested, "3.2", "", ""},
		{nested, "3.1.MIME", "", crlf("Subject: simple inner\n\n")},
		{nested, "2.HEADER", "", innerHeader},
		{nested, "2.TEXT", "", crlf("--inner\nContent-Type: text/plain; charset=us-ascii\n\ninner plain\n--inner\nContent-Type: text/html; charset=us-ascii\n\n<p>inner html</p>\n--inner--\n")},
		{nested, "2.MIME", "", crlf("Content-Type: message/rfc822\nContent-Disposition: inline\n\n")},
		{nested, "2", "", innerHeader + crlf("--inner\nContent-Type: text/plain; charset=us-ascii\n\ninner plain\n--inner\nContent-Type: text/html; charset=us-ascii\n\n<p>inner html</p>\n--inner--\n")},
		{nested, "2.1.MIME", "", crlf("Content-Type: text/plain; charset=us-ascii\n\n")},
		{nested, "2.2.1", "", "<p>inner html</p>"},
		{nested, "2.HEADER.FIELDS (subject to)", "", crlf("To: Alice <alice@example.org>, Group: one@example.com, Two <two@example.com>;\nSubject: Inner\n\n")},
		{nested, `HEADER.FIELDS (Subject FROM "x-none")`, "", crlf("From: forwarder@example.com\nSubject: Fwd: Documents\n\n")},
		{nested, "HEADER.FIELDS.NOT (Subject)", "", crlf("From: forwarder@example.com\nTo: someone@example.net\nDate: Thu, 17 Mar 2022 12:00:00 +0000\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"fwd\"\n\n")},
		{nested, "HEADER.FIELDS (X-Nothing)", "", "\r\n"},
		{nested, "", "10.20", crlf("arder@example.com\nT")},
		{nested, "1", "1000.5", ""},
		{nested, "1", "4.1000", "below."},
		{nested, "TEXT", "0.7", "--fwd\r\n"},
		{plain, "1", "", crlf("Hi Bob,\n\nLunch on Tuesday at noon?\n\n-- \nAlice\n")},
		{plain, "1.HEADER", "", ""},
		{plain, "1.TEXT", "", ""},
		{plain, "HEADER.FIELDS (SUBJECT)", "", crlf("Subject: Lunch on\n  Tuesday?\n\n")},
		{plain, "2", "", ""},
		{plain, "1.1", "", ""},
		{top, "1.TEXT", "", crlf("inner body\n")},
		{top, "1.HEADER", "", crlf("From: b@example.com\nSubject: inner\nContent-Type: text/plain; charset=utf-8\n\n")},
		{top, "1.MIME", "", crlf("From: a@example.com\nSubject: top-level message\nContent-Type: message/rfc822\n\n")},
		{top, "1.1", "", crlf("inner body\n")},
		{top, "HEADER.FIELDS.NOT (SUBJECT)", "", crlf("From: a@example.com\nContent-Type: message/rfc822\n\n")},
		{top, "TEXT", "", crlf("From: b@example.com\nSubject: inner\nContent-Type: text/plain; charset=utf-8\n\ninner body\n")},
	}
	for _, tc := range tests {
		got := extract(t, tc.msg, tc.spec, tc.partial)
		if got != tc.want {
			t.Errorf("BODY[%s]<%s> = %q, want %q", tc.spec, tc.partial, got, tc.want)
		}
	}
}

func TestParseSection(t *testing.T) {
	tests := []struct {
		in   string
		want Section
		echo string
	}{
		{"", Section{}, ""},
		{"HEADER", Section{Specifier: SpecHeader}, "HEADER"},
		{"header", Section{Specifier: SpecHeader}, "HEADER"},
		{"TEXT", Section{Specifier: SpecText}, "TEXT"},
		{"1", Section{Part: []int{1}}, "1"},
		{"1.2.3", Section{Part: []int{1, 2, 3}}, "1.2.3"},
		{"4.2.mime", Section{Part: []int{4, 2}, Specifier: SpecMIME}, "4.2.MIME"},
		{"3.HEADER", Section{Part: []int{3}, Specifier: SpecHeader}, "3.HEADER"},
		{"3.TEXT", Section{Part: []int{3}, Specifier: SpecText}, "3.TEXT"},
		{"HEADER.FIELDS (From To)", Section{Specifier: SpecHeaderFields, Fields: []string{"From", "To"}}, "HEADER.FIELDS (From To)"},
		{`header.fields.not ("Subject" X-Y)`, Section{Specifier: SpecHeaderFieldsNot, Fields: []string{"Subject", "X-Y"}}, "HEADER.FIELDS.NOT (Subject X-Y)"},
		{"2.HEADER.FIELDS (DATE)", Section{Part: []int{2}, Specifier: SpecHeaderFields, Fields: []string{"DATE"}}, "2.HEADER.FIELDS (DATE)"},
	}
	for _, tc := range tests {
		got, err := ParseSection(tc.in)
		if err != nil {
			t.Errorf("ParseSection(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSection(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.echo {
			t.Errorf("ParseSection(%q).String() = %q, want %q", tc.in, got.String(), tc.echo)
		}
	}
	for _, bad := range []string{
		"MIME", "0", "1.", ".1", "1..2", "01", "1.0", "HEADERS", "TEXT ", "1.TEXT x",
		"HEADER.FIELDS", "HEADER.FIELDS ()", "HEADER.FIELDS (a", "HEADER.FIELDS a",
		"HEADER.FIELDS (a:b)", "99999999999999999999", "1.FOO", "HEADER.FIELDS.NOT",
	} {
		if s, err := ParseSection(bad); err == nil {
			t.Errorf("ParseSection(%q) = %+v, want an error", bad, s)
		} else if !errors.Is(err, ErrSection) {
			t.Errorf("ParseSection(%q) error %v does not wrap ErrSection", bad, err)
		}
	}
}

func TestParsePartial(t *testing.T) {
	good := map[string]Partial{"0.1": {0, 1}, "10.20": {10, 20}, "4294967296.5": {4294967296, 5}}
	for in, want := range good {
		if got, err := ParsePartial(in); err != nil || got != want {
			t.Errorf("ParsePartial(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1", "1.", ".1", "1.0", "-1.2", "1.-2", "a.b", "1.2.3", "99999999999999999999.1"} {
		if p, err := ParsePartial(bad); err == nil {
			t.Errorf("ParsePartial(%q) = %v, want an error", bad, p)
		}
	}
}

func TestFind(t *testing.T) {
	st := ParseBytes(readTestMessage(t, "nested-multipart.eml"))
	tests := map[string]string{
		"":      "multipart/mixed",
		"1":     "multipart/alternative",
		"1.1":   "text/plain",
		"1.2":   "multipart/related",
		"1.2.1": "text/html",
		"1.2.2": "image/gif",
		"2":     "text/plain",
	}
	for path, want := range tests {
		sec, err := ParseSection(path)
		if err != nil {
			t.Fatal(err)
		}
		p := st.Find(sec.Part)
		if p == nil || p.MediaType() != want {
			t.Errorf("Find(%s) = %v, want %s", path, p, want)
		}
	}
	for _, path := range [][]int{{3}, {0}, {1, 3}, {1, 2, 3}, {2, 2}, {1, 2, 2, 2}} {
		if p := st.Find(path); p != nil {
			t.Errorf("Find(%v) = %s, want nil", path, p.MediaType())
		}
	}
}

func TestParseHeaderShallow(t *testing.T) {
	for _, name := range []string{"plain.eml", "nested-rfc822.eml", "header-only.eml", "8bit.eml"} {
		msg := readTestMessage(t, name)
		full := ParseBytes(msg)
		shallow, err := ParseHeader(bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		if !shallow.Shallow || full.Shallow {
			t.Fatalf("%s: Shallow flags %v %v", name, shallow.Shallow, full.Shallow)
		}
		if got, want := string(shallow.AppendEnvelope(nil)), string(full.AppendEnvelope(nil)); got != want {
			t.Errorf("%s: shallow envelope %s, full %s", name, got, want)
		}
		for _, spec := range []string{"", "HEADER", "TEXT", "HEADER.FIELDS (Subject)", "HEADER.FIELDS.NOT (Subject)"} {
			sec, _ := ParseSection(spec)
			a, err1 := shallow.Extract(bytes.NewReader(msg), sec)
			b, err2 := full.Extract(bytes.NewReader(msg), sec)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			x, _ := io.ReadAll(a)
			y, _ := io.ReadAll(b)
			if !bytes.Equal(x, y) {
				t.Errorf("%s BODY[%s]: shallow %q, full %q", name, spec, x, y)
			}
		}
		if _, err := shallow.Extract(bytes.NewReader(msg), Section{Part: []int{1}}); err == nil {
			t.Errorf("%s: shallow structure extracted a part", name)
		}
	}
}

func TestMessageGlobal(t *testing.T) {
	msg := []byte("Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: message/global\r\n\r\nSubject: Grüße\r\n\r\ninner\r\n--b--\r\n")
	st := ParseBytes(msg)
	want := `(("message" "global" NIL NIL NIL "7bit" 25 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)`
	if got := string(st.AppendBodyStructure(nil, true)); got != want {
		t.Errorf("BODYSTRUCTURE %s, want %s", got, want)
	}
	if got := extract(t, msg, "1.HEADER", ""); got != "Subject: Grüße\r\n\r\n" {
		t.Errorf("BODY[1.HEADER] = %q", got)
	}
	if got := extract(t, msg, "1.TEXT", ""); got != "inner" {
		t.Errorf("BODY[1.TEXT] = %q", got)
	}
}

// HeaderOnly of a full structure must behave as ParseHeader's structure
// for header sections read from the header block alone: a single part is
// shared, a tree is cut to a shallow root.
func TestHeaderOnly(t *testing.T) {
	kinds := map[bool]int{}
	for _, name := range []string{"plain.eml", "nested-rfc822.eml", "header-only.eml", "8bit.eml"} {
		msg := readTestMessage(t, name)
		full := ParseBytes(msg)
		ho := full.HeaderOnly()
		single := len(full.Root.Children) == 0 && full.Root.Message == nil
		kinds[single]++
		switch {
		case single && ho != full:
			t.Fatalf("%s: HeaderOnly copied a single-part structure", name)
		case !single && (!ho.Shallow || full.Shallow || ho.Root == full.Root || len(ho.Root.Children) != 0 || ho.Root.Message != nil):
			t.Fatalf("%s: HeaderOnly kept the parts or changed the original", name)
		}
		if ho.HeaderOnly() != ho {
			t.Errorf("%s: HeaderOnly of a shallow structure copied it", name)
		}
		if got, want := string(ho.AppendEnvelope(nil)), string(full.AppendEnvelope(nil)); got != want {
			t.Errorf("%s: envelope %s, full %s", name, got, want)
		}
		header := msg[:full.Root.BodyOffset]
		for _, spec := range []string{"HEADER", "HEADER.FIELDS (Subject)", "HEADER.FIELDS.NOT (Subject)"} {
			sec, _ := ParseSection(spec)
			a, err1 := ho.Extract(bytes.NewReader(header), sec)
			b, err2 := full.Extract(bytes.NewReader(msg), sec)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			x, _ := io.ReadAll(a)
			y, _ := io.ReadAll(b)
			if !bytes.Equal(x, y) {
				t.Errorf("%s BODY[%s]: from header %q, full %q", name, spec, x, y)
			}
		}
	}
	if kinds[true] == 0 || kinds[false] == 0 {
		t.Fatalf("the messages cover single parts %d times and trees %d times", kinds[true], kinds[false])
	}
}
