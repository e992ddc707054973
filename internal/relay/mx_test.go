package relay_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

func TestMXPreferenceOrder(t *testing.T) {
	e := newEnv(t)
	low := e.sink("127.0.0.1", sinktest.Options{}, false)  // preference 20
	best := e.sink("127.0.0.2", sinktest.Options{}, false) // preference 10
	e.dns.Add(t,
		"example.test. MX 20 mx-b.example.test.",
		"example.test. MX 10 mx-a.example.test.",
		"mx-a.example.test. A 127.0.0.2",
		"mx-b.example.test. A 127.0.0.1",
	)
	mustDeliver(t, e.client(nil), msg("bob@example.test"))
	if n := len(best.Messages()); n != 1 {
		t.Errorf("preferred MX got %d messages, want 1", n)
	}
	if low.Conns() != 0 {
		t.Errorf("less preferred MX was contacted %d times", low.Conns())
	}
	m := best.Messages()[0]
	if m.From != "alice@petrel.test" || !slices.Equal(m.To, []string{"bob@example.test"}) || string(m.Data) != body {
		t.Errorf("sink got from=%q to=%q data=%q", m.From, m.To, m.Data)
	}
	if m.Helo != "mail.petrel.test" {
		t.Errorf("EHLO name = %q, want the first HOSTNAMES entry", m.Helo)
	}
	if m.Body != "8BITMIME" || m.Size != int64(len(body)) {
		t.Errorf("MAIL parameters BODY=%q SIZE=%d; want 8BITMIME and %d", m.Body, m.Size, len(body))
	}
}

// The first MX refuses the connection, the second greets with 421, the
// third answers 451 to MAIL FROM; the fourth takes the message.
func TestMXFallback(t *testing.T) {
	e := newEnv(t)
	good := e.sink("127.0.0.1", sinktest.Options{}, false)
	busy := e.sink("127.0.0.2", sinktest.Options{Greeting: "421 4.3.2 too busy"}, false)
	deferring := e.sink("127.0.0.4", sinktest.Options{}, false)
	deferring.MailReply(451, smtp.EnhancedCode{4, 3, 0}, "try later")
	e.dns.Add(t,
		"example.test. MX 10 mx1.example.test.",
		"example.test. MX 20 mx2.example.test.",
		"example.test. MX 30 mx3.example.test.",
		"example.test. MX 40 mx4.example.test.",
		"mx1.example.test. A 127.0.0.3", // nothing listens there
		"mx2.example.test. A 127.0.0.2",
		"mx3.example.test. A 127.0.0.4",
		"mx4.example.test. A 127.0.0.1",
	)
	mustDeliver(t, e.client(nil), msg("bob@example.test"))
	if busy.Conns() != 1 || deferring.Conns() != 1 {
		t.Errorf("MX2 contacted %d times, MX3 %d times; want once each", busy.Conns(), deferring.Conns())
	}
	if len(good.Messages()) != 1 || len(deferring.Messages()) != 0 {
		t.Errorf("messages: last MX %d, MX3 %d; want 1, 0", len(good.Messages()), len(deferring.Messages()))
	}
	logs := e.logs.String()
	for _, want := range []string{"connection refused", "421", "451", "relay: attempt done"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// When every MX fails temporarily the last error is returned, temporary.
func TestMXAllTemporary(t *testing.T) {
	e := newEnv(t)
	e.sink("127.0.0.2", sinktest.Options{Greeting: "421 4.3.2 too busy"}, false)
	e.dns.Add(t,
		"example.test. MX 10 mx1.example.test.",
		"example.test. MX 20 mx2.example.test.",
		"mx1.example.test. A 127.0.0.3",
		"mx2.example.test. A 127.0.0.2",
	)
	de := wholesale(t, e.client(nil), msg("bob@example.test", "carol@example.test"))
	checkErr(t, "all MX busy", de, false, 421, "4.3.2")
	if de.Remote != "mx2.example.test" {
		t.Errorf("Remote = %q, want mx2.example.test", de.Remote)
	}
}

// A 5xx to MAIL FROM is final: no other MX is tried.
func TestMailFrom5xxIsFinal(t *testing.T) {
	e := newEnv(t)
	first := e.sink("127.0.0.1", sinktest.Options{}, false)
	first.MailReply(550, smtp.EnhancedCode{5, 7, 1}, "sender rejected")
	second := e.sink("127.0.0.2", sinktest.Options{}, false)
	e.dns.Add(t,
		"example.test. MX 10 mx1.example.test.",
		"example.test. MX 20 mx2.example.test.",
		"mx1.example.test. A 127.0.0.1",
		"mx2.example.test. A 127.0.0.2",
	)
	de := wholesale(t, e.client(nil), msg("bob@example.test"))
	checkErr(t, "MAIL 550", de, true, 550, "5.7.1")
	if second.Conns() != 0 {
		t.Error("the next MX was tried after a 5xx to MAIL FROM")
	}
}

// RFC 5321 5.1: no MX records -> the domain's address is the implicit MX.
func TestImplicitMX(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{}, false)
	e.dns.Add(t, "plain.test. A 127.0.0.1")
	mustDeliver(t, e.client(nil), msg("bob@plain.test"))
	if len(s.Messages()) != 1 {
		t.Errorf("implicit MX got %d messages", len(s.Messages()))
	}
}

// RFC 7505: a null MX means the domain takes no mail; nothing is contacted
// even though the domain has an address.
func TestNullMX(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{}, false)
	e.dns.Add(t, "nomail.test. MX 0 .", "nomail.test. A 127.0.0.1")
	de := wholesale(t, e.client(nil), msg("bob@nomail.test"))
	checkErr(t, "null MX", de, true, 0, "5.1.10")
	if !strings.Contains(de.Message, "does not accept mail") {
		t.Errorf("message %q", de.Message)
	}
	if s.Conns() != 0 {
		t.Error("a null-MX domain's address was contacted")
	}
}

