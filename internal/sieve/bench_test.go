package sieve

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// rules200 is a 200-rule script of the shapes in the app benchmark; the
// test message matches none of them.
func rules200() string {
	var b strings.Builder
	b.WriteString(`require ["fileinto", "mailbox", "imap4flags", "variables", "regex", "relational", "comparator-i;ascii-numeric", "envelope"];` + "\n")
	for i := range 200 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "if header :contains \"subject\" \"topic-%d\" { fileinto :create \"Topics/%d\"; stop; }\n", i, i)
		case 1:
			fmt.Fprintf(&b, "if address :domain :is \"from\" \"domain%d.example\" { addflag \"$d%d\"; fileinto :create \"Domains/%d\"; }\n", i, i, i)
		case 2:
			fmt.Fprintf(&b, "if header :matches \"List-Id\" \"*<list%d.*>\" { fileinto :create \"Lists/${1}\"; stop; }\n", i)
		case 3:
			fmt.Fprintf(&b, "if anyof (header :regex \"x-mailer\" \"^tool%d/[0-9]+$\", envelope :is \"from\" \"bot%d@example.net\") { discard; stop; }\n", i, i)
		case 4:
			fmt.Fprintf(&b, "if allof (header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-priority\" \"%d\", size :over %dK) { fileinto :create \"Big/%d\"; }\n", 100+i, 500+i, i)
		}
	}
	return b.String()
}

// BenchmarkCompile200 is the cost the cache saves: compiling a 200-rule
// script.
func BenchmarkCompile200(b *testing.B) {
	src := []byte(rules200())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRun200 is one delivery's script run: 200 rules, none matching.
func BenchmarkRun200(b *testing.B) { benchRun200(b, true) }

// BenchmarkRun200GoSieve is the same run with go-sieve's own tests (no
// fast.go), for comparison.
func BenchmarkRun200GoSieve(b *testing.B) { benchRun200(b, false) }

func benchRun200(b *testing.B, fast bool) {
	s, err := compile([]byte(rules200()), fast)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{From: "alice@sender.test", To: "user0@example.test", Header: []byte(rfcHeader + "X-Mailer: other/1\r\n"), Size: 4500}
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Run(context.Background(), in)
		if err != nil || !res.Keep || len(res.FileInto) != 0 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}
