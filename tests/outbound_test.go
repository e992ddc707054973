package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// submit sends one message on 465 as user.
func submit(t *testing.T, s *server, user, pw, from string, to []string, msg string) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(smtp.PlainAuth("", user, pw, "mail.example.test")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail(from); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	_ = c.Quit()
}

// waitSink waits until the sink has n messages.
func waitSink(t *testing.T, sink *sinktest.Sink, n int, s *server) []sinktest.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := sink.Messages(); len(m) >= n {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the relay host got %d messages, want %d\n%s", len(sink.Messages()), n, s.logs())
	return nil
}

// dkimLookup answers DKIM TXT queries from the records `petrel dns` prints.
func dkimLookup(t *testing.T, s *server, domain string) func(string) ([]string, error) {
	t.Helper()
	out := s.mustCLI("", "dns", domain)
	records := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "TXT" {
			continue
		}
		txt, err := msgauth.ParseTXT(strings.Join(f[4:], " "))
		if err != nil {
			t.Fatalf("petrel dns printed a bad TXT record %q: %v", line, err)
		}
		records[strings.TrimSuffix(f[0], ".")] = txt
	}
	return func(name string) ([]string, error) {
		if r, ok := records[strings.TrimSuffix(name, ".")]; ok {
			return []string{r}, nil
		}
		return nil, fmt.Errorf("no TXT record for %s", name)
	}
}

// TestSubmissionIsScrubbedSignedAndRelayed follows one message from a mail
// client on 465 through the outbound queue to RELAYHOST: client headers are
// scrubbed, Message-ID and Date added, and the DKIM signature verifies
// against the record `petrel dns` prints.
func TestSubmissionIsScrubbedSignedAndRelayed(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	s := withUsers(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	msg := "From: Alice <alice@example.test>\r\n" +
		"To: friend@remote.example\r\n" +
		"Subject: outbound\r\n" +
		"User-Agent: LeakyMail 1.0\r\n" +
		"X-Mailer: LeakyMail\r\n" +
		"X-Originating-IP: [192.0.2.7]\r\n" +
		"Received: from laptop (192.0.2.7) by wifi\r\n" +
		"\r\n" +
		"Hello from Petrel.\r\n"
	submit(t, s, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{"friend@remote.example"}, msg)

	got := waitSink(t, sink, 1, s)[0]
	if got.From != "alice@example.test" || len(got.To) != 1 || got.To[0] != "friend@remote.example" {
		t.Fatalf("envelope %s -> %v", got.From, got.To)
	}
	data := string(got.Data)
	for _, gone := range []string{"User-Agent:", "X-Mailer:", "X-Originating-IP:", "192.0.2.7", "Received:"} {
		if strings.Contains(data, gone) {
			t.Errorf("relayed message still contains %q:\n%s", gone, data)
		}
	}
	for _, want := range []string{"Message-ID: <", "Date: ", "DKIM-Signature:", "d=example.test"} {
		if !strings.Contains(data, want) {
			t.Errorf("relayed message lacks %q:\n%s", want, data)
		}
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: dkimLookup(t, s, "example.test")})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("DKIM verification: err=%v verifs=%+v\n%s", err, verifs, data)
	}
	if !s.waitLog(`msg=delivered part=queue`) {
		t.Errorf("no delivered record from the queue:\n%s", s.logs())
	}
}

// TestPermanentFailureBouncesToSender: the relay host refuses a recipient
// with 550; the sender finds a DSN naming it in the INBOX.
func TestPermanentFailureBouncesToSender(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	sink.RcptReply("nobody@remote.example", 550, gosmtp.EnhancedCode{5, 1, 1}, "no such user here")
	s := withUsers(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	submit(t, s, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{"nobody@remote.example"},
		"From: alice@example.test\r\nTo: nobody@remote.example\r\nSubject: doomed\r\n\r\nhi\r\n")
	if !s.waitLog("msg=bounced") {
		t.Fatalf("no bounce logged:\n%s", s.logs())
	}
	s.stopClean()
	st := openStore(t, s)
	defer st.Close()
	msgs, err := st.ListMessages(context.Background(), "alice@example.test", "INBOX")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("alice INBOX: %d messages, err %v; want the DSN", len(msgs), err)
	}
	r, err := st.OpenBody(context.Background(), msgs[0].BodyID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	body, _ := io.ReadAll(r)
	for _, want := range []string{"MAILER-DAEMON@mail.example.test", "multipart/report", "nobody@remote.example", "550", "Action: failed"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("DSN lacks %q:\n%s", want, body)
		}
	}
	if n := countQueue(t, s); n != 0 {
		t.Errorf("queue still has %d entries after the bounce", n)
	}
}
