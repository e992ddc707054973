package inbound

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/petrelmail/petrel/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name; -update rewrites the file.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

func parseHeader(t *testing.T, raw string) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(strings.ReplaceAll(raw, "\n", "\r\n") + "\r\n")))
	if err != nil {
		t.Fatalf("header %q: %v", raw, err)
	}
	return h
}

func TestReplySender(t *testing.T) {
	cases := []struct {
		sender, want, reason string
	}{
		{"", "", "null sender"},
		{"Someone@Remote.Test", "someone@remote.test", ""},
		{"MAILER-DAEMON@remote.test", "", "system address"},
		{"mailer-daemon@remote.test", "", "system address"},
		{"LISTSERV@lists.test", "", "system address"},
		{"majordomo@lists.test", "", "system address"},
		{"golang-nuts-request@lists.test", "", "system address"},
		{"owner-golang@lists.test", "", "system address"},
		{"noreply@shop.test", "", "no-reply sender"},
		{"NoReply-billing@shop.test", "", "no-reply sender"},
		{"info.no-reply@shop.test", "", "no-reply sender"},
		{"do-not-reply@shop.test", "do-not-reply@shop.test", ""}, // Mailu matches only noreply / no-reply
		{"owner@remote.test", "owner@remote.test", ""},
		{"requests@remote.test", "requests@remote.test", ""},
		{"not an address", "", "unusable sender"},
	}
	for _, tc := range cases {
		got, reason := replySender(tc.sender)
		if got != tc.want || reason != tc.reason {
			t.Errorf("replySender(%q) = %q, %q; want %q, %q", tc.sender, got, reason, tc.want, tc.reason)
		}
	}
}

func TestHeaderSuppression(t *testing.T) {
	base := "From: Bob <bob@remote.test>\nTo: alice@example.com\nSubject: hi\n"
	cases := []struct {
		name, extra, want string
	}{
		{"plain", "", ""},
		{"List-Id", "List-Id: <golang-nuts.googlegroups.com>\n", "mailing list"},
		{"List-Unsubscribe", "List-Unsubscribe: <mailto:leave@lists.test>\n", "mailing list"},
		{"List-Post", "List-Post: <mailto:list@lists.test>\n", "mailing list"},
		{"List-Owner", "List-Owner: <mailto:owner@lists.test>\n", "mailing list"},
		{"List-Subscribe", "List-Subscribe: <mailto:join@lists.test>\n", "mailing list"},
		{"List-Help", "List-Help: <mailto:help@lists.test>\n", "mailing list"},
		{"List-Archive", "List-Archive: <https://lists.test/>\n", "mailing list"},
		{"Auto-Submitted no", "Auto-Submitted: no\n", ""},
		{"Auto-Submitted No with comment", "Auto-Submitted: No (a person wrote this)\n", ""},
		{"Auto-Submitted auto-replied", "Auto-Submitted: auto-replied\n", "auto-submitted"},
		{"Auto-Submitted auto-generated", "Auto-Submitted: auto-generated\n", "auto-submitted"},
		{"Auto-Submitted with parameter", "Auto-Submitted: auto-replied; owner-email=\"x@y.test\"\n", "auto-submitted"},
		{"Auto-Submitted vacation comment", "Auto-Submitted: auto-replied (vacation)\n", "auto-submitted"},
		{"Auto-Submitted twice, one not no", "Auto-Submitted: no\nAuto-Submitted: auto-generated\n", "auto-submitted"},
		{"Precedence bulk", "Precedence: bulk\n", "precedence bulk"},
		{"Precedence list", "Precedence: List\n", "precedence list"},
		{"Precedence junk", "Precedence:  junk \n", "precedence junk"},
		{"Precedence first-class", "Precedence: first-class\n", ""},
		{"X-Auto-Response-Suppress All", "X-Auto-Response-Suppress: All\n", "x-auto-response-suppress"},
		{"X-Auto-Response-Suppress OOF in list", "X-Auto-Response-Suppress: DR, OOF, AutoReply\n", "x-auto-response-suppress"},
		{"X-Auto-Response-Suppress others", "X-Auto-Response-Suppress: DR, RN, NRN\n", ""},
		{"Return-Path null", "Return-Path: <>\n", "null return path"},
		{"Return-Path null spaced", "Return-Path: < >\n", "null return path"},
		{"Return-Path address", "Return-Path: <bob@remote.test>\n", ""},
		{"Reply-To no-reply", "Reply-To: Shop <no-reply@shop.test>\n", "no-reply sender"},
		{"Reply-To second address noreply", "Reply-To: a@shop.test, NOREPLY@shop.test\n", "no-reply sender"},
		{"Reply-To person", "Reply-To: Support <support@shop.test>\n", ""},
		{"Reply-To unparsable with noreply", "Reply-To: <<noreply@shop.test\n", "no-reply sender"},
		{"Reply-To unparsable without", "Reply-To: <<bob@shop.test\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := parseHeader(t, base+tc.extra)
			if got := headerSuppression(&h); got != tc.want {
				t.Errorf("headerSuppression = %q, want %q", got, tc.want)
			}
		})
	}
	fromCases := []struct {
		from, want string
	}{
		{"noreply@shop.test", "no-reply sender"},
		{"\"Shop\" <No-Reply@shop.test>", "no-reply sender"},
		{"\"Noreply fan\" <bob@remote.test>", ""}, // Mailu looks at the local part only
		{"=?koi8-r?B?4czJ08E=?= <alisa@remote.test>", ""},
		{"=?utf-8?q?Boutique?= <noreply@shop.test>", "no-reply sender"},
	}
	for _, tc := range fromCases {
		h := parseHeader(t, "From: "+tc.from+"\nSubject: x\n")
		if got := headerSuppression(&h); got != tc.want {
			t.Errorf("From %q: headerSuppression = %q, want %q", tc.from, got, tc.want)
		}
	}
}

