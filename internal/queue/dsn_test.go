package queue

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	arrival = time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	failAt  = time.Date(2025, 3, 1, 9, 30, 7, 0, time.UTC)
)

const origHeaders = "Received: from client.example.com (client.example.com [192.0.2.7])\r\n" +
	"\tby mail.example.com with ESMTPSA id 1f2e3d; Sat, 1 Mar 2025 09:30:00 +0000\r\n" +
	"From: Alice <alice@example.com>\r\n" +
	"To: bob@remote.example, carol@remote.example\r\n" +
	"Subject: Lunch on Friday?\r\n" +
	"Date: Sat, 1 Mar 2025 10:29:58 +0100\r\n" +
	"Message-ID: <lunch-1@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n"

func goldenDSNs() map[string]*dsn {
	base := func() *dsn {
		return &dsn{Hostname: "mail.example.com", ID: "0123456789abcdef0123", MessageID: "msg-42",
			Sender: "alice@example.com", Arrival: arrival, Date: failAt, Lifetime: 5 * 24 * time.Hour,
			RetryUntil: arrival.Add(5 * 24 * time.Hour), Headers: []byte(origHeaders)}
	}
	failed := base()
	failed.Recipients = []dsnRecipient{
		{Recipient: "bob@remote.example", LastAttempt: failAt, Err: &DeliveryError{Permanent: true, Code: 550,
			Enhanced: "5.1.1", Message: "5.1.1 <bob@remote.example>: Recipient address rejected: User unknown in virtual mailbox table",
			Remote: "mx1.remote.example"}},
		{Recipient: "carol@remote.example", LastAttempt: failAt, Err: &DeliveryError{Permanent: true, Code: 552,
			Enhanced: "5.2.2", Message: "Mailbox full", Remote: "mx1.remote.example"}},
	}
	expired := base()
	expired.Date = arrival.Add(5 * 24 * time.Hour)
	expired.Recipients = []dsnRecipient{
		{Recipient: "bob@remote.example", Expired: true, LastAttempt: expired.Date,
			Err: &DeliveryError{Message: "connect to mx1.remote.example[198.51.100.25]:25: connection refused"}},
	}
	delayed := base()
	delayed.Date = arrival.Add(5 * time.Minute)
	delayed.Delayed = true
	delayed.Recipients = []dsnRecipient{
		{Recipient: "bob@remote.example", LastAttempt: delayed.Date, Err: &DeliveryError{Code: 451, Enhanced: "4.7.1",
			Message: "Greylisted, please try again in 180 seconds\nsee https://remote.example/greylisting", Remote: "mx1.remote.example"}},
	}
	utf8 := base()
	utf8.Sender = "jörg@example.com"
	utf8.Headers = []byte("From: Jörg <jörg@example.com>\r\nSubject: Grüße\r\n")
	utf8.Recipients = []dsnRecipient{
		{Recipient: "zoë@bücher.example", LastAttempt: failAt, Err: &DeliveryError{Permanent: true, Code: 553,
			Enhanced: "5.1.3", Message: "Adresse ungültig", Remote: "mx.xn--bcher-kva.example"}},
	}
	policy := base()
	policy.Headers = nil
	policy.Recipients = []dsnRecipient{
		{Recipient: "dan@remote.example", LastAttempt: failAt, Err: &DeliveryError{Permanent: true, Code: 554,
			Message: "Message rejected as spam", Remote: "mx2.remote.example"}},
	}
	// RFC 3461: RET=FULL, ENVID and ORCPT.
	full := base()
	full.EnvID = "QQ314159"
	full.Full = []byte(origHeaders + "\r\nThe body, returned whole.\r\n")
	full.Recipients = []dsnRecipient{
		{Recipient: "bob@remote.example", ORcpt: "rfc822;Bob@Alias.Example", LastAttempt: failAt, Err: &DeliveryError{Permanent: true, Code: 550,
			Enhanced: "5.1.1", Message: "User unknown", Remote: "mx1.remote.example"}},
	}
	relayed := base()
	relayed.Success = "relayed"
	relayed.EnvID = "QQ314159"
	relayed.Recipients = []dsnRecipient{
		{Recipient: "bob@remote.example", ORcpt: "rfc822;bob@remote.example", LastAttempt: failAt,
			Err: &DeliveryError{Code: 250, Enhanced: "2.0.0", Message: "2.0.0 Ok: queued as 4XyZ", Remote: "mx1.remote.example"}},
	}
	return map[string]*dsn{"failed": failed, "expired": expired, "delayed": delayed, "utf8": utf8, "policy-noheaders": policy,
		"ret-full": full, "relayed": relayed}
}

func TestDSNGolden(t *testing.T) {
	for name, d := range goldenDSNs() {
		t.Run(name, func(t *testing.T) {
			got := d.Build()
			golden(t, "dsn-"+name+".golden", got)
			checkDSN(t, got, d)
		})
	}
}

// golden compares got with testdata/name; -update rewrites the file.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
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

