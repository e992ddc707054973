package sieve

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

const rfcHeader = "Received: from a.example by mx.example.com; Mon, 1 Dec 2026 10:00:00 +0000\r\n" +
	"Received: from b.example by a.example for <alice@example.com>; Mon, 1 Dec 2026 09:59:00 +0000\r\n" +
	"From: Wile E. Coyote <coyote@desert.example.org>\r\n" +
	"To: Alice <alice@example.com>\r\n" +
	"Subject: $$$ I have a proposal for you\r\n" +
	"Date: Mon, 1 Dec 2026 10:00:00 +0100\r\n" +
	"X-Priority: 2\r\n" +
	"List-ID: Sieve list <sieve@ietf.example.org>\r\n" +
	"X-Spam-Status: No\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n"

const rfcBody = "Dear Alice,\r\nMAKE MONEY FAST with birdseed.\r\n"

// summary renders a Result in one comparable line.
func summary(r Result) string {
	var parts []string
	if r.Keep {
		parts = append(parts, "keep")
	}
	for _, f := range r.FileInto {
		s := "fileinto " + f
		if r.Create[f] {
			s += " :create"
		}
		parts = append(parts, s)
	}
	if len(r.Flags) > 0 {
		parts = append(parts, "flags "+strings.Join(r.Flags, " "))
	}
	for _, a := range r.Redirect {
		parts = append(parts, "redirect "+a)
	}
	if r.Reject != nil {
		parts = append(parts, fmt.Sprintf("reject(%v) %s", r.Reject.Extended, strings.TrimSpace(r.Reject.Reason)))
	}
	if v := r.Vacation; v != nil {
		parts = append(parts, fmt.Sprintf("vacation days=%d subject=%q from=%q reason=%q addrs=%v", v.Days, v.Subject, v.From, v.Reason, v.Addresses))
	}
	for _, e := range r.Edits {
		parts = append(parts, fmt.Sprintf("%s %s %q", e.Action, e.FieldName, e.Value))
	}
	if len(parts) == 0 {
		return "discard"
	}
	return strings.Join(parts, "; ")
}

func runScript(t *testing.T, script string, in Input) (Result, error) {
	t.Helper()
	s, err := Compile([]byte(script))
	if err != nil {
		t.Fatalf("Compile: %v\n%s", err, script)
	}
	if in.Header == nil {
		in.Header = []byte(rfcHeader)
	}
	switch in.From {
	case "":
		in.From = "coyote@desert.example.org"
	case "<>":
		in.From = "" // the null sender, as the host passes it
	}
	if in.To == "" {
		in.To = "alice@example.com"
	}
	if in.Body == nil {
		in.Body = func() ([]byte, error) { return []byte(rfcBody), nil }
	}
	in.Size = len(in.Header) + 2 + len(rfcBody)
	return s.Run(context.Background(), in)
}

