package filter

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
)

func TestSpamHeadersAndPercent(t *testing.T) {
	for _, tc := range []struct {
		score   float64
		flagged bool
		want    string
	}{
		{0.5, false, "X-Spamd-Bar: /"},
		{-2.7, false, "X-Spamd-Bar: --"},
		{3.9, false, "X-Spam-Level: ***|X-Spamd-Bar: +++"},
		{6, true, "X-Spam: Yes|X-Spam-Level: ******|X-Spamd-Bar: ++++++"},
	} {
		var got []string
		for _, h := range spamHeaders(tc.score, tc.flagged) {
			got = append(got, h.Name+": "+h.Value)
		}
		if strings.Join(got, "|") != tc.want {
			t.Errorf("spamHeaders(%v) = %v, want %s", tc.score, got, tc.want)
		}
	}
	// Mailu's docs: score 10 is 66 % and stays in INBOX at 80; 13 is 86 %.
	for score, want := range map[float64]int{-3: 0, 0.9: 0, 10: 66, 12.99: 80, 13: 86, 15: 100, 40: 100} {
		if got := SpamPercent(score); got != want {
			t.Errorf("SpamPercent(%v) = %d, want %d", score, got, want)
		}
	}
	if IsSpamFor(12.5, 80) || !IsSpamFor(13, 80) || IsSpamFor(20, 100) {
		t.Error("IsSpamFor is not 'percent > threshold'")
	}
}

