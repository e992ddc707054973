package sieve

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		name, script, wantErr string
	}{
		{"empty", "", ""},
		{"keep", "keep;", ""},
		{"mailu default", `require ["variables","fileinto","mailbox","imap4flags","spamtest","spamtestplus","relational","comparator-i;ascii-numeric","vacation","editheader","index"];
if header :index 2 :matches "Received" "from * by * for <*>; *"
  { deleteheader "Delivered-To"; addheader "Delivered-To" "<${3}>"; }
if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "80"
  { setflag "\\seen"; fileinto :create "Junk"; stop; }
if not address :localpart :contains ["From","Reply-To"] ["noreply","no-reply"]
  { vacation :days 1 :from "\"Name\" <a@example.com>" :subject "away" "I am away"; }
`, ""},
		{"reject", "require \"reject\";\nreject \"no thanks\";", ""},
		{"ereject", "require \"ereject\";\nereject \"no\";", ""},
		{"reject without require", "\nreject \"no\";", "line 2: reject needs require"},
		{"unknown extension", "require [\"fileinto\",\n\"enotify\"];", "line 1: unsupported extension \"enotify\""},
		{"unknown command", "keep;\nfrobnicate;", "line 2: unsupported command: frobnicate"},
		{"syntax", "if true {\nkeep;\n", "line"},
		{"fileinto without require", "fileinto \"x\";", "line 1"},
		{"else without if", "keep;\nelse { keep; }", "line 2: else without a preceding if"},
		{"percent without spamtestplus", "require \"spamtest\";\nif spamtest :percent \"5\" { keep; }", "line 2: :percent needs require \"spamtestplus\""},
		{"spamtest without value", "require \"spamtest\";\nif spamtest :value \"gt\" { keep; }", "line 2: spamtest takes one value"},
		{"index without require", "if header :index 1 \"X\" \"y\" { keep; }", "line 1: :index needs require \"index\""},
		{"stray brace", "keep;\n}\ndiscard;", "line 2: unexpected \"}\""},
		{"missing require wording", "fileinto \"x\";", `line 1: missing require "fileinto"`},
		{"missing argument", "redirect;", "line 1: argument 1 is missing"},
		{"testsuite", "test_binary_load \"x\";", "unsupported command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(c.script))
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Check = %v, want error containing %q", err, c.wantErr)
			}
		})
	}
}

func TestExtensions(t *testing.T) {
	got := strings.Join(Extensions(), " ")
	for _, want := range []string{"fileinto", "reject", "ereject", "spamtest", "spamtestplus", "vacation", "editheader", "comparator-i;ascii-numeric"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("Extensions() = %s, missing %s", got, want)
		}
	}
}
