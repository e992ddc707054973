package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store/blob"
)

// Open makes the test spool readable, as *inbound.Spool is.
func (s *fakeSpool) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(bytes.Clone(s.Bytes()))), nil
}

// Prepend puts p on top, as *inbound.Spool does.
func (s *fakeSpool) Prepend(p []byte) error {
	b := append(bytes.Clone(p), s.Bytes()...)
	s.Reset()
	s.Write(b)
	return nil
}

type ckLocalDomains map[string]bool

func (f ckLocalDomains) IsLocal(_ context.Context, d string) (bool, error) { return f[d], nil }

type ckChecker struct {
	mu      sync.Mutex
	verdict filter.Verdict
	err     error
	seen    []*filter.Message
	bodies  []string
}

func (f *ckChecker) Check(ctx context.Context, m *filter.Message) (filter.Verdict, error) {
	rc, err := m.Open()
	if err != nil {
		return filter.Verdict{}, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return filter.Verdict{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, m)
	f.bodies = append(f.bodies, string(b))
	return f.verdict, f.err
}

// checksDNS is the world the checks see: the client (127.0.0.1) is
// mail.sender.test; sender.test authorises it (p=reject), quar.test
// publishes p=quarantine, reject.test p=reject without authorising it,
// and example.test (local) publishes nothing.
func checksDNS(t *testing.T) *dnstest.Server {
	s := dnstest.New(t)
	s.Add(t,
		"1.0.0.127.in-addr.arpa. PTR mail.sender.test.",
		"mail.sender.test. A 127.0.0.1",
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`_dmarc.quar.test. TXT "v=DMARC1; p=quarantine"`,
		`_dmarc.reject.test. TXT "v=DMARC1; p=reject"`,
		`reject.test. TXT "v=spf1 -all"`,
	)
	return s
}

func checksServer(t *testing.T, res dnsres.Resolver, ck *ckChecker, mod func(*Options)) *testEnv {
	return startServer(t, RoleMX, func(o *Options) {
		o.Verifier = msgauth.NewVerifier(msgauth.VerifierOptions{Hostname: testHost, Resolver: res, DNSTimeout: 2 * time.Second})
		o.LocalDomains = ckLocalDomains{"example.test": true}
		if ck != nil {
			o.Checker = ck
		}
		if mod != nil {
			mod(o)
		}
	})
}

func ckMessage(from string, extra string) string {
	return extra + "From: <" + from + ">\r\nTo: <bob@example.test>\r\nSubject: check\r\n\r\nHello.\r\n"
}

// transaction sends one message and returns the final reply's code and text.
func ckTransaction(t *testing.T, e *testEnv, envFrom, body string) (int, string) {
	t.Helper()
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<"+envFrom+">", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write(body + ".\r\n")
	code, lines, err := c.readReply()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd("QUIT", 221, "")
	return code, strings.Join(lines, "\n")
}

func TestChecksPassAddsAuthResults(t *testing.T) {
	e := checksServer(t, checksDNS(t).Resolver(), nil, nil)
	forged := "Authentication-Results: " + testHost + "; dmarc=pass header.from=bank.test\r\n" +
		"Authentication-Results: other.test; spf=fail\r\n"
	code, text := ckTransaction(t, e, "bounce@sender.test", ckMessage("alice@sender.test", forged))
	if code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	d := e.deliv.delivered()
	if len(d) != 1 {
		t.Fatalf("%d delivered", len(d))
	}
	body := d[0].body
	if !strings.HasPrefix(body, "Authentication-Results: "+testHost+";") {
		t.Fatalf("no A-R on top:\n%s", body)
	}
	if strings.Count(body, "Authentication-Results: "+testHost) != 1 || strings.Contains(body, "bank.test") {
		t.Fatalf("forged A-R kept:\n%s", body)
	}
	if !strings.Contains(body, "Authentication-Results: other.test; spf=fail") {
		t.Fatalf("foreign A-R lost:\n%s", body)
	}
	// Our header parses, with the results.
	first := body[:strings.Index(body, "\r\nReceived:")]
	v := strings.ReplaceAll(strings.TrimPrefix(first, "Authentication-Results: "), "\r\n\t", " ")
	id, results, err := authres.Parse(v)
	if err != nil || id != testHost {
		t.Fatalf("parse %q: %q %v", v, id, err)
	}
	// (iprev of 127.0.0.1 reads /etc/hosts, "localhost", so no pass here;
	// msgauth's tests cover iprev.)
	want := map[string]bool{"spf=pass": false, "dmarc=pass": false, "dkim=none": false}
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			want["spf="+string(r.Value)] = true
		case *authres.DMARCResult:
			want["dmarc="+string(r.Value)] = true
		case *authres.IPRevResult:
			want["iprev="+string(r.Value)] = true
		case *authres.DKIMResult:
			want["dkim="+string(r.Value)] = true
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("missing %s in %q", k, v)
		}
	}
	if d[0].env.Quarantine || d[0].env.Scored {
		t.Fatalf("env %+v", d[0].env)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "msg=received") || !strings.Contains(logs, "spf=pass") || !strings.Contains(logs, "dmarc=pass") ||
		!strings.Contains(logs, "iprev=") || !strings.Contains(logs, "action=accept") {
		t.Fatalf("log line lacks the results:\n%s", logs)
	}
}

