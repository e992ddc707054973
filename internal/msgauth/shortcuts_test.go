package msgauth

// The shortcuts the verifier takes on the usual input, each held to the
// longer way it skips.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// parseTagsRef is parseTags as it was, with a map (go-msgauth's way).
func parseTagsRef(s string) (map[string]string, error) {
	params := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if strings.TrimSpace(part) == "" {
				continue
			}
			return nil, errors.New("malformed header params")
		}
		k = strings.TrimSpace(k)
		if _, dup := params[k]; dup {
			return nil, errors.New("duplicate tag name")
		}
		params[k] = strings.TrimSpace(v)
	}
	return params, nil
}

func sameTags(t *testing.T, s string) {
	t.Helper()
	got, gerr := parseTags(s)
	want, werr := parseTagsRef(s)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("%q: error %v, reference %v", s, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d tags, reference %d", s, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got.lookup(k); !ok || g != v {
			t.Fatalf("%q: tag %q = %q (%v), reference %q", s, k, g, ok, v)
		}
	}
}

// TestParseTagsDuplicates: a repeated tag is refused in a short list
// (found by a scan) and in a long one (found by the set).
func TestParseTagsDuplicates(t *testing.T) {
	var long []string
	for i := range 200 {
		long = append(long, fmt.Sprintf("t%d=%d", i, i))
	}
	for _, s := range []string{
		"v=1; a=rsa-sha256; b=x; a=y",
		"v=1;v=1",
		" k = v ; k=w",
		strings.Join(long, ";"),
		strings.Join(long, ";") + ";t5=again",
		strings.Join(long[:maxScannedTags], ";") + ";t0=again",
		strings.Join(long[:maxScannedTags-1], ";") + ";t0=again",
		strings.Join(long[:maxScannedTags+1], ";") + ";t32=again",
	} {
		sameTags(t, s)
	}
	if _, err := parseTags(strings.Join(long, ";") + ";t199=x"); err == nil {
		t.Fatal("a duplicate past the scanned tags was accepted")
	}
}

// FuzzParseTags: parseTags gives the map-based reference's tags and errors.
func FuzzParseTags(f *testing.F) {
	f.Add("v=1; a=rsa-sha256; d=example.com; s=sel; h=from:to; bh=abc=; b=de f=")
	f.Add("a=1;a=2")
	f.Add(strings.Repeat("x=1;", 40))
	f.Fuzz(func(t *testing.T, s string) { sameTags(t, s) })
}

// TestStripWSP: every kind of white space goes, anywhere, and nothing else.
func TestStripWSP(t *testing.T) {
	ref := func(s string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(" \t\r\n\v\f", r) {
				return -1
			}
			return r
		}, s)
	}
	for _, s := range []string{"", "abc", " a", "a ", "ab\r\n\tcd", "\v\f", "dGVz\r\n dA==", "x y\tz"} {
		if got, want := stripWSP(s), ref(s); got != want {
			t.Errorf("stripWSP(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestClean: the printable-ASCII shortcut gives what the full cleaning gives.
func TestClean(t *testing.T) {
	for _, s := range []string{"", "mx.example.test", "a\tb", "a\x7fb", "caf\xc3\xa9", "bad \xff byte",
		strings.Repeat("x", 200), strings.Repeat("x", 201), strings.Repeat("é", 101), "line\r\nbreak"} {
		if got, want := clean(s), cleanAny(s); got != want {
			t.Errorf("clean(%q) = %q, want %q", s, got, want)
		}
	}
	for in, want := range map[string]string{"a\tb": "a b", "a\x7fb": "a b", "bad \xff byte": "bad  byte",
		strings.Repeat("x", 201): strings.Repeat("x", 200), "mx.example.test": "mx.example.test"} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func sameDomains(t *testing.T, v string) {
	t.Helper()
	if _, ok := simpleAddressDomain(v); !ok {
		return
	}
	got, want := addressDomains(v), parsedAddressDomains(v)
	if !slices.Equal(got, want) {
		t.Fatalf("%q: shortcut %q, net/mail %q", v, got, want)
	}
}

// TestSimpleAddressDomain: the usual From forms take the shortcut, the
// rest go to net/mail, and both give the same domains.
func TestSimpleAddressDomain(t *testing.T) {
	for _, c := range []struct {
		v      string
		simple bool
	}{
		{"alice@sender.test", true},
		{" Alice <alice@Sender.TEST>", true},
		{"Alice B. <a@b.test>", false}, // a dot in the phrase
		{"<a.b+c@mail.sender.test>", true},
		{"\"Alice\" <a@b.test>", false},
		{"=?utf-8?q?Alice?= <a@b.test>", false},
		{"a@b.test, c@d.test", false},
		{"a@b.test (comment)", false},
		{"Al\tice  <x@y-z.test>", true},
		{"a..b@c.test", false},
		{"a@[192.0.2.1]", false},
		{"a@b_c.test", false},
		{"Alice <a@b.test", false},
		{"", false},
	} {
		if _, ok := simpleAddressDomain(c.v); ok != c.simple {
			t.Errorf("%q: simple %v, want %v", c.v, ok, c.simple)
		}
		sameDomains(t, c.v)
	}
}

// FuzzSimpleAddressDomain: whenever the shortcut answers, net/mail gives
// the same domains.
func FuzzSimpleAddressDomain(f *testing.F) {
	for _, s := range []string{"alice@sender.test", "Alice <a@b.test>", "<x@y>", "a b c <d@e.f>", "-@-.-"} {
		f.Add(s)
	}
	f.Fuzz(sameDomains)
}
