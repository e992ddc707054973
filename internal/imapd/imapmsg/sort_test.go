package imapmsg

import (
	"strings"
	"testing"
)

func TestBaseSubject(t *testing.T) {
	for _, c := range []struct {
		in, want string
		replyFwd bool
	}{
		{"hello", "hello", false},
		{"Re: hello", "hello", true},
		{"RE: Re: re:hello", "hello", true},
		{"[list] Re: hello", "hello", true},
		{"Re: [list] hello", "hello", true},
		{"re[2]: hello", "hello", true},
		{"Fwd: hello (fwd)", "hello", true},
		{"hello (FWD)  (fwd) ", "hello", true},
		{"[fwd: hello]", "hello", true},
		{"Re: [FWD: c]", "c", true},
		{"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", true},
		{"[xyz]", "[xyz]", false},
		{"[xyz] topic", "topic", false},
		{"  many\t  spaces  ", "many spaces", false},
		{"=?iso-8859-1?q?_?=", "", false},
		{"=?iso-8859-1?q?caf=E9?=", "café", false},
		{"Re:", "", true},
		{"", "", false},
		{"Reply", "Reply", false},
		{"Fwd hello", "Fwd hello", false},
	} {
		got, rf := BaseSubject(c.in)
		if got != c.want || rf != c.replyFwd {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", c.in, got, rf, c.want, c.replyFwd)
		}
	}
}

func TestParseSortCriteria(t *testing.T) {
	keys, err := ParseSortCriteria([]string{"reverse", "DATE", "subject", "REVERSE", "displayfrom"})
	if err != nil || len(keys) != 3 || !keys[0].Reverse || keys[0].By != SortDate || keys[1].Reverse ||
		keys[2].By != SortDisplayFrom || !keys[2].Reverse {
		t.Fatalf("got %+v, %v", keys, err)
	}
	for _, bad := range [][]string{nil, {"REVERSE"}, {"DATE", "REVERSE"}, {"REVERSE", "REVERSE", "DATE"}, {"SENDER"}} {
		if _, err := ParseSortCriteria(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// threadString runs an algorithm over messages given as header blocks
// (sequence numbers from 1) and writes the answer.
func threadString(build func([]*SortMessage) []*ThreadNode, headers ...string) string {
	var msgs []*SortMessage
	for i, h := range headers {
		msgs = append(msgs, &SortMessage{Seq: uint32(i + 1), Num: uint32(i + 1), Fields: SortFieldsOf([]byte(h + "\r\n"))})
	}
	var b []byte
	for _, n := range build(msgs) {
		b = AppendThread(b, n)
	}
	return string(b)
}

func TestThreadReferences(t *testing.T) {
	d := func(day string) string { return "Date: " + day + " Mar 2024 10:00:00 +0000\r\n" }
	for _, c := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"chain", []string{
			"Message-ID: <a>\r\n" + d("1"),
			"Message-ID: <b>\r\nReferences: <a>\r\n" + d("2"),
			"Message-ID: <c>\r\nReferences: <a> <b>\r\n" + d("3"),
		}, "(1 2 3)"},
		{"siblings", []string{
			"Message-ID: <a>\r\n" + d("1"),
			"Message-ID: <b>\r\nIn-Reply-To: <a>\r\n" + d("3"),
			"Message-ID: <c>\r\nIn-Reply-To: <a>\r\n" + d("2"),
		}, "(1 (3)(2))"},
		{"missing parent: a dummy with two children stays", []string{
			"Message-ID: <b>\r\nReferences: <gone>\r\n" + d("1"),
			"Message-ID: <c>\r\nReferences: <gone>\r\n" + d("2"),
		}, "((1)(2))"},
		{"missing parent with one child is pruned", []string{
			"Message-ID: <b>\r\nReferences: <gone>\r\n" + d("1"),
		}, "(1)"},
		{"same subject merged under a dummy", []string{
			"Subject: plans\r\n" + d("1"),
			"Subject: plans\r\n" + d("2"),
		}, "((1)(2))"},
		{"a reply by subject goes under the original", []string{
			"Subject: plans\r\n" + d("1"),
			"Subject: Re: plans\r\n" + d("2"),
		}, "(1 2)"},
		{"loop (imaptest thread)", []string{
			"Message-ID: <a@b>\r\n" + d("3"),
			"Message-ID: <b@b>\r\nReferences: <a@b> <c@b>\r\n" + d("1"),
			"Message-ID: <c@b>\r\nReferences: <b@b>\r\n" + d("2"),
		}, "(3 2)(1)"},
		{"self reference skipped", []string{
			"Message-ID: <a>\r\n" + d("1"),
			"Message-ID: <b>\r\nReferences: <a> <b>\r\n" + d("2"),
		}, "(1 2)"},
	} {
		if got := threadString(ThreadReferences, c.headers...); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	got := threadString(ThreadOrderedSubject,
		"Subject: b\r\n"+d("1"), "Subject: Re: a\r\n"+d("2"), "Subject: b\r\n"+d("3"), "Subject: a\r\n"+d("4"), "Subject: b\r\n"+d("5"))
	if want := "(1 (3)(5))(2 4)"; got != want {
		t.Errorf("ORDEREDSUBJECT: got %s, want %s", got, want)
	}
	if strings.Contains(threadString(ThreadReferences), "(") {
		t.Error("no messages should give no threads")
	}
}