func TestChecksSpoofedLocalFromRefused(t *testing.T) {
	e := checksServer(t, checksDNS(t).Resolver(), nil, nil)
	// example.test is local and publishes no DMARC record: Mailu refuses
	// unauthenticated mail in its name all the same.
	code, text := ckTransaction(t, e, "someone@elsewhere.test", ckMessage("ceo@example.test", ""))
	if code != 550 || !strings.HasPrefix(text, "5.7.1 ") || !strings.Contains(text, "example.test") {
		t.Fatalf("%d %s", code, text)
	}
	if len(e.deliv.delivered()) != 0 {
		t.Fatal("spoofed message delivered")
	}
	if logs := e.logs.String(); !strings.Contains(logs, "action=reject") || !strings.Contains(logs, "dmarc=none") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestChecksRelayNetsTrusted(t *testing.T) {
	e := checksServer(t, checksDNS(t).Resolver(), nil, func(o *Options) {
		o.RelayNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	code, text := ckTransaction(t, e, "app@example.test", ckMessage("app@example.test", ""))
	if code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	if d := e.deliv.delivered(); len(d) != 1 || !strings.HasPrefix(d[0].body, "Authentication-Results: ") {
		t.Fatal("not delivered with A-R")
	}
}

func TestChecksDMARCReject(t *testing.T) {
	e := checksServer(t, checksDNS(t).Resolver(), nil, nil)
	code, text := ckTransaction(t, e, "x@reject.test", ckMessage("boss@reject.test", ""))
	if code != 550 || !strings.HasPrefix(text, "5.7.1 ") || !strings.Contains(text, "DMARC policy of reject.test") {
		t.Fatalf("%d %s", code, text)
	}
	if len(e.deliv.delivered()) != 0 {
		t.Fatal("delivered")
	}
}

func TestChecksDMARCQuarantine(t *testing.T) {
	e := checksServer(t, checksDNS(t).Resolver(), nil, nil)
	code, text := ckTransaction(t, e, "x@other.test", ckMessage("news@quar.test", ""))
	if code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	d := e.deliv.delivered()
	if len(d) != 1 || !d[0].env.Quarantine {
		t.Fatalf("%+v", d)
	}
	if !strings.Contains(e.logs.String(), "action=quarantine") {
		t.Fatal(e.logs.String())
	}
}

func TestChecksDeadResolverDelivers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	e := checksServer(t, dnsres.New(pc.LocalAddr().String()), nil, nil)
	start := time.Now()
	code, text := ckTransaction(t, e, "x@sender.test", ckMessage("alice@sender.test", ""))
	if code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Fatalf("took %v", el)
	}
	d := e.deliv.delivered()
	if len(d) != 1 || !strings.Contains(d[0].body, "spf=temperror") || !strings.Contains(d[0].body, "dmarc=temperror") {
		t.Fatalf("%+v", d)
	}
	// A local From domain that cannot be checked is deferred, not refused
	// for good nor let through.
	code, text = ckTransaction(t, e, "x@example.test", ckMessage("ceo@example.test", ""))
	if code != 451 || !strings.HasPrefix(text, "4.7.1 ") {
		t.Fatalf("%d %s", code, text)
	}
}

func TestChecksChecker(t *testing.T) {
	dnsSrv := checksDNS(t)
	t.Run("accept with score and headers", func(t *testing.T) {
		ck := &ckChecker{verdict: filter.Verdict{Action: filter.Accept, Score: 7.5, Scored: true,
			AddHeaders:    []filter.Header{{Name: "X-Spam", Value: "Yes"}, {Name: "X-Spam-Level", Value: "*******"}, {Name: "Bad Name", Value: "x"}, {Name: "X-Inject", Value: "a\r\nBcc: evil@x.test"}},
			RemoveHeaders: []string{"X-Old-Spam", "Received"}}}
		e := checksServer(t, dnsSrv.Resolver(), ck, nil)
		code, text := ckTransaction(t, e, "bounce@sender.test", ckMessage("alice@sender.test", "X-Old-Spam: yes\r\n"))
		if code != 250 {
			t.Fatalf("%d %s", code, text)
		}
		d := e.deliv.delivered()
		if len(d) != 1 || !d[0].env.Scored || d[0].env.SpamScore != 7.5 {
			t.Fatalf("%+v", d)
		}
		body := d[0].body
		for _, want := range []string{"\r\nX-Spam: Yes\r\n", "\r\nX-Spam-Level: *******\r\n", "\r\nReceived: from "} {
			if !strings.Contains(body, want) {
				t.Fatalf("missing %q:\n%s", want, body)
			}
		}
		if strings.Contains(body, "X-Old-Spam") || strings.Contains(body, "Bad Name") || strings.Contains(body, "\r\nBcc:") {
			t.Fatalf("header not filtered:\n%s", body)
		}
		// The checker saw the message with our Authentication-Results and
		// the facts of the session.
		m := ck.seen[0]
		if m.Auth.SPF != "pass" || m.Auth.DMARC != "pass" || m.Auth.FromDomain != "sender.test" || m.MailFrom != "bounce@sender.test" ||
			m.HeloName != "client.example.net" || len(m.Rcpts) != 1 || m.RemoteIP.String() != "127.0.0.1" {
			t.Fatalf("%+v", m)
		}
		if !strings.HasPrefix(ck.bodies[0], "Authentication-Results: "+testHost) {
			t.Fatalf("checker saw:\n%s", ck.bodies[0])
		}
		if !strings.Contains(e.logs.String(), "spam_score=7.5") {
			t.Fatal(e.logs.String())
		}
	})
	t.Run("prepended or re-spooled", func(t *testing.T) {
		// A message with none of the fields to leave out takes ours on
		// top in its own spool; one with a forged Authentication-Results
		// or a field the verdict removes is re-spooled without it. The
		// checker reads what will be stored, less the verdict's fields.
		forged := "Authentication-Results: " + testHost + "; dkim=pass header.d=bank.test\r\n"
		for _, tc := range []struct {
			name, extra string
			spools      int
		}{
			{"clean", "", 1},
			{"forged", forged, 2},
			{"removed", "X-Old-Spam: yes\r\n", 2},
		} {
			ck := &ckChecker{verdict: filter.Verdict{Action: filter.Accept,
				AddHeaders: []filter.Header{{Name: "X-Spam-Level", Value: "**"}}, RemoveHeaders: []string{"X-Old-Spam"}}}
			e := checksServer(t, dnsSrv.Resolver(), ck, nil)
			if code, text := ckTransaction(t, e, "bounce@sender.test", ckMessage("alice@sender.test", tc.extra)); code != 250 {
				t.Fatalf("%s: %d %s", tc.name, code, text)
			}
			d := e.deliv.delivered()
			if len(d) != 1 || len(ck.bodies) != 1 {
				t.Fatalf("%s: %d delivered, %d scanned", tc.name, len(d), len(ck.bodies))
			}
			scanned := ck.bodies[0]
			if !strings.HasPrefix(scanned, "Authentication-Results: "+testHost+";") || strings.Contains(scanned, "bank.test") {
				t.Fatalf("%s: checker saw:\n%s", tc.name, scanned)
			}
			arEnd := strings.Index(scanned, "\r\nReceived: ") + 2
			want := scanned[:arEnd] + "X-Spam-Level: **\r\n" + strings.Replace(scanned[arEnd:], "X-Old-Spam: yes\r\n", "", 1)
			if d[0].body != want {
				t.Fatalf("%s: delivered:\n%s\nwant:\n%s", tc.name, d[0].body, want)
			}
			e.deliv.mu.Lock()
			n := len(e.deliv.spools)
			e.deliv.mu.Unlock()
			if n != tc.spools {
				t.Errorf("%s: %d spools, want %d", tc.name, n, tc.spools)
			}
		}
	})
	for _, tt := range []struct {
		name string
		v    filter.Verdict
		err  error
		code int
		enh  string
	}{
		{"reject virus", filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1", Text: "Virus found: Eicar-Signature", Virus: "Eicar-Signature"}, nil, 554, "5.7.1"},
		{"reject default code", filter.Verdict{Action: filter.Reject, Score: 20, Scored: true}, nil, 550, "5.7.1"},
		{"greylist", filter.Verdict{Action: filter.TempFail, Code: 451, Enhanced: "4.7.1", Text: "Greylisted, try again later"}, nil, 451, "4.7.1"},
		{"checker error", filter.Verdict{}, errors.New("rspamd: dial tcp 127.0.0.1:11332: connection refused"), 451, "4.7.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ck := &ckChecker{verdict: tt.v, err: tt.err}
			e := checksServer(t, dnsSrv.Resolver(), ck, nil)
			code, text := ckTransaction(t, e, "bounce@sender.test", ckMessage("alice@sender.test", ""))
			if code != tt.code || !strings.HasPrefix(text, tt.enh+" ") {
				t.Fatalf("%d %s", code, text)
			}
			if len(e.deliv.delivered()) != 0 {
				t.Fatal("delivered")
			}
			if tt.err != nil && !strings.Contains(e.logs.String(), "connection refused") {
				t.Fatalf("reason not logged:\n%s", e.logs.String())
			}
			if tt.err != nil && strings.Contains(text, "11332") {
				t.Fatal("detail leaked to the client")
			}
		})
	}
}

func TestChecksNotOnSubmission(t *testing.T) {
	ck := &ckChecker{verdict: filter.Verdict{Action: filter.Reject}}
	e := startServer(t, RoleSubmission, func(o *Options) {
		o.Verifier = msgauth.NewVerifier(msgauth.VerifierOptions{Hostname: testHost, Resolver: checksDNS(t).Resolver()})
		o.Checker = ck
		o.LocalDomains = ckLocalDomains{"example.test": true}
	})
	c := e.dial()
	c.ehlo()
	c.starttls(e.cert.Client)
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	c.sendMail("alice@example.test", []string{"bob@example.test"}, ckMessage("alice@example.test", ""))
	if len(ck.seen) != 0 {
		t.Fatal("checker ran on submission")
	}
	if d := e.deliv.delivered(); len(d) != 1 || strings.Contains(d[0].body, "Authentication-Results") {
		t.Fatalf("%+v", d)
	}
}

// A DMARC temperror at the record look-up for a foreign domain still
// delivers.
func TestChecksDMARCTempErrorDelivers(t *testing.T) {
	s := checksDNS(t)
	s.Fail("_dmarc.flaky.test.", dns.TypeTXT, dns.RcodeServerFailure)
	e := checksServer(t, s.Resolver(), nil, nil)
	code, text := ckTransaction(t, e, "x@flaky.test", ckMessage("a@flaky.test", ""))
	if code != 250 {
		t.Fatalf("%d %s", code, text)
	}
	if d := e.deliv.delivered(); len(d) != 1 || !strings.Contains(d[0].body, "dmarc=temperror") {
		t.Fatalf("%+v", d)
	}
}

// Mailu's IS_LOCAL_DOMAIN_E: a local envelope sender needs DMARC to pass
// for the From domain too, whatever that is.
func TestChecksLocalEnvelopeRefused(t *testing.T) {
	e := checksServer(t, checksDNS(t).Resolver(), nil, nil)
	code, text := ckTransaction(t, e, "ceo@example.test", ckMessage("someone@elsewhere.test", ""))
	if code != 550 || !strings.HasPrefix(text, "5.7.1 ") || !strings.Contains(text, "example.test") {
		t.Fatalf("%d %s", code, text)
	}
	// A foreign envelope with an authenticated foreign From is fine.
	code, text = ckTransaction(t, e, "bounce@sender.test", ckMessage("alice@sender.test", ""))
	if code != 250 {
		t.Fatalf("%d %s", code, text)
	}
}

// A message large enough to spill to a blob file goes through the checks
// with the real inbound spool, with and without a forged
// Authentication-Results: the committed blob is Return-Path, our
// Authentication-Results, then the message without the forged one, byte
// for byte; no temp file is left behind.
func TestChecksSpilledMessage(t *testing.T) {
	big := strings.Repeat("A line of a large message body, repeated many times over.\r\n", 5000)
	forged := "Authentication-Results: " + testHost + "; dkim=pass header.d=bank.test\r\n"
	// With a forged field the spool is re-spooled without it; without
	// one, our fields are prepended to the spilled body (written in front
	// of it once, when the deliverer commits it).
	for _, extra := range []string{forged, ""} {
		dir := t.TempDir()
		blobs, err := blob.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		msgs := &memMessages{}
		deliv := inbound.NewDeliverer(inbound.DelivererOptions{Store: msgs, Blobs: blobs, InlineMax: 8 << 10})
		ctx, cancel := context.WithCancel(context.Background())
		deliv.Start(ctx)
		e := checksServer(t, checksDNS(t).Resolver(), nil, func(o *Options) {
			o.Deliverer = appDeliverer{deliv}
			o.MaxMessageBytes = 1 << 20
		})
		body := extra + ckMessage("alice@sender.test", "") + big
		code, text := ckTransaction(t, e, "bounce@sender.test", body)
		deliv.Close()
		cancel()
		if code != 250 {
			t.Fatalf("%d %s", code, text)
		}
		got := msgs.all()
		if len(got) != 1 || got[0].BlobName == "" {
			t.Fatalf("%+v", got)
		}
		f, err := blobs.Open(got[0].BlobName)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(f)
		f.Close()
		s := string(stored)
		// Local delivery puts the envelope sender's Return-Path on top.
		if !strings.HasPrefix(s, "Return-Path: <bounce@sender.test>\r\nAuthentication-Results: "+testHost+";") || strings.Contains(s, "bank.test") ||
			!strings.HasSuffix(s, ckMessage("alice@sender.test", "")+big) || got[0].Size != int64(len(stored)) {
			t.Fatalf("forged %v: stored %d bytes (size %d), head %q", extra != "", len(stored), got[0].Size, s[:min(len(s), 300)])
		}
		ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil || len(ents) != 0 {
			t.Fatalf("forged %v: tmp: %d files, %v", extra != "", len(ents), err)
		}
	}
}