// parsedDSN is a DSN as an independent parser (the standard library)
// sees it.
type parsedDSN struct {
	header     mail.Header
	types      []string // content types of the parts
	text       string   // the human-readable part, decoded
	perMessage textproto.MIMEHeader
	perRcpt    []textproto.MIMEHeader
	headers    string // the returned headers part
}

func parseDSN(t *testing.T, raw []byte) parsedDSN {
	t.Helper()
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i+1, len(line))
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("DSN does not parse: %v", err)
	}
	p := parsedDSN{header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		body, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		ct := part.Header.Get("Content-Type")
		p.types = append(p.types, strings.SplitN(ct, ";", 2)[0])
		switch len(p.types) {
		case 1:
			if part.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
				body, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
			}
			p.text = string(body)
		case 2:
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			if p.perMessage, err = tr.ReadMIMEHeader(); err != nil && err != io.EOF {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					p.perRcpt = append(p.perRcpt, h)
				}
				if err != nil {
					break
				}
			}
		case 3:
			p.headers = string(body)
		}
	}
	return p
}

// checkDSN checks what every DSN must say.
func checkDSN(t *testing.T, raw []byte, d *dsn) parsedDSN {
	t.Helper()
	p := parseDSN(t, raw)
	h := p.header
	if h.Get("From") != "Mail Delivery System <MAILER-DAEMON@"+d.Hostname+">" || h.Get("To") != "<"+d.Sender+">" ||
		h.Get("Auto-Submitted") != "auto-replied" || h.Get("Message-ID") == "" || h.Get("Date") == "" {
		t.Errorf("DSN header: %v", h)
	}
	wantSubject := "Undelivered Mail Returned to Sender"
	if d.Delayed {
		wantSubject = "Delayed Mail (still being retried)"
	}
	if d.Success != "" {
		wantSubject = "Successful Mail Delivery Report"
	}
	if h.Get("Subject") != wantSubject {
		t.Errorf("Subject %q, want %q", h.Get("Subject"), wantSubject)
	}
	wantTypes := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if d.global() {
		wantTypes = []string{"text/plain", "message/global-delivery-status", "message/global-headers"}
	}
	if len(d.Headers) == 0 {
		wantTypes = wantTypes[:2]
	}
	if len(d.Full) > 0 {
		wantTypes = []string{"text/plain", "message/delivery-status", "message/rfc822"} // RET=FULL
	}
	if strings.Join(p.types, " ") != strings.Join(wantTypes, " ") {
		t.Errorf("parts %v, want %v", p.types, wantTypes)
	}
	if got := p.perMessage.Get("Reporting-MTA"); got != "dns; "+d.Hostname {
		t.Errorf("Reporting-MTA %q", got)
	}
	if p.perMessage.Get("Arrival-Date") == "" {
		t.Error("no Arrival-Date")
	}
	if len(p.perRcpt) != len(d.Recipients) {
		t.Fatalf("%d recipient groups, want %d", len(p.perRcpt), len(d.Recipients))
	}
	for i, r := range d.Recipients {
		f := p.perRcpt[i]
		if !strings.HasSuffix(f.Get("Final-Recipient"), "; "+r.Recipient) {
			t.Errorf("Final-Recipient %q, want %s", f.Get("Final-Recipient"), r.Recipient)
		}
		action, class := "failed", "5"
		if d.Delayed {
			action, class = "delayed", "4"
		}
		if d.Success != "" {
			action, class = d.Success, "2"
		}
		if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && f.Get("Original-Recipient") != typ+"; "+addr {
			t.Errorf("Original-Recipient %q, want %s; %s", f.Get("Original-Recipient"), typ, addr)
		}
		if r.Expired {
			class = "4"
		}
		if f.Get("Action") != action || !strings.HasPrefix(f.Get("Status"), class+".") {
			t.Errorf("recipient %s: Action %q Status %q, want %s and %s.x.x", r.Recipient, f.Get("Action"), f.Get("Status"), action, class)
		}
		if r.Err.Remote != "" && f.Get("Remote-MTA") != "dns; "+r.Err.Remote {
			t.Errorf("Remote-MTA %q", f.Get("Remote-MTA"))
		}
		if r.Err.Code != 0 && !strings.HasPrefix(f.Get("Diagnostic-Code"), "smtp; "+strconv.Itoa(r.Err.Code)+" ") {
			t.Errorf("Diagnostic-Code %q", f.Get("Diagnostic-Code"))
		}
		if f.Get("Last-Attempt-Date") == "" || (d.Delayed && f.Get("Will-Retry-Until") == "") {
			t.Errorf("dates missing: %v", f)
		}
		if !strings.Contains(p.text, "<"+r.Recipient+">") {
			t.Errorf("the text does not name %s:\n%s", r.Recipient, p.text)
		}
		if !strings.Contains(strings.Join(strings.Fields(p.text), " "), strings.Join(strings.Fields(reply(r.Err)), " ")) {
			t.Errorf("the text does not quote the reply %q:\n%s", reply(r.Err), p.text)
		}
	}
	if !strings.Contains(p.text, "What you can do:") {
		t.Errorf("the text gives no advice:\n%s", p.text)
	}
	if d.EnvID != "" && p.perMessage.Get("Original-Envelope-Id") != d.EnvID {
		t.Errorf("Original-Envelope-Id %q, want %q", p.perMessage.Get("Original-Envelope-Id"), d.EnvID)
	}
	if want := string(d.Headers); len(d.Full) > 0 && p.headers != string(d.Full) {
		t.Errorf("returned message %q, want %q", p.headers, d.Full)
	} else if len(d.Full) == 0 && want != p.headers {
		t.Errorf("returned headers %q, want %q", p.headers, d.Headers)
	}
	return p
}

