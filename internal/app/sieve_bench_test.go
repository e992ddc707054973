package app

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/sieve"
)

// sieveRules returns a script of n rules in the shapes users' filters
// take (Roundcube's managesieve plugin writes such lists), none of which
// matches the benchmark's message, so every rule is evaluated and the
// message ends in INBOX by the implicit keep: the worst case.
func sieveRules(n int) string {
	var b strings.Builder
	b.WriteString(`require ["fileinto", "mailbox", "imap4flags", "variables", "regex", "relational", "comparator-i;ascii-numeric", "envelope", "body"];` + "\n")
	for i := range n {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "if header :contains \"subject\" \"topic-%d\" { fileinto :create \"Topics/%d\"; stop; }\n", i, i)
		case 1:
			fmt.Fprintf(&b, "if address :domain :is \"from\" \"domain%d.example\" { addflag \"$d%d\"; fileinto :create \"Domains/%d\"; }\n", i, i, i)
		case 2:
			fmt.Fprintf(&b, "if header :matches \"List-Id\" \"*<list%d.*>\" { fileinto :create \"Lists/${1}\"; stop; }\n", i)
		case 3:
			fmt.Fprintf(&b, "if anyof (header :regex \"x-mailer\" \"^tool%d/[0-9]+$\", envelope :is \"from\" \"bot%d@example.net\") { discard; stop; }\n", i, i)
		case 4:
			fmt.Fprintf(&b, "if allof (header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-priority\" \"%d\", size :over %dK) { fileinto :create \"Big/%d\"; }\n", 100+i, 500+i, i)
		}
	}
	return b.String()
}

// BenchmarkInboundSieve measures port 25 end to end (real store, group
// commit with fsync, smtpd; no inbound checks) with Sieve off, on for
// users without a script, and on with a 200-rule script for every user.
// Reported: delivered messages/s and process CPU per message.
//
//	go test -run XXX -bench InboundSieve -benchtime 2000x ./internal/app
func BenchmarkInboundSieve(b *testing.B) {
	for _, c := range []struct {
		name   string
		on     bool
		script string
	}{
		{"sieve=off", false, ""},
		{"sieve=on/script=none", true, ""},
		{"sieve=on/script=200rules", true, sieveRules(200)},
	} {
		b.Run(c.name, func(b *testing.B) { benchInboundSieve(b, c.on, c.script) })
	}
}

func benchInboundSieve(b *testing.B, on bool, script string) {
	const sessions = 10
	users := make([]string, sessions)
	for i := range users {
		users[i] = fmt.Sprintf("user%d", i)
	}
	s := startSieveServer(b, sieveSetup{on: on}, users...)
	if script != "" {
		if err := sieve.Check([]byte(script)); err != nil {
			b.Fatal(err)
		}
		for _, u := range users {
			s.scripts.set(u+"@example.test", script)
		}
	}
	body := "From: Alice <alice@sender.test>\r\nTo: user@example.test\r\nSubject: bench\r\nMessage-ID: <b@sender.test>\r\n" +
		"Date: Fri, 04 Dec 2026 18:00:00 +0000\r\nX-Priority: 3\r\n\r\n" +
		strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", 64) + ".\r\n"
	conns := make([]*benchConn, sessions)
	for i := range conns {
		c, err := dialBench(s.addr)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		defer c.c.Close()
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
				if err := c.send(fmt.Sprintf("user%d@example.test", i), body); err != nil {
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
	if script != "" {
		// Every message ran the script and was kept: none filed elsewhere.
		if got := s.where(b, "user0"); len(got) == 0 || got[len(got)-1] != "INBOX[]" {
			b.Fatalf("user0's messages: %v", got[:min(len(got), 3)])
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}
