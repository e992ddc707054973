package sieve

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// FuzzSieveCheck feeds arbitrary scripts to the parser path ManageSieve
// uses (Check): it must return, never panic, and an error must name a
// line whenever go-sieve knows one. A script that compiles also runs over
// a fixed message without panicking (Run recovers; a panic escaping it
// would crash delivery).
func FuzzSieveCheck(f *testing.F) {
	for _, s := range []string{
		"keep;",
		`require ["fileinto","variables","regex"]; if header :regex "subject" "^(.*)$" { fileinto "x.${1}"; }`,
		`require ["spamtestplus","relational","comparator-i;ascii-numeric"]; if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "80" { discard; }`,
		`require ["index","editheader"]; if header :index 2 :last :is "Received" "x" { deleteheader :index 1 "X-A"; addheader "X" "y"; }`,
		`require ["reject","ereject"]; reject text:
no
.
;`,
		`require "vacation"; vacation :days 3 :subject "s" :from "a@b.c" :addresses ["x@y.z"] :mime :handle "h" "r";`,
		`if anyof(not true, allof(size :over 1K, exists "x")) { stop; } elsif false {} else { discard; }`,
		`require "encoded-character"; if header :is "s" "${hex:24}${unicode:1F600}" { keep; }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		s, err := Compile([]byte(script))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := Check([]byte(script)); err != nil {
			t.Fatalf("Compile accepted what Check refused: %v", err)
		}
		res, err := s.Run(context.Background(), Input{
			From: "a@b.example", To: "c+d@e.example",
			Header: []byte(rfcHeader), Size: 100,
			Body: func() ([]byte, error) { return []byte(rfcBody), nil },
			Spam: Spam{Tested: true, Percent: 40},
		})
		if err == nil && res.Reject != nil && res.Keep {
			t.Fatalf("reject with keep: %+v", res)
		}
		if err != nil && strings.Contains(err.Error(), "internal error") && !strings.Contains(err.Error(), "variable") {
			t.Logf("recovered: %v", err) // go-sieve panicked; Run turned it into an error
		}
	})
}

// FuzzEditHeader feeds arbitrary header blocks to the header parser and
// editheader: without edits the fields come back as they were; with the
// edits of a fixed script, the added field is there and no field named
// X-Drop is left.
func FuzzEditHeader(f *testing.F) {
	f.Add("Subject: a\r\n folded\r\nX-Drop: 1\r\nFrom: x@y\r\n")
	f.Add("no colon line\nX-Drop:\n\tcont\n")
	f.Add("")
	s, err := Compile([]byte(`require "editheader"; deleteheader "X-Drop"; addheader :last "X-Added" "v";`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hdr string) {
		if strings.Contains(hdr, "\r\n\r\n") || strings.Contains(hdr, "\n\n") {
			return // the header block ends at an empty line
		}
		same := parseHeader(EditHeader([]byte(hdr), nil))
		orig := parseHeader([]byte(hdr))
		if len(same) != len(orig) {
			t.Fatalf("fields %d -> %d", len(orig), len(same))
		}
		for i := range orig {
			if same[i].name != orig[i].name || same[i].value != orig[i].value {
				t.Fatalf("field %d: %q:%q -> %q:%q", i, orig[i].name, orig[i].value, same[i].name, same[i].value)
			}
		}
		res, err := s.Run(context.Background(), Input{From: "a@b.example", Header: []byte(hdr)})
		if err != nil {
			t.Fatal(err)
		}
		out := parseHeader(EditHeader([]byte(hdr), res.Edits))
		added := false
		for _, f := range out {
			if strings.EqualFold(f.name, "X-Drop") {
				t.Fatalf("X-Drop left in %q", hdr)
			}
			added = added || (f.name == "X-Added" && f.value == "v")
		}
		if !added {
			t.Fatalf("X-Added missing from %q", hdr)
		}
	})
}

// FuzzFastMatches compares fast.go's header :is, :contains and :matches
// with go-sieve's own on arbitrary patterns and values, match variables
// included.
func FuzzFastMatches(f *testing.F) {
	f.Add("contains", "i;ascii-casemap", "*o?w*", "Hello World")
	f.Add("matches", "i;octet", "\\*a*", "*abc")
	f.Add("is", "i;ascii-casemap", "ÉTÉ", "été")
	f.Add("matches", "i;ascii-casemap", "a?b", "aéb")
	f.Fuzz(func(t *testing.T, match, comparator, pattern, value string) {
		switch match {
		case "is", "contains", "matches":
		default:
			return
		}
		if comparator != "i;octet" && comparator != "i;ascii-casemap" {
			return
		}
		if strings.ContainsAny(value, "\r\n") || strings.Contains(value, "=?") || strings.TrimSpace(value) != value {
			return // one unfolded, undecoded field value
		}
		quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
		script := `require ["fileinto", "variables"]; if header :` + match + ` :comparator "` + comparator + `" "subject" "` +
			quote.Replace(pattern) + `" { fileinto "m-${1}-${2}"; }`
		fast, err := compile([]byte(script), true)
		if err != nil {
			return
		}
		slow, err := compile([]byte(script), false)
		if err != nil {
			return
		}
		in := Input{From: "a@b.example", Header: []byte("Subject: " + value + "\r\n")}
		a, errA := fast.Run(context.Background(), in)
		b, errB := slow.Run(context.Background(), in)
		if got, want := fmt.Sprint(a.FileInto, errA), fmt.Sprint(b.FileInto, errB); got != want {
			t.Fatalf("%s\nvalue %q: ours %s, go-sieve %s", script, value, got, want)
		}
	})
}
