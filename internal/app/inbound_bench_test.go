package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/smtpd"
	"github.com/petrelmail/petrel/internal/store"
)

// BenchmarkInbound25 measures port 25 end to end as serve builds it (real
// store, deliverer with group commit and fsync, smtpd): 10 sessions send
// DKIM-signed 4 KiB messages to local users, with the inbound
// authentication checks off and on, with 10 and 50 sessions. With checks on, each message costs
// SPF for MAIL FROM and HELO, one DKIM verification (RSA 2048), the DMARC
// record and iprev, all answered by an in-process DNS server over UDP
// (RESOLVER_ADDRESS), and a re-spool with the Authentication-Results
// header. Reported: delivered messages/s.
//
//	go test -run XXX -bench Inbound25 -benchtime 3000x ./internal/app
func BenchmarkInbound25(b *testing.B) {
	for _, sessions := range []int{10, 50} {
		for _, checks := range []bool{false, true} {
			b.Run(fmt.Sprintf("sessions=%d/checks=%v", sessions, checks), func(b *testing.B) { benchInbound(b, sessions, checks) })
		}
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchInbound(b *testing.B, sessions int, checks bool) {
	benchInboundEnv(b, sessions, checks, nil)
}

// benchInboundEnv is benchInbound with extra settings (filter_bench_test.go).
func benchInboundEnv(b *testing.B, sessions int, checks bool, extra map[string]string) {
	ctx := context.Background()
	ns := dnstest.New(b)
	env := map[string]string{"RESOLVER_ADDRESS": ns.Addr}
	maps.Copy(env, extra)
	cfg, p := testParts(b, env)
	addDomain(b, p)
	for i := range sessions {
		u := store.NewUser(fmt.Sprintf("user%d", i), "example.test", 0, 80)
		if err := p.store.CreateUser(ctx, &u); err != nil {
			b.Fatal(err)
		}
	}

	// A mailbox of the given size: every session then delivers to user0.
	prefill := 0
	if v := extra["PETREL_BENCH_PREFILL"]; v != "" {
		var err error
		if prefill, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
		fillInbox(b, p, "user0@example.test", prefill)
	}

	// The sender's world: SPF, a DKIM key and p=reject.
	keys := msgauth.NewKeys(b.TempDir(), "sel")
	if err := keys.Generate(context.Background(), "sender.test"); err != nil {
		b.Fatal(err)
	}
	key, err := keys.Load(context.Background(), "sender.test")
	if err != nil {
		b.Fatal(err)
	}
	rec, err := msgauth.PublicKeyRecord(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	var parts []string
	for len(rec) > 255 {
		parts, rec = append(parts, rec[:255]), rec[255:]
	}
	txt := &dns.TXT{Hdr: dns.RR_Header{Name: "sel._domainkey.sender.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: append(parts, rec)}
	ns.Add(b, txt.String(),
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`mail.sender.test. TXT "v=spf1 a -all"`,
		"mail.sender.test. A 127.0.0.1",
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
	)
	raw := "From: Alice <alice@sender.test>\r\nTo: user@example.test\r\nSubject: bench\r\nMessage-ID: <b@sender.test>\r\n" +
		"Date: Fri, 04 Dec 2026 18:00:00 +0000\r\n\r\n" +
		strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", 64)
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: key}); err != nil {
		b.Fatal(err)
	}
	body := signed.String() + ".\r\n"

	o := smtpOptions(cfg, p)
	o.Role = smtpd.RoleMX
	o.MaxConnsPerIP = -1
	if !checks {
		o.Verifier, o.LocalDomains, o.Checker = nil, nil, nil
	} else if extra["PETREL_BENCH_NO_FILTER"] != "" {
		o.Checker = nil // authentication checks only
	}
	srv := smtpd.New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	conns := make([]*benchConn, sessions)
	for i := range conns {
		if conns[i], err = dialBench(ln.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer conns[i].c.Close()
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i, c := range conns {
		n := b.N / sessions
		if i < b.N%sessions {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				rcpt := fmt.Sprintf("user%d@example.test", i)
				if prefill > 0 {
					rcpt = "user0@example.test"
				}
				if err := c.send(rcpt, body); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	// CPU of the whole process (server, in-process DNS and the clients)
	// per message: the cost the checks add, less sensitive than msgs/s
	// to the other work on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

// BenchmarkInbound25Mailbox is port 25 with all the checks and the
// built-in filter into one mailbox that already holds 1,000 or 100,000
// messages (issue 10: the cost per message stays flat as mailboxes
// grow). All 10 sessions deliver to the same user.
//
//	go test -run XXX -bench Inbound25Mailbox -benchtime 3000x ./internal/app
func BenchmarkInbound25Mailbox(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			benchInboundEnv(b, 10, true, map[string]string{"PETREL_BENCH_PREFILL": strconv.Itoa(n)})
		})
	}
}

// fillInbox stores n small distinct messages in user's INBOX, in
// groups of 1,000 (untimed).
func fillInbox(b *testing.B, p *parts, user string, n int) {
	b.Helper()
	const group = 1000
	for i := 0; i < n; i += group {
		msgs := make([]*store.NewMessage, min(group, n-i))
		for j := range msgs {
			body := fmt.Sprintf("From: <s%d@old.test>\r\nSubject: old message %d\r\nMessage-ID: <%d@old.test>\r\n\r\nbody %d\r\n", (i+j)%97, i+j, i+j, i+j)
			msgs[j] = &store.NewMessage{ID: fmt.Sprint("fill", i+j), Body: []byte(body),
				Targets: []store.MailboxTarget{{User: user}}}
		}
		if err := p.store.CommitMessages(b.Context(), msgs); err != nil {
			b.Fatal(err)
		}
	}
	mb, err := p.store.GetMailbox(b.Context(), user, "INBOX")
	if err != nil || mb.Messages != n {
		b.Fatalf("INBOX after filling: %+v %v, want %d messages", mb, err, n)
	}
}

type benchConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialBench(addr string) (*benchConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	bc := &benchConn{c: c, r: bufio.NewReader(c)}
	if err := bc.expect("220"); err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte("EHLO mail.sender.test\r\n")); err != nil {
		return nil, err
	}
	return bc, bc.expect("250")
}

func (bc *benchConn) expect(code string) error {
	for {
		line, err := bc.r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, code) {
			return fmt.Errorf("want %s, got %q", code, line)
		}
		if len(line) > 3 && line[3] == ' ' {
			return nil
		}
	}
}

func (bc *benchConn) send(rcpt, body string) error {
	for _, step := range []struct{ cmd, want string }{
		{"MAIL FROM:<bounce@sender.test>\r\n", "250"}, {"RCPT TO:<" + rcpt + ">\r\n", "250"}, {"DATA\r\n", "354"}, {body, "250"},
	} {
		if _, err := bc.c.Write([]byte(step.cmd)); err != nil {
			return err
		}
		if err := bc.expect(step.want); err != nil {
			return fmt.Errorf("%.20q: %w", step.cmd, err)
		}
	}
	return nil
}
