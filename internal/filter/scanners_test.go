package filter

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/filter/filtertest"
	"github.com/petrelmail/petrel/internal/testutil"
)

// msgOf is a message from 127.0.0.1: rspamd's DNS-based symbols (no
// outside DNS here) would make scores vary with timeouts otherwise.
func msgOf(body string) *Message {
	return &Message{
		ID:       "T1",
		RemoteIP: netip.MustParseAddr("127.0.0.1"),
		HeloName: "mail.sender.test",
		MailFrom: "someone@sender.test",
		Rcpts:    []string{"alice@example.test"},
		Size:     int64(len(body)),
		Open:     func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}
}

const plainMsg = "From: Someone <someone@sender.test>\r\nTo: alice@example.test\r\nSubject: lunch on friday\r\n" +
	"Message-ID: <lunch-1@sender.test>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\nShall we meet at noon?\r\n"

func headerValue(v Verdict, name string) (string, bool) {
	for _, h := range v.AddHeaders {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Against a real rspamd (Debian package): GTUBE is rejected with 550
// 5.7.1 and rspamd's own text; a message with a known 9-point symbol is
// accepted with X-Spam: Yes and the stars; a plain one is scored and
// carries rspamd's milter headers; learning through the controller works.
func TestRspamdIntegration(t *testing.T) {
	r := filtertest.StartRspamd(t)
	rc, err := NewRspamdClient(RspamdOptions{Address: r.Check, Controller: r.Controller, Password: filtertest.Password, Hostname: "mx.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	f := New(Options{Rspamd: rc, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := filtertest.Context(t)

	v, err := f.Check(ctx, msgOf(strings.Replace(plainMsg, "Shall we", filtertest.GTUBE+"\r\nShall we", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != Reject || v.Code != 550 || v.Enhanced != "5.7.1" || v.Text != "Gtube pattern" || !v.Scored || v.Score < 15 {
		t.Errorf("GTUBE: %+v", v)
	}
	if !strings.Contains(logs.String(), "action=reject") {
		t.Errorf("no reject log line: %s", logs)
	}

	spammy := strings.Replace(plainMsg, "Subject:", "X-Petrel-Test: spammy\r\nSubject:", 1)
	v, err = f.Check(ctx, msgOf(spammy))
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != Accept || !v.Scored || v.Score < AddHeaderScore || v.Score >= RejectScore || !strings.Contains(v.Reason, "PETREL_TEST_SPAMMY") {
		t.Fatalf("spammy: %+v", v)
	}
	if x, _ := headerValue(v, "X-Spam"); x != "Yes" {
		t.Errorf("spammy: X-Spam = %q; headers %v", x, v.AddHeaders)
	}
	if lvl, _ := headerValue(v, "X-Spam-Level"); len(lvl) != int(v.Score) || strings.Trim(lvl, "*") != "" {
		t.Errorf("spammy: X-Spam-Level = %q", lvl)
	}
	if !hasName(v.RemoveHeaders, "X-Spam-Level") {
		t.Errorf("incoming X-Spam-Level must be removed: %v", v.RemoveHeaders)
	}
	// rspamd's own milter headers (Mailu's milter_headers: the
	// Authentication-Results it computed) come through.
	if _, ok := headerValue(v, "Authentication-Results"); !ok {
		t.Errorf("no milter header from rspamd: %v", v.AddHeaders)
	}

	// From a local network it is accepted, scored and marked.
	v, err = f.Check(ctx, msgOf(plainMsg))
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != Accept || !v.Scored || v.Score >= AddHeaderScore {
		t.Errorf("plain: %+v", v)
	}
	if _, ok := headerValue(v, "X-Spamd-Bar"); !ok {
		t.Errorf("plain: no X-Spamd-Bar: %+v", v)
	}
	if _, ok := headerValue(v, "X-Spam"); ok {
		t.Errorf("plain: X-Spam set: %+v", v)
	}

	// Learning (the controller, Mailu's rspamc learn_spam).
	// (rspamd's Bayes skips messages with too few words.)
	spamText := spammy + strings.Repeat("Cheap replica watches and discount pharmacy offers, click here to claim your prize today.\r\n", 5)
	hamText := plainMsg + strings.Repeat("The quarterly report draft is attached; please review the budget section before our meeting.\r\n", 5)
	if err := rc.Learn(ctx, true, strings.NewReader(spamText)); err != nil {
		t.Fatalf("learnspam: %v", err)
	}
	if err := rc.Learn(ctx, false, strings.NewReader(hamText)); err != nil {
		t.Fatalf("learnham: %v", err)
	}
	if n := learnedCount(t, r.Controller); n < 2 {
		t.Errorf("rspamd /stat learned = %d after learning spam and ham, want 2", n)
	}
	// Learning the same message again is not an error.
	if err := rc.Learn(ctx, true, strings.NewReader(spamText)); err != nil {
		t.Errorf("second learnspam: %v", err)
	}
}

// rspamd unreachable: 451 4.7.1 (Mailu's milter_default_action =
// tempfail), and the admin sees why.
func TestRspamdDown(t *testing.T) {
	rc, err := NewRspamdClient(RspamdOptions{Address: "127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	f := New(Options{Rspamd: rc, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	v, err := f.Check(context.Background(), msgOf(plainMsg))
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != TempFail || v.Code != 451 || v.Enhanced != "4.7.1" || !strings.Contains(v.Reason, "connect") {
		t.Errorf("verdict %+v", v)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log: %s", logs)
	}
}

func eicarMessage() string {
	return "From: a@sender.test\r\nTo: alice@example.test\r\nSubject: test file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"eicar.txt\"\r\nContent-Disposition: attachment; filename=\"eicar.txt\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + b64(filtertest.EICAR) + "\r\n--b1--\r\n"
}

// Against a real clamd (Debian clamav-daemon) with a database holding the
// EICAR signature: EICAR in a base64 attachment is refused with 554 5.7.1
// and the virus name; a clean message passes; clamd down is a temporary
// failure.
func TestClamdIntegration(t *testing.T) {
	addr := filtertest.StartClamd(t)
	cc, err := NewClamdClient(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := filtertest.Context(t)
	if err := cc.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	f := New(Options{Clamd: cc, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	v, err := f.Check(ctx, msgOf(eicarMessage()))
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != Reject || v.Code != 554 || v.Enhanced != "5.7.1" || !strings.Contains(v.Virus, "Eicar-Test-Signature") {
		t.Errorf("EICAR: %+v", v)
	}
	if !strings.Contains(logs.String(), "virus=Eicar-Test-Signature") {
		t.Errorf("virus not logged: %s", logs)
	}
	v, err = f.Check(ctx, msgOf(plainMsg))
	if err != nil || v.Action != Accept {
		t.Errorf("clean: %+v %v", v, err)
	}
	// A large clean stream in many chunks.
	big := plainMsg + strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 40000)
	if virus, err := cc.Scan(ctx, strings.NewReader(big)); err != nil || virus != "" {
		t.Errorf("big clean: %q %v", virus, err)
	}
}

func TestClamdDown(t *testing.T) {
	cc, err := NewClamdClient("127.0.0.1:9", 0)
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{Clamd: cc})
	v, err := f.Check(context.Background(), msgOf(plainMsg))
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != TempFail || v.Code != 451 || !strings.HasPrefix(v.Reason, "clamd:") {
		t.Errorf("verdict %+v", v)
	}
}

func b64(s string) string {
	var buf bytes.Buffer
	enc := base64Encoder(&buf)
	enc.Write([]byte(s))
	enc.Close()
	return buf.String()
}

func base64Encoder(w io.Writer) io.WriteCloser { return base64.NewEncoder(base64.StdEncoding, w) }

// learnedCount asks the controller's /stat how many messages it learnt.
func learnedCount(t *testing.T, controller string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+controller+"/stat", nil)
	req.Header.Set("Password", filtertest.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Learned int `json:"learned"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Learned
}