func TestReadHeaders(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name, in, want string
		limit          int
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n", 1000},
		{"lf", "A: 1\nB: 2\n\nbody\n", "A: 1\r\nB: 2\r\n", 1000},
		{"folded", "A: 1\r\n  more\r\nB: 2\r\n\r\n", "A: 1\r\n  more\r\nB: 2\r\n", 1000},
		{"no body", "A: 1\r\nB: 2", "A: 1\r\nB: 2\r\n", 1000},
		{"empty", "", "", 1000},
		{"body only", "\r\nhello\r\n", "", 1000},
		{"bare cr", "A: 1\r2\r\n\r\n", "A: 1 2\r\n", 1000},
		{"limit cuts whole fields", "A: 1\r\nB: 2\r\n cont\r\nC: 3\r\n\r\n", "A: 1\r\n", 14},
		{"long line", "A: " + long + "\r\nB: 2\r\n\r\n", "A: " + long[:995] + "\r\nB: 2\r\n", 100000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readHeaders(strings.NewReader(tc.in), tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("readHeaders(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIsDSN(t *testing.T) {
	tests := []struct {
		hdr  string
		want bool
	}{
		{"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"x\"\r\n", true},
		{"content-type: Multipart/Report; Report-Type=\"Delivery-Status\"; boundary=x\r\n", true},
		{"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n", false},
		{"Content-Type: text/plain\r\n", false},
		{"Subject: multipart/report; report-type=delivery-status\r\n", false},
		{"Content-Type: ;;;\r\n", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := isDSN([]byte(tc.hdr)); got != tc.want {
			t.Errorf("isDSN(%q) = %v, want %v", tc.hdr, got, tc.want)
		}
	}
}

func TestFold(t *testing.T) {
	s := "Diagnostic-Code: smtp; 550 5.1.1 " + strings.Repeat("word ", 40) + strings.Repeat("y", 1200)
	got := fold(s)
	for _, l := range strings.Split(got, "\r\n") {
		if len(l) > 998 {
			t.Errorf("folded line of %d octets", len(l))
		}
	}
	if strings.ReplaceAll(got, "\r\n", "") != s[:len(s)-1200+990] {
		t.Errorf("folding changed the text:\n%q", got)
	}
}

// FuzzOriginalHeaders feeds arbitrary messages and replies through the
// header reader and the DSN writer: the DSN must always parse, keep its
// line limits and list every recipient.
func FuzzOriginalHeaders(f *testing.F) {
	f.Add([]byte(origHeaders+"\r\nbody\r\n"), "550 rejected", "bob@remote.example")
	f.Add([]byte("A: 1\nB:\n\tx\n\nbody"), "line1\nline2", "x@y")
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status\r\n\r\n"), "", "ü@ü.example")
	f.Fuzz(func(t *testing.T, msg []byte, text, rcpt string) {
		hdr, err := readHeaders(bytes.NewReader(msg), 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr) > 4096 || (len(hdr) > 0 && !bytes.HasSuffix(hdr, []byte("\r\n"))) {
			t.Fatalf("headers %q", hdr)
		}
		isDSN(hdr)
		rcpt = strings.Map(func(r rune) rune {
			if r <= ' ' || r == '<' || r == '>' || r == 0x7f || r == '\uFFFD' {
				return -1
			}
			return r
		}, rcpt)
		if rcpt == "" || len(rcpt) > 200 {
			return
		}
		d := &dsn{Hostname: "mail.example.com", ID: "fuzz", MessageID: "m", Sender: "a@example.com",
			Arrival: arrival, Date: failAt, Headers: hdr, Lifetime: time.Hour,
			Recipients: []dsnRecipient{{Recipient: rcpt, LastAttempt: failAt,
				Err: &DeliveryError{Permanent: true, Code: 550, Message: text, Remote: "mx.example"}}}}
		raw := d.Build()
		p := parseDSN(t, raw)
		if len(p.perRcpt) != 1 || len(p.types) < 2 {
			t.Fatalf("DSN parts %v, recipients %d:\n%s", p.types, len(p.perRcpt), raw)
		}
	})
}