func replyUser(mod ...func(*store.User)) *store.User {
	u := store.NewUser("alice", "example.com", 0, 80)
	u.ReplyEnabled = true
	u.ReplySubject = "Out of office"
	u.ReplyBody = "I am away until Monday.\nRegards, Alice"
	for _, m := range mod {
		m(&u)
	}
	return &u
}

// replyFields parses a built reply with the standard library, an
// independent reader.
func replyFields(t *testing.T, raw []byte) (*mail.Message, string) {
	t.Helper()
	for _, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 998 {
			t.Fatalf("line of %d characters", len(l))
		}
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("bare LF in the reply")
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reply does not parse: %v\n%s", err, raw)
	}
	b, _ := io.ReadAll(m.Body)
	return m, string(b)
}

func TestBuildReply(t *testing.T) {
	now := time.Date(2025, 3, 4, 10, 30, 0, 0, time.UTC)
	orig := parseHeader(t, "From: \"Bob B.\" <Bob@Remote.test>\nSubject: =?utf-8?q?Caf=C3=A9?= plans\nMessage-ID: <m1@remote.test>\nReferences: <m0@remote.test>\n")
	dec := new(mime.WordDecoder)

	t.Run("fields", func(t *testing.T) {
		raw, err := buildReply(replyInput{user: replyUser(), envSender: "bob@remote.test", orig: &orig, now: now, messageID: "r1@mail.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		m, body := replyFields(t, raw)
		want := map[string]string{
			"From":                      "alice@example.com",
			"To":                        "\"Bob B.\" <Bob@Remote.test>",
			"Subject":                   "Out of office",
			"Date":                      "Tue, 4 Mar 2025 10:30:00 +0000",
			"Message-Id":                "<r1@mail.example.com>",
			"In-Reply-To":               "<m1@remote.test>",
			"References":                "<m0@remote.test> <m1@remote.test>",
			"Auto-Submitted":            "auto-replied",
			"Precedence":                "bulk",
			"X-Auto-Response-Suppress":  "All",
			"Content-Type":              "text/plain; charset=utf-8",
			"Content-Transfer-Encoding": "7bit",
		}
		for k, v := range want {
			if got := m.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if body != "I am away until Monday.\r\nRegards, Alice\r\n" {
			t.Errorf("body %q", body)
		}
	})

	t.Run("default subject, display name, 8-bit body, no Message-ID", func(t *testing.T) {
		noID := parseHeader(t, "From: bob@remote.test\nSubject: =?utf-8?q?Caf=C3=A9?= plans\n")
		u := replyUser(func(u *store.User) {
			u.ReplySubject = ""
			u.DisplayedName = "Zoë \"Z\" Example"
			u.ReplyBody = "Je suis absente.\r\nÀ bientôt\r"
		})
		raw, err := buildReply(replyInput{user: u, envSender: "bob@remote.test", orig: &noID, now: now, messageID: "r2@x"})
		if err != nil {
			t.Fatal(err)
		}
		m, body := replyFields(t, raw)
		subj, _ := dec.DecodeHeader(m.Header.Get("Subject"))
		if subj != "Auto: Café plans" {
			t.Errorf("Subject %q", subj)
		}
		from, err := mail.ParseAddress(m.Header.Get("From"))
		if err != nil || from.Name != "Zoë \"Z\" Example" || from.Address != "alice@example.com" {
			t.Errorf("From %q: %+v %v", m.Header.Get("From"), from, err)
		}
		if m.Header.Get("In-Reply-To") != "" || m.Header.Get("References") != "" {
			t.Error("In-Reply-To/References without an original Message-ID")
		}
		if m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
			t.Errorf("CTE %q", m.Header.Get("Content-Transfer-Encoding"))
		}
		if !strings.Contains(body, "=C3=80 bient=C3=B4t") {
			t.Errorf("body %q", body)
		}
	})

	t.Run("no subject at all", func(t *testing.T) {
		bare := parseHeader(t, "From: bob@remote.test\n")
		raw, _ := buildReply(replyInput{user: replyUser(func(u *store.User) { u.ReplySubject = " " }), envSender: "bob@remote.test", orig: &bare, now: now, messageID: "r@x"})
		m, _ := replyFields(t, raw)
		if got := m.Header.Get("Subject"); got != "Automated reply" {
			t.Errorf("Subject %q", got)
		}
	})

	t.Run("header injection", func(t *testing.T) {
		u := replyUser(func(u *store.User) {
			u.ReplySubject = "Away\r\nBcc: victim@remote.test"
			u.DisplayedName = "Alice\r\nX-Evil: 1"
		})
		raw, _ := buildReply(replyInput{user: u, envSender: "bob@remote.test", orig: &orig, now: now, messageID: "r@x"})
		m, _ := replyFields(t, raw)
		if m.Header.Get("Bcc") != "" || m.Header.Get("X-Evil") != "" {
			t.Fatalf("CR/LF in the user's settings added fields:\n%s", raw)
		}
		if got := m.Header.Get("Subject"); got != "Away Bcc: victim@remote.test" {
			t.Errorf("Subject %q", got)
		}
	})

	t.Run("long subject folds and is cut", func(t *testing.T) {
		u := replyUser(func(u *store.User) { u.ReplySubject = strings.Repeat("très longue phrase ", 30) })
		raw, _ := buildReply(replyInput{user: u, envSender: "bob@remote.test", orig: &orig, now: now, messageID: "r@x"})
		for _, l := range strings.Split(string(raw), "\r\n") {
			if len(l) > 78 && !strings.HasPrefix(l, " =?") {
				t.Errorf("unfolded line of %d: %q", len(l), l)
			}
		}
		m, _ := replyFields(t, raw)
		subj, err := dec.DecodeHeader(m.Header.Get("Subject"))
		if err != nil || len([]rune(subj)) != maxReplySubject || !strings.HasSuffix(subj, "...") {
			t.Errorf("Subject of %d runes (%v): %q", len([]rune(subj)), err, subj)
		}
	})

	t.Run("To falls back to the envelope", func(t *testing.T) {
		for _, hdr := range []string{"Subject: x\n", "From: undisclosed-recipients:;\n", "From: <<broken\n"} {
			h := parseHeader(t, hdr)
			raw, _ := buildReply(replyInput{user: replyUser(), envSender: "srs0=ab=cd=remote.test=bob@fwd.test", orig: &h, now: now, messageID: "r@x"})
			m, _ := replyFields(t, raw)
			if got := m.Header.Get("To"); got != "<srs0=ab=cd=remote.test=bob@fwd.test>" {
				t.Errorf("%q: To %q", hdr, got)
			}
		}
		// Sender comes before From (Dovecot's order).
		h := parseHeader(t, "From: bob@remote.test\nSender: Secretary <sec@remote.test>\n")
		raw, _ := buildReply(replyInput{user: replyUser(), envSender: "bob@remote.test", orig: &h, now: now, messageID: "r@x"})
		if m, _ := replyFields(t, raw); m.Header.Get("To") != "\"Secretary\" <sec@remote.test>" {
			t.Errorf("To %q, want the Sender", m.Header.Get("To"))
		}
	})
}

// FuzzAutoReply feeds arbitrary original headers and user settings to the
// suppression rules and the reply builder: the reply always parses, has
// only CRLF line ends and lines of at most 998 characters, and nothing the
// sender or the user wrote adds a header field.
func FuzzAutoReply(f *testing.F) {
	f.Add([]byte(strings.ReplaceAll(origMsg, "\n", "\r\n")), "Out of office", "Alice", "Away.\nBack soon")
	f.Add([]byte("From: =?koi8-r?B?4czJ08E=?= <a@b.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nReferences: <a@b> <c@d>\r\n\r\n"), "", "Zoë \"Z\"", "Je suis absente.")
	f.Add([]byte("Sender: <<x\r\nFrom: \"x\r\n y\" <x@y.test>\r\nMessage-ID: <\r\n\r\n"), "A\r\nBcc: x@y", "N\nX-Evil: 1", "\x00\xff")
	now := time.Date(2025, 3, 4, 10, 30, 0, 0, time.UTC)
	fixed := []string{"From", "To", "Subject", "Date", "Message-Id", "In-Reply-To", "References", "Auto-Submitted",
		"Precedence", "X-Auto-Response-Suppress", "Mime-Version", "Content-Type", "Content-Transfer-Encoding"}
	f.Fuzz(func(t *testing.T, orig []byte, subject, name, body string) {
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(orig)))
		if err != nil {
			return // the replier gives up on such a message
		}
		_ = headerSuppression(&h)
		u := replyUser(func(u *store.User) { u.ReplySubject, u.DisplayedName, u.ReplyBody = subject, name, body })
		raw, err := buildReply(replyInput{user: u, envSender: "bob@remote.test", orig: &h, now: now, messageID: "r@x"})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := replyFields(t, raw)
		for k := range m.Header {
			if !slices.Contains(fixed, k) {
				t.Fatalf("unexpected field %q in:\n%q", k, raw)
			}
		}
		for _, k := range fixed[:5] {
			if len(m.Header[k]) != 1 {
				t.Fatalf("%d %s fields in:\n%q", len(m.Header[k]), k, raw)
			}
		}
		// What the user wrote comes back intact (one line, clipped).
		dec := new(mime.WordDecoder)
		if got, err := dec.DecodeHeader(m.Header.Get("Subject")); err != nil || got != replySubject(u.ReplySubject, &h) {
			t.Fatalf("Subject decodes to %q, %v; want %q", got, err, replySubject(u.ReplySubject, &h))
		}
		if want := clip(oneLine(name), maxReplyName); want != "" {
			from, err := mail.ParseAddress(m.Header.Get("From"))
			if err != nil || from.Name != want || from.Address != u.Email {
				t.Fatalf("From %q parses to %+v, %v; want name %q", m.Header.Get("From"), from, err, want)
			}
		}
	})
}

func TestEncodeWords(t *testing.T) {
	dec := new(mime.WordDecoder)
	for _, s := range []string{
		"plain ascii stays",
		"Café",
		"Zoë \"Z\" Example = ? _ end",
		strings.Repeat("é", 100),
		strings.Repeat("ab c", 30) + "ü" + strings.Repeat("x", 70),
		"日本語のテキスト、とても長い件名です。" + strings.Repeat("語", 40),
		"emoji 🎉🎉🎉 " + strings.Repeat("🎉", 30),
	} {
		for _, kind := range []byte{'q', 'b'} {
			enc := encodeWords(s, kind)
			for _, w := range strings.Split(enc, " ") {
				if strings.HasPrefix(w, "=?") && len(w) > maxEncodedWord {
					t.Errorf("%c %q: encoded-word of %d characters", kind, s, len(w))
				}
			}
			if got, err := dec.DecodeHeader(enc); err != nil || got != s {
				t.Errorf("%c %q: decodes to %q, %v", kind, s, got, err)
			}
			if kind == 'b' {
				if a, err := mail.ParseAddress(enc + " <a@b.test>"); err != nil || a.Name != s {
					t.Errorf("as a display name %q: %+v, %v", enc, a, err)
				}
			}
		}
	}
}