func TestDNSFailures(t *testing.T) {
	e := newEnv(t)
	e.dns.Add(t,
		"dangling.test. MX 10 gone.dangling.test.",
		"half.test. MX 10 mx.half.test.",
	)
	e.dns.Fail("servfail.test", dns.TypeMX, dns.RcodeServerFailure)
	e.dns.Fail("mx.half.test", 0, dns.RcodeServerFailure)
	c := e.client(nil)

	de := wholesale(t, c, msg("bob@nxdomain.test"))
	checkErr(t, "NXDOMAIN", de, true, 0, "5.1.2")
	if !strings.Contains(de.Message, "no such domain") {
		t.Errorf("NXDOMAIN message %q", de.Message)
	}
	checkErr(t, "SERVFAIL", wholesale(t, c, msg("bob@servfail.test")), false, 0, "4.4.3")
	checkErr(t, "MX host SERVFAIL", wholesale(t, c, msg("bob@half.test")), false, 0, "4.4.3")
	checkErr(t, "MX host NXDOMAIN", wholesale(t, c, msg("bob@dangling.test")), true, 0, "5.4.4")
}

func TestSTARTTLSOpportunistic(t *testing.T) {
	e := newEnv(t)
	cfg, _ := sinktest.Cert(t, "some-other-name.test") // wrong name, self-signed: still used
	s := e.sink("127.0.0.1", sinktest.Options{TLS: cfg}, false)
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	mustDeliver(t, e.client(nil), msg("bob@example.test"))
	msgs := s.Messages()
	if len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("sink messages %+v; want one over TLS", msgs)
	}
	if msgs[0].Helo != "mail.petrel.test" {
		t.Errorf("EHLO after STARTTLS = %q", msgs[0].Helo)
	}
	if want := fmt.Sprintf("tls=%q", tls.VersionName(msgs[0].TLSVer)); !strings.Contains(e.logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, e.logs.String())
	}
}

// A broken handshake with an MX is retried in clear (Postfix "may").
func TestSTARTTLSBrokenFallsBackToPlain(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{TLS: &tls.Config{}}, false) // no certificate
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	mustDeliver(t, e.client(nil), msg("bob@example.test"))
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].TLS {
		t.Fatalf("sink messages %+v; want one in clear", msgs)
	}
	if s.Conns() != 2 {
		t.Errorf("sink saw %d connections, want 2 (TLS, then clear)", s.Conns())
	}
}

func TestMixedRecipientsOneConnection(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{}, false)
	s.RcptReply("nobody@example.test", 550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	s.RcptReply("full@example.test", 452, smtp.EnhancedCode{4, 2, 2}, "mailbox full")
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	rcpts := []string{"bob@example.test", "nobody@example.test", "full@example.test", "carol@example.test", "bob@example.test"}
	res, err := deliver(t, e.client(nil), msg(rcpts...))
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if len(res) != len(rcpts) {
		t.Fatalf("%d results for %d recipients", len(res), len(rcpts))
	}
	for i, r := range res {
		if r.Recipient != rcpts[i] {
			t.Errorf("result %d is for %s, want %s (input order)", i, r.Recipient, rcpts[i])
		}
	}
	for _, i := range []int{0, 3, 4} {
		if res[i].Err != nil {
			t.Errorf("%s: %v", res[i].Recipient, res[i].Err)
		}
		if res[i].Remote != "mx.example.test" || !strings.HasPrefix(res[i].Reply, "250 ") {
			t.Errorf("%s: accepted by %q with %q; want mx.example.test and its 250", res[i].Recipient, res[i].Remote, res[i].Reply)
		}
	}
	checkErr(t, "550 recipient", asDE(t, res[1].Err), true, 550, "5.1.1")
	checkErr(t, "452 recipient", asDE(t, res[2].Err), false, 452, "4.2.2")
	if s.Conns() != 1 {
		t.Errorf("sink saw %d connections, want 1", s.Conns())
	}
	msgs := s.Messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"bob@example.test", "carol@example.test"}) {
		t.Errorf("sink messages %+v; want one for bob and carol", msgs)
	}
}