// TestRunRFCExamples runs scripts from the RFCs' examples (adapted to the
// test message where they name other addresses), one or more per
// extension Petrel announces.
func TestRunRFCExamples(t *testing.T) {
	cases := []struct {
		name, script string
		in           Input
		want         string
	}{
		// RFC 5228 4.1 / 9.
		{"5228 fileinto discard", `require "fileinto";
if header :contains "from" "coyote" { discard; }
elsif header :contains ["subject"] ["$$$"] { discard; }
else { fileinto "INBOX"; }`, Input{}, "discard"},
		{"5228 implicit keep", `if header :contains "from" "roadrunner" { discard; }`, Input{}, "keep"},
		{"5228 keep and fileinto", `require "fileinto"; keep; fileinto "Archive";`, Input{}, "keep; fileinto Archive"},
		{"5228 fileinto INBOX is keep", `require "fileinto"; fileinto "inbox";`, Input{}, "keep"},
		{"5228 redirect", `if size :over 100 { redirect "acm@example.com"; }`, Input{}, "redirect acm@example.com"},
		{"5228 stop", `require "fileinto"; fileinto "A"; stop; fileinto "B";`, Input{}, "fileinto A"},
		{"5228 address and exists", `require "fileinto";
if allof (not exists ["X-Caffeine"], address :domain :is "from" "desert.example.org") { fileinto "desert"; }`, Input{}, "fileinto desert"},
		// RFC 5228 2.7.3 envelope.
		{"envelope", `require "envelope";
if envelope :all :is "from" "coyote@desert.example.org" { discard; }`, Input{}, "discard"},
		{"envelope null sender", `require "envelope";
if envelope :is "from" "" { discard; }`, Input{From: "<>"}, "discard"},
		// RFC 3894 copy.
		{"copy fileinto", `require ["copy", "fileinto"]; fileinto :copy "incoming";`, Input{}, "keep; fileinto incoming"},
		{"copy redirect", `require ["copy"]; redirect :copy "bob@example.net";`, Input{}, "keep; redirect bob@example.net"},
		// RFC 5490 mailbox.
		{"mailbox create", `require ["fileinto", "mailbox"]; fileinto :create "INBOX.folder";`, Input{}, "fileinto INBOX.folder :create"},
		{"mailboxexists", `require ["fileinto", "mailbox"];
if mailboxexists "Partners" { fileinto "Partners"; } else { fileinto :create "Other"; }`,
			Input{MailboxExists: func(_ context.Context, n string) (bool, error) { return n == "Other", nil }}, "fileinto Other :create"},
		// RFC 5429 reject and ereject.
		{"reject", `require ["reject"];
if header :contains "from" "coyote@desert.example.org" {
  reject text:
I am not taking mail from you, and I don't want
your birdseed, either!
.
;
}`, Input{}, "reject(false) I am not taking mail from you, and I don't want\r\nyour birdseed, either!"},
		{"ereject", `require ["ereject"];
if address :is "from" "coyote@desert.example.org" { ereject "I no longer accept mail from this address"; }`,
			Input{}, "reject(true) I no longer accept mail from this address"},
		// RFC 5232 imap4flags.
		{"imap4flags", `require ["imap4flags", "fileinto"];
if header :contains "from" "coyote" { setflag "\\Flagged"; fileinto "INBOX.From Coyote"; }`, Input{}, `fileinto INBOX.From Coyote; flags \Flagged`},
		{"imap4flags add remove", `require "imap4flags";
addflag ["\\Seen", "$Junk"]; removeflag "$Junk"; keep;`, Input{}, `keep; flags \Seen`},
		// RFC 5173 body.
		{"body raw", `require "body"; if body :raw :contains "MAKE MONEY FAST" { discard; }`, Input{}, "discard"},
		{"body text", `require ["body", "fileinto"]; if body :text :contains "birdseed" { fileinto "seeds"; }`, Input{}, "fileinto seeds"},
		// RFC 5229 variables.
		{"variables", `require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }`, Input{}, "fileinto INBOX.lists.sieve"},
		{"variables set", `require ["variables", "fileinto"];
set :lower "box" "ARCHIVE"; fileinto "${box}";`, Input{}, "fileinto archive"},
		// RFC 5231 relational.
		{"relational value", `require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"] { fileinto "Priority"; }
elsif address :count "gt" :comparator "i;ascii-numeric" ["to"] ["5"] { fileinto "SPAM"; }`, Input{}, "fileinto Priority"},
		{"relational count", `require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :count "ge" :comparator "i;ascii-numeric" "Received" "2" { fileinto "hops"; }`, Input{}, "fileinto hops"},
		// RFC 5233 subaddress.
		{"subaddress", `require ["envelope", "subaddress", "fileinto"];
if envelope :detail "to" "mta-filters" { fileinto "inbox.ietf-mta-filters"; }`,
			Input{To: "alice+mta-filters@example.com"}, "fileinto inbox.ietf-mta-filters"},
		{"subaddress user", `require ["envelope", "subaddress"];
if envelope :user "to" "alice" { discard; }`, Input{To: "alice+x@example.com"}, "discard"},
		// RFC 5260 date and index.
		{"date", `require ["date", "relational", "fileinto"];
if allof(header :contains "from" "coyote",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17") { fileinto "urgent"; }`, Input{}, "fileinto urgent"},
		{"currentdate", `require ["date", "relational"];
if currentdate :value "gt" "year" "2000" { discard; }`, Input{}, "discard"},
		{"header index", `require ["index", "variables", "fileinto"];
if header :index 2 :matches "Received" "from * by * for <*>; *" { fileinto "via-${1}"; }`, Input{}, "fileinto via-b.example"},
		{"header index last", `require ["index", "fileinto"];
if header :index 1 :last :contains "Received" "b.example" { fileinto "first-hop"; }`, Input{}, "fileinto first-hop"},
		{"header index out of range", `require ["index", "fileinto"];
if header :index 3 :contains "Received" "example" { fileinto "x"; }`, Input{}, "keep"},
		{"address index", `require ["index", "fileinto"];
if address :index 1 :is "from" "coyote@desert.example.org" { fileinto "coyote"; }`, Input{}, "fileinto coyote"},
		{"address parts", `require ["subaddress", "fileinto"];
if allof (address :localpart :is "to" "alice", address :domain :is "from" "DESERT.example.org", not address :detail :is "to" "") { fileinto "parts"; }`,
			Input{}, "fileinto parts"},
		{"address detail", `require ["subaddress", "fileinto"]; if address :detail "to" "lists" { fileinto "lists"; }`,
			Input{Header: []byte("To: Alice <alice+lists@example.com>, bob@example.com\r\n")}, "fileinto lists"},
		{"address count", `require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "three"; }`,
			Input{Header: []byte("To: a@x.example, B <b@x.example>\r\nCc: c@y.example\r\n")}, "fileinto three"},
		{"address unparsable", `require "fileinto"; if address :all :contains "from" "not an address" { fileinto "raw"; }`,
			Input{Header: []byte("From: not an address\r\n")}, "fileinto raw"},
		{"address matches variables", `require ["variables", "fileinto"]; if address :matches "from" "*@*.example.org" { fileinto "${2}"; }`, Input{}, "fileinto desert"},
		// draft-murchison-sieve-regex.
		{"regex casemap", `require ["regex", "fileinto"]; if header :regex "subject" "^[$]+ I HAVE" { fileinto "folded"; }`, Input{}, "fileinto folded"},
		{"regex octet", `require ["regex", "fileinto"]; if header :regex :comparator "i;octet" "subject" "I HAVE" { fileinto "x"; }`, Input{}, "keep"},
		{"address regex", `require ["regex", "variables", "fileinto"]; if address :regex :domain "from" "^([a-z]+)\\.example" { fileinto "${1}"; }`, Input{}, "fileinto desert"},
		{"regex", `require ["regex", "variables", "fileinto"];
if header :regex "subject" "^[$]+ (i) ([a-z]+)" { fileinto "${2}"; }`, Input{}, "fileinto have"},
		// RFC 5293 editheader.
		{"editheader", `require ["editheader"];
addheader :last "X-Sieve-Filtered" "<kim@job.example.com>";
deleteheader :index 1 "X-Spam-Status";
deleteheader "Received";`, Input{}, `keep; add X-Sieve-Filtered "<kim@job.example.com>"; delete X-Spam-Status ""`},
		// RFC 5230 vacation.
		{"vacation", `require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}`, Input{}, `keep; vacation days=7 subject="" from="" reason="I'm out -- call me at +1 304 555 0123" addrs=[]`},
		{"vacation days addresses", `require "vacation";
vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"] :subject "Away" "I'm away until October 19.";`,
			Input{}, `keep; vacation days=23 subject="Away" from="" reason="I'm away until October 19." addrs=[tjs@example.edu ts4z@landru.example.edu]`},
		{"vacation days clamped", `require "vacation"; vacation :days 365 "x";`, Input{}, `keep; vacation days=60 subject="" from="" reason="x" addrs=[]`},
		{"vacation null sender", `require "vacation"; vacation "x";`, Input{From: "<>"}, `keep`},
		// RFC 5235 spamtest and spamtestplus.
		{"spamtest untested", `require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }
elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3" { fileinto "INBOX.spam-trap"; }`, Input{}, "fileinto INBOX.unclassified"},
		{"spamtest scored", `require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }
elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3" { fileinto "INBOX.spam-trap"; }`,
			Input{Spam: Spam{Tested: true, Percent: 33}}, "fileinto INBOX.spam-trap"},
		{"spamtestplus", `require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }
elsif spamtest :percent :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.not-spam"; }
elsif spamtest :percent :value "lt" :comparator "i;ascii-numeric" "37" { fileinto "INBOX.spam-trap"; }
else { discard; }`, Input{Spam: Spam{Tested: true, Percent: 20}}, "fileinto INBOX.spam-trap"},
		{"spamtestplus not spam", `require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.not-spam"; }`,
			Input{Spam: Spam{Tested: true}}, "fileinto INBOX.not-spam"},
		{"mailu default spam", `require ["spamtestplus", "fileinto", "mailbox", "imap4flags", "relational", "comparator-i;ascii-numeric"];
if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "80" { setflag "\\seen"; fileinto :create "Junk"; stop; }`,
			Input{Spam: Spam{Tested: true, Percent: 86}}, `fileinto Junk :create; flags \Seen`},
		// RFC 5228 2.4.2.4 encoded-character.
		{"encoded-character", `require "encoded-character";
if header :contains "Subject" "$${hex:24 24}" { discard; }`, Input{}, "discard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := runScript(t, c.script, c.in)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := summary(res); got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestRunErrors: what fails at run time comes back as an error, never a
// panic, so the host keeps the message.
func TestRunErrors(t *testing.T) {
	many := "require \"fileinto\";\n"
	for i := range MaxFileInto + 1 {
		many += fmt.Sprintf("fileinto \"box%d\";\n", i)
	}
	cases := []struct{ name, script, want string }{
		{"too many redirects", `redirect "a@x.example"; redirect "b@x.example"; redirect "c@x.example";
redirect "d@x.example"; redirect "e@x.example"; redirect "f@x.example";`, "too many"},
		{"too many fileinto", many, "too many fileinto"},
		{"bad redirect address", `redirect "nobody";`, "bad address"},
		{"reject with keep", `require "reject"; keep; reject "no";`, "reject cannot be combined"},
		{"reject twice", `require "reject"; reject "no"; reject "again";`, "reject used twice"},
		{"reject with fileinto", `require ["reject", "fileinto"]; fileinto "x"; reject "no";`, "reject cannot be combined"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runScript(t, c.script, Input{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run error = %v, want %q", err, c.want)
			}
		})
	}
}

// TestRunConcurrent runs one compiled script from many goroutines (the
// cache shares it between deliveries); -race checks it.
func TestRunConcurrent(t *testing.T) {
	s, err := Compile([]byte(`require ["fileinto", "variables", "regex", "imap4flags"];
if header :regex "subject" "^[$]+ ([a-z]+)" { set "w" "${1}"; }
if header :matches "List-ID" "*<*@*" { addflag "$list"; fileinto "lists.${2}"; }`))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				res, err := s.Run(context.Background(), Input{From: "a@b.example", To: "c@d.example", Header: []byte(rfcHeader)})
				if err != nil || !slices.Equal(res.FileInto, []string{"lists.sieve"}) {
					errs <- fmt.Sprintf("%v %v", res.FileInto, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestEditHeader(t *testing.T) {
	hdr := "Received: one\r\nX-A: 1\r\nSubject: folded\r\n  line\r\nX-A: 2\r\n"
	s, err := Compile([]byte(`require ["editheader", "index"];
deleteheader :index 1 :last "X-A";
deleteheader "Subject";
addheader "X-Top" "café";
addheader :last "Subject" "new";`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), Input{From: "a@b.example", Header: []byte(hdr)})
	if err != nil {
		t.Fatal(err)
	}
	got := string(EditHeader([]byte(hdr), res.Edits))
	want := "X-Top: =?utf-8?q?caf=C3=A9?=\r\nReceived: one\r\nX-A: 1\r\nSubject: new\r\n"
	if got != want {
		t.Fatalf("EditHeader:\n%q\nwant\n%q", got, want)
	}
}

func TestErrorHeader(t *testing.T) {
	got := string(ErrorHeader("main", fmt.Errorf("line 3: too\nmany")))
	if got != "X-Sieve-Error: main: line 3: too many; message kept in INBOX\r\n" {
		t.Fatalf("ErrorHeader = %q", got)
	}
}