// rspamd's actions as Mailu maps them, and its milter header forms, from
// a stand-in HTTP server (the real one is in scanners_test.go).
func TestRspamdActions(t *testing.T) {
	var mu sync.Mutex
	reply := ""
	var gotHeaders http.Header
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/checkv2" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotHeaders = r.Header.Clone()
		gotBody = string(b)
		rep := reply
		mu.Unlock()
		if rep == "slow" {
			time.Sleep(2 * time.Second)
		}
		io.WriteString(w, rep)
	}))
	defer srv.Close()
	rc, err := NewRspamdClient(RspamdOptions{Address: strings.TrimPrefix(srv.URL, "http://"), Timeout: 500 * time.Millisecond, Hostname: "mx.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{Rspamd: rc})
	m := msgOf(plainMsg)
	m.RemoteIP = netip.MustParseAddr("::ffff:192.0.2.7")
	m.Rcpts = []string{"a@example.test", "b@example.test"}
	m.Size = 3 // the spooled size; Open adds the checks' header fields
	for _, tc := range []struct {
		reply  string
		action Action
		code   int
		text   string
	}{
		{`{"action":"reject","score":16,"messages":{"smtp_message":"Spam message rejected"}}`, Reject, 550, "Spam message rejected"},
		{`{"action":"reject","score":16}`, Reject, 550, "Spam message rejected"},
		{`{"action":"soft reject","score":5,"messages":{"smtp_message":"Try again later"}}`, TempFail, 451, "Try again later"},
		{`{"action":"greylist","score":4.2}`, TempFail, 451, "Try again later"},
		{`{"action":"add header","score":6.5}`, Accept, 0, ""},
		{`{"action":"no action","score":-1}`, Accept, 0, ""},
		{`{"score":1}`, TempFail, 451, "Spam scanner unavailable, try again later"},
		{`not json`, TempFail, 451, "Spam scanner unavailable, try again later"},
		{"slow", TempFail, 451, "Spam scanner unavailable, try again later"},
	} {
		mu.Lock()
		reply = tc.reply
		mu.Unlock()
		v, err := f.Check(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if v.Action != tc.action || v.Code != tc.code || v.Text != tc.text {
			t.Errorf("%s: %+v", tc.reply, v)
		}
		if tc.code == 451 || tc.code == 550 {
			if !strings.HasPrefix(v.Enhanced, fmt.Sprint(tc.code/100)+".7.1") {
				t.Errorf("%s: enhanced %q", tc.reply, v.Enhanced)
			}
		}
	}
	mu.Lock()
	if gotHeaders.Get("IP") != "192.0.2.7" || gotHeaders.Get("From") != "someone@sender.test" || strings.Join(gotHeaders.Values("Rcpt"), ",") != "a@example.test,b@example.test" ||
		gotHeaders.Get("Helo") != "mail.sender.test" || gotHeaders.Get("Queue-Id") != "T1" || gotBody != plainMsg {
		t.Errorf("request: %v %q", gotHeaders, gotBody)
	}

	// Milter headers in their three forms; ours replace rspamd's copies;
	// a header value cannot start a new field.
	mu.Unlock()
	setReply := func(s string) { mu.Lock(); reply = s; mu.Unlock() }
	setReply(`{"action":"add header","score":7,"milter":{"add_headers":{"X-Virus":"none","X-Spam-Level":"*******",
		"Authentication-Results":{"value":"mx; spf=pass\n\tsmtp.mailfrom=x","order":0},
		"X-Multi":[{"value":"one"},"two"],"X-Evil":"a\r\nBcc: victim@example.test","Bad Name":"x"},
		"remove_headers":{"X-Spam":0,"X-Old":1}}}`)
	v, err := f.Check(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range v.AddHeaders {
		got = append(got, h.Name+": "+h.Value)
	}
	want := "X-Spam: Yes|X-Spam-Level: *******|X-Spamd-Bar: +++++++|Authentication-Results: mx; spf=pass\r\n\tsmtp.mailfrom=x|X-Evil: a Bcc: victim@example.test|X-Multi: one|X-Multi: two"
	if strings.Join(got, "|") != want {
		t.Errorf("headers:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if !hasName(v.RemoveHeaders, "X-Old") || !hasName(v.RemoveHeaders, "X-Spam") || !hasName(v.RemoveHeaders, "X-Spamd-Bar") {
		t.Errorf("remove: %v", v.RemoveHeaders)
	}
}

func TestAddresses(t *testing.T) {
	for in, want := range map[string]string{"rspamd": "rspamd:11333", "10.0.0.1:1234": "10.0.0.1:1234", "[::1]": "[::1]:11333", "::1": "[::1]:11333"} {
		rc, err := NewRspamdClient(RspamdOptions{Address: in})
		if err != nil || rc.check != "http://"+want {
			t.Errorf("%q: %v %v", in, rc, err)
		}
	}
	rc, _ := NewRspamdClient(RspamdOptions{Address: "10.0.0.1:1234"})
	if rc.controller != "http://10.0.0.1:11334" {
		t.Errorf("controller %q", rc.controller)
	}
	if _, err := NewRspamdClient(RspamdOptions{Address: ""}); err == nil {
		t.Error("empty address accepted")
	}
	cc, err := NewClamdClient("antivirus", 0)
	if err != nil || cc.addr != "antivirus:3310" {
		t.Errorf("clamd %v %v", cc, err)
	}
	for reply, want := range map[string]string{"stream: OK": "", "stream: Eicar-Test-Signature FOUND": "Eicar-Test-Signature"} {
		if got, err := parseScanReply(reply); err != nil || got != want {
			t.Errorf("%q: %q %v", reply, got, err)
		}
	}
	if _, err := parseScanReply("INSTREAM size limit exceeded. ERROR"); err != ErrClamdSizeLimit {
		t.Errorf("size limit: %v", err)
	}
	if _, err := parseScanReply("garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

// ---- attachments ----

func mimeWith(parts ...string) string {
	var b strings.Builder
	b.WriteString("From: a@sender.test\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n")
	b.WriteString("--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
	for _, p := range parts {
		b.WriteString("--XX\r\n" + p + "\r\n")
	}
	b.WriteString("--XX--\r\n")
	return b.String()
}

func attachment(header, name string, data []byte) string {
	return header + "; filename=" + name + "\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(string(data))
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, d := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(d)
	}
	zw.Close()
	return buf.Bytes()
}

// oleFile builds a minimal MS-CFB compound file (512-byte sectors: FAT
// in sector 0, directory in sector 1) whose directory holds names.
func oleFile(names ...string) []byte {
	le := binary.LittleEndian
	f := make([]byte, 512*3)
	copy(f, oleMagic)
	le.PutUint16(f[0x18:], 0x3E)
	le.PutUint16(f[0x1A:], 3)
	le.PutUint16(f[0x1C:], 0xFFFE)
	le.PutUint16(f[0x1E:], 9)
	le.PutUint16(f[0x20:], 6)
	le.PutUint32(f[0x2C:], 1) // one FAT sector
	le.PutUint32(f[0x30:], 1) // directory at sector 1
	le.PutUint32(f[0x38:], 4096)
	le.PutUint32(f[0x3C:], oleEndOfChain)
	le.PutUint32(f[0x44:], oleEndOfChain)
	for i := 0; i < 109; i++ {
		le.PutUint32(f[0x4C+4*i:], oleFreeSect)
	}
	le.PutUint32(f[0x4C:], 0)
	fat := f[512:1024]
	for i := 0; i < 128; i++ {
		le.PutUint32(fat[4*i:], oleFreeSect)
	}
	le.PutUint32(fat[0:], 0xFFFFFFFD)
	le.PutUint32(fat[4:], oleEndOfChain)
	dir := f[1024:1536]
	for i, n := range append([]string{"Root Entry"}, names...) {
		if i >= 4 {
			break
		}
		e := dir[128*i : 128*(i+1)]
		u := utf16.Encode([]rune(n))
		for j, c := range u {
			le.PutUint16(e[2*j:], c)
		}
		le.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42] = 1
		if i == 0 {
			e[0x42] = 5
		}
	}
	return f
}

func TestAttachments(t *testing.T) {
	docm := zipOf(t, map[string][]byte{"[Content_Types].xml": []byte("<Types/>"), "word/document.xml": []byte("<w/>"), "word/vbaProject.bin": oleFile("VBA", "PROJECT")})
	docx := zipOf(t, map[string][]byte{"[Content_Types].xml": []byte("<Types/>"), "word/document.xml": []byte("<w/>")})
	for _, tc := range []struct {
		name, msg string
		macros    bool
		want      Action
	}{
		{"exe", mimeWith(attachment("Content-Disposition: attachment", "setup.exe", []byte("MZ"))), false, Reject},
		{"double extension", mimeWith(attachment("Content-Disposition: attachment", "\"invoice.pdf.JS\"", []byte("x"))), false, Reject},
		{"exe then txt", mimeWith(attachment("Content-Disposition: attachment", "setup.exe.txt", []byte("x"))), false, Accept},
		{"RFC 2231", mimeWith("Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.scr\r\nContent-Type: application/octet-stream\r\n\r\nxx"), false, Reject},
		{"RFC 2047 name", mimeWith("Content-Type: application/octet-stream; name=\"=?UTF-8?B?cmVwb3J0LmV4ZQ==?=\"\r\n\r\nxx"), false, Reject},
		{"zip member", mimeWith(attachment("Content-Disposition: attachment", "docs.zip", zipOf(t, map[string][]byte{"a/readme.txt": []byte("hi"), "a/run.vbs": []byte("x")}))), false, Reject},
		{"clean zip", mimeWith(attachment("Content-Disposition: attachment", "docs.zip", zipOf(t, map[string][]byte{"a.txt": []byte("hi")}))), false, Accept},
		{"pdf", mimeWith(attachment("Content-Disposition: attachment", "report.pdf", []byte("%PDF-1.4"))), true, Accept},
		{"docm with macros off", mimeWith(attachment("Content-Disposition: attachment", "a.docm", docm)), false, Accept},
		{"docm", mimeWith(attachment("Content-Disposition: attachment", "a.docm", docm)), true, Reject},
		{"docm renamed docx", mimeWith(attachment("Content-Disposition: attachment", "a.docx", docm)), true, Reject},
		{"docx", mimeWith(attachment("Content-Disposition: attachment", "a.docx", docx)), true, Accept},
		{"doc with Macros storage", mimeWith(attachment("Content-Disposition: attachment", "old.doc", oleFile("WordDocument", "Macros", "VBA"))), true, Reject},
		{"xls with _VBA_PROJECT_CUR", mimeWith(attachment("Content-Disposition: attachment", "old.xls", oleFile("Workbook", "_VBA_PROJECT_CUR"))), true, Reject},
		{"doc without macros", mimeWith(attachment("Content-Disposition: attachment", "old.doc", oleFile("WordDocument", "1Table"))), true, Accept},
		{"nested message", mimeWith("Content-Type: message/rfc822\r\n\r\n" + mimeWith(attachment("Content-Disposition: attachment", "x.bat", []byte("x")))), false, Reject},
		{"not MIME", "Subject: hi\r\n\r\nsee setup.exe\r\n", true, Accept},
	} {
		f := New(Options{ScanMacros: tc.macros})
		v, err := f.Check(context.Background(), msgOf(tc.msg))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if v.Action != tc.want {
			t.Errorf("%s: %+v", tc.name, v)
		}
		if v.Action == Reject && (v.Code != 554 || v.Enhanced != "5.7.1" || v.Reason == "") {
			t.Errorf("%s: reply %+v", tc.name, v)
		}
	}
	// An empty list switches the extension check off.
	v, _ := New(Options{ForbiddenExtensions: []string{}}).Check(context.Background(), msgOf(mimeWith(attachment("Content-Disposition: attachment", "setup.exe", []byte("MZ")))))
	if v.Action != Accept {
		t.Errorf("empty list: %+v", v)
	}
}

// ---- built-in score ----

func TestAuthScore(t *testing.T) {
	good, _ := AuthScore(AuthSummary{SPF: "pass", DKIMPassDomains: []string{"sender.test"}, DMARC: "pass", FromDomain: "sender.test", IPRev: "pass"})
	forged, why := AuthScore(AuthSummary{SPF: "fail", DMARC: "fail", DMARCPolicy: "quarantine", FromDomain: "bank.test", IPRev: "fail"})
	none, _ := AuthScore(AuthSummary{SPF: "none", DMARC: "none"})
	if good >= 0 || forged < 8 || none <= 0 {
		t.Errorf("good %v, forged %v (%v), none %v", good, forged, why, none)
	}
}

func TestDNSBL(t *testing.T) {
	srv := dnstest.New(t)
	srv.Add(t, "2.0.0.127.bl.test. A 127.0.0.2", "10.2.0.192.bl.test. A 127.0.0.4", "10.2.0.192.wild.test. A 192.0.2.1",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. A 127.0.0.2")
	b := NewBuiltin(BuiltinOptions{DNSBLZones: []string{"bl.test", "wild.test", "missing.test"}, Resolver: srv.Resolver()})
	if hits := b.dnsbl(context.Background(), netip.MustParseAddr("192.0.2.10")); strings.Join(hits, ",") != "bl.test" {
		t.Errorf("hits = %v, want bl.test only (wild.test answers outside 127/8)", hits)
	}
	if hits := b.dnsbl(context.Background(), netip.MustParseAddr("2001:db8::1")); strings.Join(hits, ",") != "bl.test" {
		t.Errorf("IPv6 (nibbles, RFC 5782 2.4): hits = %v", hits)
	}
	if hits := b.dnsbl(context.Background(), netip.MustParseAddr("127.0.0.2")); len(hits) != 0 {
		t.Errorf("loopback must not be queried: %v", hits)
	}
	if hits := b.dnsbl(context.Background(), netip.MustParseAddr("192.0.2.11")); len(hits) != 0 {
		t.Errorf("unlisted: %v", hits)
	}
	if got := reverseName(netip.MustParseAddr("2001:db8::1")); got != "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2" {
		t.Errorf("reverseName = %s", got)
	}
	m := msgOf(plainMsg)
	m.RemoteIP = netip.MustParseAddr("192.0.2.10")
	m.Auth = AuthSummary{SPF: "pass", DMARC: "pass"}
	v, err := New(Options{Builtin: b}).Check(context.Background(), m)
	if err != nil || v.Action != Accept || v.Score < DNSBLScore-2 || !strings.Contains(v.Reason, "DNSBL:bl.test") {
		t.Errorf("verdict %+v %v", v, err)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