// Recipients deferred by one MX are offered to the next (Postfix
// smtp_mx_session_limit); the accepted ones are not sent twice.
func TestDeferredRecipientsTryNextMX(t *testing.T) {
	e := newEnv(t)
	first := e.sink("127.0.0.1", sinktest.Options{}, false)
	first.RcptReply("grey@example.test", 450, smtp.EnhancedCode{4, 7, 1}, "greylisted")
	second := e.sink("127.0.0.2", sinktest.Options{}, false)
	e.dns.Add(t,
		"example.test. MX 10 mx1.example.test.",
		"example.test. MX 20 mx2.example.test.",
		"mx1.example.test. A 127.0.0.1",
		"mx2.example.test. A 127.0.0.2",
	)
	mustDeliver(t, e.client(nil), msg("bob@example.test", "grey@example.test"))
	if m := first.Messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"bob@example.test"}) {
		t.Errorf("MX1 messages %+v", m)
	}
	if m := second.Messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"grey@example.test"}) {
		t.Errorf("MX2 messages %+v", m)
	}
}

func TestDataReplyAppliesToAllAccepted(t *testing.T) {
	for _, tt := range []struct {
		code      int
		enh       smtp.EnhancedCode
		permanent bool
	}{
		{554, smtp.EnhancedCode{5, 7, 1}, true},
		{451, smtp.EnhancedCode{4, 3, 0}, false},
	} {
		e := newEnv(t)
		s := e.sink("127.0.0.1", sinktest.Options{}, false)
		s.DataReply("", tt.code, tt.enh, "content rejected")
		e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
		res, err := deliver(t, e.client(nil), msg("bob@example.test", "carol@example.test"))
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		for _, r := range res {
			de := asDE(t, r.Err)
			if de.Permanent != tt.permanent || de.Code != tt.code || !strings.Contains(de.Message, "content rejected") {
				t.Errorf("DATA %d: %s got %+v", tt.code, r.Recipient, de)
			}
		}
	}
}

func TestSMTPUTF8(t *testing.T) {
	e := newEnv(t)
	plain := e.sink("127.0.0.1", sinktest.Options{}, false)
	utf := e.sink("127.0.0.2", sinktest.Options{SMTPUTF8: true}, false)
	e.dns.Add(t,
		"old.test. MX 10 mx.old.test.", "mx.old.test. A 127.0.0.1",
		"new.test. MX 10 mx.new.test.", "mx.new.test. A 127.0.0.2",
	)
	c := e.client(nil)
	m := msg("jürgen@old.test")
	m.UTF8 = true
	de := wholesale(t, c, m)
	checkErr(t, "SMTPUTF8 missing", de, true, 0, "5.6.7")
	if len(plain.Messages()) != 0 {
		t.Error("a message needing SMTPUTF8 went to a server without it")
	}
	m = msg("jürgen@new.test")
	m.UTF8 = true
	mustDeliver(t, c, m)
	if got := utf.Messages(); len(got) != 1 || !got[0].UTF8 || got[0].To[0] != "jürgen@new.test" {
		t.Errorf("SMTPUTF8 sink got %+v", got)
	}
}

func TestSizeLimit(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{MaxSize: 10}, false)
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	de := wholesale(t, e.client(nil), msg("bob@example.test"))
	checkErr(t, "too big", de, true, 0, "5.3.4")
	if len(s.Messages()) != 0 {
		t.Error("an oversized message was sent")
	}
}

// RFC 5321 5.1: as a backup MX we only hand over to better MX hosts; as
// the best MX for a domain we do not know, the mail would loop.
func TestOwnHostnameInMX(t *testing.T) {
	e := newEnv(t)
	primary := e.sink("127.0.0.1", sinktest.Options{}, false)
	e.dns.Add(t,
		"backup.test. MX 10 primary.backup.test.",
		"backup.test. MX 20 mx.petrel.test.",
		"backup.test. MX 30 other.backup.test.",
		"primary.backup.test. A 127.0.0.1",
		"other.backup.test. A 127.0.0.3",
		"loop.test. MX 10 MX.Petrel.Test.",
		"loop.test. MX 20 other.backup.test.",
	)
	c := e.client(nil)
	mustDeliver(t, c, msg("bob@backup.test"))
	if len(primary.Messages()) != 1 {
		t.Error("backup MX did not hand over to the primary")
	}
	de := wholesale(t, c, msg("bob@loop.test"))
	checkErr(t, "loop", de, false, 0, "4.4.6")
	if !strings.Contains(de.Message, "loops back to myself") {
		t.Errorf("loop message %q", de.Message)
	}
}

func TestBodyReadFailure(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{}, false)
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	m := msg("bob@example.test")
	m.Body = func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("Subject: x\r\n"), errReader{})), nil
	}
	res, err := deliver(t, e.client(nil), m)
	if err == nil && (len(res) != 1 || res[0].Err == nil) {
		t.Fatalf("Deliver with a broken body succeeded: %+v", res)
	}
	if err == nil {
		err = res[0].Err
	}
	de := asDE(t, err)
	if de.Permanent || !strings.Contains(de.Message, "cannot read the message") {
		t.Errorf("broken body: %+v", de)
	}
	if len(s.Messages()) != 0 {
		t.Error("a truncated message was accepted")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
