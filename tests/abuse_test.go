package tests

// The abuse kit (issue 6): one running Petrel is abused in turn by
//
//  1. silent connections: 1,000 from one non-exempt address (the per-IP
//     limit answers 421 4.7.0 beyond 50), 1,000 spread over many
//     addresses (all held under the listener limit, then closed), and
//     floods of IMAP 143/993 and POP3 110;
//  2. slow drip: a whole transaction sent one byte at a time, and
//     sessions stalled inside DATA;
//  3. oversized input: a 100 KB command line, an endless line without
//     CRLF, long DATA lines and a message over MESSAGE_SIZE_LIMIT;
//  4. a message with 10,000 recipients (1,000 accepted, the rest 452
//     4.5.3; pipelined in one envelope the client is cut by the error
//     limit with 421 4.7.0, then delivers them in further transactions);
//  5. AUTH floods on 465 from one address and across many usernames and
//     networks (Mailu's limiter.py), and AUTH on port 25 (502 5.5.1, 421
//     4.7.0 after 20 in a session, Postfix's smtpd_hard_error_limit).
//
// Throughout, a normal client on 127.0.0.1 delivers on 25 and logs in on
// 465 and 993; its latency (p50/p99/max) and Petrel's memory (VmRSS,
// VmHWM, Pss) and descriptors are logged per scenario. The assertions are
// that it is served (within a generous 10 s), that memory stays under a
// bound that catches unbounded growth, that every refusal is a clear reply
// with a log line, that no message it got 250 for is lost, and that
// nothing panics.
//
// Short form (the default, for CI; about a minute with -race on 2 cores):
//
//	go test ./tests -run TestAbuseKit -v -count=1
//
// Long form (the full numbers, on demand; also waits out the 5-minute
// server timeouts of RFC 5321 4.5.3.2):
//
//	PETREL_ABUSE_LONG=1 go test ./tests -run TestAbuseKit -v -count=1 -timeout 30m

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// abuseSizes are the counts of one form of the kit.
type abuseSizes struct {
	silentOneIP     int // silent connections from one address (25)
	silentSpread    int // silent connections over many addresses (25)
	silentOther     int // silent connections from one address to 143, 993, 110
	dripPause       time.Duration
	stalledData     int // sessions stalled inside DATA
	stalledDataSize int // bytes each sent before stalling
	endlessLine     int // bytes of a line without CRLF
	sizeLimit       int64
	rcpts           int // recipients of the big envelope
	rcptRounds      int // transactions that deliver them (1,000 each)
	authFloodOneIP  int
	authSprayIPs    int // networks spraying usernames
	port25Auths     int
	waitTimeouts    bool // wait for the 5-minute server timeouts
}

func abuseForm() (string, abuseSizes) {
	if os.Getenv("PETREL_ABUSE_LONG") == "1" {
		return "long", abuseSizes{
			silentOneIP: 1000, silentSpread: 1900, silentOther: 1000,
			dripPause: 100 * time.Millisecond, stalledData: 200, stalledDataSize: 1 << 20,
			endlessLine: 64 << 20, sizeLimit: 50_000_000, rcpts: 10_000, rcptRounds: 10,
			authFloodOneIP: 1000, authSprayIPs: 240, port25Auths: 2000, waitTimeouts: true,
		}
	}
	return "short", abuseSizes{
		silentOneIP: 1000, silentSpread: 1000, silentOther: 250,
		dripPause: 15 * time.Millisecond, stalledData: 40, stalledDataSize: 256 << 10,
		endlessLine: 4 << 20, sizeLimit: 2_000_000, rcpts: 10_000, rcptRounds: 2,
		authFloodOneIP: 60, authSprayIPs: 60, port25Auths: 200,
	}
}

// abuseMaxHWM is the memory bound: far above Petrel's normal size, far
// below what unbounded buffering of this kit's input would take.
const abuseMaxHWM = 512 << 10 // KiB

// abuseKit is one running server under abuse.
type abuseKit struct {
	s     *server
	pid   int
	n     abuseSizes
	acked int // probe messages that got 250, over all phases
}

func TestAbuseKit(t *testing.T) {
	form, n := abuseForm()
	s := newServer(t, map[string]string{
		"PORTS":               "25,465,993,143,995,110",
		"MESSAGE_SIZE_LIMIT":  fmt.Sprint(n.sizeLimit),
		"RECIPIENT_DELIMITER": "+",
		"LOG_LEVEL":           "INFO",
	})
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.mustCLI("Secret-Bob-2\n", "user", "bob", "example.test", "-")
	s.mustCLI("Secret-Carol-3\n", "user", "carol", "example.test", "-")
	s.start()
	k := &abuseKit{s: s, pid: s.cmd.Process.Pid, n: n}
	t.Logf("abuse kit, %s form, petrel pid %d", form, k.pid)
	start := time.Now()

	// Long form: sessions left stalled now must be ended by the server's
	// own timeouts (RFC 5321 4.5.3.2.7, 4.5.3.2.6) by the end of the run.
	var witnesses []*abuseConn
	if n.waitTimeouts {
		witnesses = k.timeoutWitnesses(t)
	}

	k.phase(t, "baseline", func(t *testing.T, p *abuseProbe) { p.waitRounds(10) })
	k.phase(t, "silent_one_ip", k.silentOneIP)
	k.phase(t, "silent_spread", k.silentSpread)
	k.phase(t, "silent_imap_pop", k.silentOther)
	k.phase(t, "slow_drip", k.slowDrip)
	k.phase(t, "stalled_data", k.stalledData)
	k.phase(t, "oversized", k.oversized)
	k.phase(t, "many_recipients", k.manyRecipients)
	k.phase(t, "auth_flood_one_ip", k.authFloodOneIP)
	k.phase(t, "auth_spray", k.authSpray)
	k.phase(t, "auth_port25", k.authPort25)

	if n.waitTimeouts {
		k.checkTimeouts(t, witnesses, start)
	}

	logs := s.logs()
	for _, bad := range []string{"panic", "DATA RACE", "fatal error"} {
		if strings.Contains(logs, bad) {
			t.Errorf("server log contains %q", bad)
		}
	}
	if strings.Contains(logs, "Secret-Alice-1") || strings.Contains(logs, "Secret-Bob-2") {
		t.Error("a password reached the log")
	}
	s.stopClean()
	if got := countMessages(t, s, "alice@example.test"); got != k.acked {
		t.Errorf("alice has %d messages, the normal client got 250 for %d: lost or extra mail", got, k.acked)
	}
	t.Logf("whole kit: %v, %d probe messages delivered and stored", time.Since(start).Round(time.Second), k.acked)
}

// phase runs one scenario as a subtest while the normal client works and
// memory is sampled.
func (k *abuseKit) phase(t *testing.T, name string, run func(*testing.T, *abuseProbe)) {
	t.Run(name, func(t *testing.T) {
		before := abuseReadMem(k.pid)
		sampler := abuseStartSampler(k.pid)
		p := abuseStartProbe(k.s)
		began := time.Now()
		run(t, p)
		p.waitRounds(2) // served during (or right after) the abuse, too
		lat, errs, acked := p.finish()
		during := sampler.finish()
		k.acked += acked
		time.Sleep(300 * time.Millisecond) // let closed sessions unwind
		after := abuseReadMem(k.pid)
		t.Logf("%s took %v", name, time.Since(began).Round(time.Millisecond))
		for _, op := range []string{"smtp25", "auth465", "login993"} {
			t.Logf("  normal client %-8s %s", op, abuseQuantiles(lat[op]))
		}
		t.Logf("  memory before: %v", before)
		t.Logf("  memory peak:   %v", during)
		t.Logf("  memory after:  %v", after)
		for _, e := range errs {
			t.Errorf("normal client not served: %s", e)
		}
		for _, op := range []string{"smtp25", "auth465", "login993"} {
			if len(lat[op]) == 0 {
				t.Errorf("normal client: no successful %s during %s", op, name)
			}
		}
		if peak := max(during.HWM, after.HWM); peak > abuseMaxHWM {
			t.Errorf("VmHWM %d KiB exceeds %d KiB: memory grows with the abuse", peak, abuseMaxHWM)
		}
		if strings.Contains(k.s.logs(), "panic") {
			t.Fatalf("panic in the server log:\n%s", k.s.logs())
		}
		select {
		case <-k.s.exited:
			t.Fatalf("petrel exited: %v\n%s", k.s.waitErr, k.s.logs())
		default:
		}
	})
}

// silentOneIP: 1,000 connections from 127.0.0.2 that never speak. The
// per-IP limit (Postfix smtpd_client_connection_count_limit, 50) admits
// 50; the rest get 421 4.7.0 (or, beyond the bounded pool that answers
// refusals, a plain close), each with a log line. A freed slot is usable
// again.
func (k *abuseKit) silentOneIP(t *testing.T, p *abuseProbe) {
	const from = "127.0.0.2"
	logsBefore := abuseCount(k.s.logs(), "connection refused", "from your address")
	var hold abuseHold
	defer hold.closeAll()
	var tally abuseTally
	abuseParallel(k.n.silentOneIP, 64, func(i int) {
		c, err := abuseDial(from, k.s.addr[25], abuseServeTimeout)
		if err != nil {
			tally.add("dial error")
			return
		}
		line := abuseFirstLine(c, abuseServeTimeout)
		switch {
		case strings.HasPrefix(line, "220 "):
			tally.add("220")
			hold.add(c) // silent from now on
			return
		case strings.HasPrefix(line, "421 4.7.0 Too many connections from your address"):
			tally.add("421 4.7.0")
		case line == "":
			tally.add("closed")
		default:
			tally.add(line)
		}
		c.Close()
	})
	t.Logf("  %d silent connections from %s: %v", k.n.silentOneIP, from, &tally)
	if got := tally.get("220"); got != 50 {
		t.Errorf("%d connections from one address admitted, want the per-IP limit 50", got)
	}
	refused := tally.get("421 4.7.0") + tally.get("closed")
	if refused != k.n.silentOneIP-50 || tally.get("421 4.7.0") == 0 {
		t.Errorf("refusals: %v", &tally)
	}
	p.waitRounds(3)
	if got := abuseCount(k.s.logs(), "connection refused", "from your address") - logsBefore; got != refused {
		t.Errorf("%d refusal log lines, want %d", got, refused)
	}
	hold.closeAll()
	// The slots come back once the silent clients leave.
	abuseEventually(t, "a new connection from "+from+" admitted", func() bool {
		c, err := abuseDial(from, k.s.addr[25], abuseServeTimeout)
		if err != nil {
			return false
		}
		defer c.Close()
		return strings.HasPrefix(abuseFirstLine(c, abuseServeTimeout), "220 ")
	})
}

// silentSpread: silent connections over many addresses (40 each, under
// the per-IP limit): all admitted and held under the listener limit
// (2,000), then closed by the clients; Petrel's descriptors go up by
// about one per connection and come back down.
func (k *abuseKit) silentSpread(t *testing.T, p *abuseProbe) {
	before := abuseReadMem(k.pid)
	var hold abuseHold
	defer hold.closeAll()
	var tally abuseTally
	abuseParallel(k.n.silentSpread, 64, func(i int) {
		c, err := abuseDial(abuseIP(10+i/40, 1+i%40), k.s.addr[25], abuseServeTimeout)
		if err != nil {
			tally.add("dial error: " + err.Error())
			return
		}
		if line := abuseFirstLine(c, abuseServeTimeout); strings.HasPrefix(line, "220 ") {
			tally.add("220")
		} else {
			tally.add(line)
		}
		hold.add(c)
	})
	t.Logf("  %d silent connections from %d addresses: %v", k.n.silentSpread, (k.n.silentSpread+39)/40, &tally)
	if got := tally.get("220"); got != k.n.silentSpread {
		t.Errorf("%d of %d spread connections admitted", got, k.n.silentSpread)
	}
	p.waitRounds(3)
	held := abuseReadMem(k.pid)
	t.Logf("  holding: %v", held)
	if held.FDs < k.n.silentSpread {
		t.Errorf("petrel has %d descriptors while %d connections are held (before: %d)", held.FDs, k.n.silentSpread, before.FDs)
	}
	hold.closeAll()
	abuseEventually(t, "descriptors released", func() bool {
		return abuseReadMem(k.pid).FDs < before.FDs+50
	})
}

// silentOther: the same one-address flood against IMAP 143 (per-IP limit
// 100, refused with "* BYE"), POP3 110 (50, "-ERR") and implicit-TLS 993,
// whose refusals cost a handshake and so go through connlimit's bounded
// pool.
func (k *abuseKit) silentOther(t *testing.T, p *abuseProbe) {
	type target struct {
		port  int
		limit int
		ok    string
		no    string
	}
	for _, tg := range []target{{143, 100, "* OK", "* BYE"}, {110, 50, "+OK", "-ERR"}} {
		var hold abuseHold
		var tally abuseTally
		abuseParallel(k.n.silentOther, 64, func(i int) {
			c, err := abuseDial("127.0.0.3", k.s.addr[tg.port], abuseServeTimeout)
			if err != nil {
				tally.add("dial error")
				return
			}
			line := abuseFirstLine(c, abuseServeTimeout)
			switch {
			case strings.HasPrefix(line, tg.ok):
				tally.add("ok")
				hold.add(c)
				return
			case strings.HasPrefix(line, tg.no):
				tally.add("refused")
			case line == "":
				tally.add("closed")
			default:
				tally.add(line)
			}
			c.Close()
		})
		t.Logf("  port %d, %d silent connections from one address: %v", tg.port, k.n.silentOther, &tally)
		if tally.get("ok") != tg.limit || tally.get("refused") == 0 ||
			tally.get("refused")+tally.get("closed") != k.n.silentOther-tg.limit {
			t.Errorf("port %d: %v, want %d admitted and the rest refused", tg.port, &tally, tg.limit)
		}
		p.waitRounds(1)
		hold.closeAll()
	}
	// 993: silent clients never send a ClientHello. Admitted ones wait in
	// the handshake, refused ones are answered by a bounded pool; either
	// way the normal client on 993 is still served.
	var hold abuseHold
	defer hold.closeAll()
	abuseParallel(k.n.silentOther, 64, func(i int) {
		if c, err := abuseDial("127.0.0.3", k.s.addr[993], abuseServeTimeout); err == nil {
			hold.add(c)
		}
	})
	p.waitRounds(3)
	if !k.s.waitLog("connection refused") {
		t.Error("no refusal logged")
	}
}

// abuseEventually polls cond for up to 15 s.
func abuseEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("not within 15 s: %s", what)
}

// slowDrip sends a whole transaction one byte at a time with pauses: the
// server keeps serving others and accepts the message.
func (k *abuseKit) slowDrip(t *testing.T, p *abuseProbe) {
	c, err := abuseOpen("127.0.6.1", k.s.addr[25], false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	drip := func(line string) {
		for i := 0; i < len(line); i++ {
			if _, err := c.Write([]byte{line[i]}); err != nil {
				t.Fatalf("drip: %v", err)
			}
			time.Sleep(k.n.dripPause)
		}
	}
	if r, err := c.reply(); err != nil || !strings.HasPrefix(r, "220") {
		t.Fatalf("banner %q %v", r, err)
	}
	steps := []struct{ send, want string }{
		{"EHLO drip.example.org\r\n", "250"},
		{"MAIL FROM:<drip@example.org>\r\n", "250"},
		{"RCPT TO:<bob@example.test>\r\n", "250"},
		{"DATA\r\n", "354"},
		{"Subject: drip\r\n\r\none byte at a time\r\n.\r\n", "250"},
		{"QUIT\r\n", "221"},
	}
	for _, st := range steps {
		drip(st.send)
		if r, err := c.reply(); err != nil || !strings.HasPrefix(r, st.want) {
			t.Fatalf("after dripping %q: %q %v", st.send, r, err)
		}
	}
}

// stalledData: sessions that send part of a message and then stall. They
// hold a slot each but no memory beyond their buffers (the body is
// spooled to disk); the normal client is served meanwhile. When they give
// up, nothing is delivered and each is logged.
func (k *abuseKit) stalledData(t *testing.T, p *abuseProbe) {
	logsBefore := abuseCount(k.s.logs(), "stage=data")
	var hold abuseHold
	defer hold.closeAll()
	unit := "stalled body line, never finished .................................\r\n"
	chunk := strings.Repeat(unit, k.n.stalledDataSize/len(unit)+1)
	var failed abuseTally
	abuseParallel(k.n.stalledData, 16, func(i int) {
		c, err := abuseOpen(abuseIP(60+i/40, 1+i%40), k.s.addr[25], false)
		if err != nil {
			failed.add(err.Error())
			return
		}
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		c.reply()
		for _, st := range []struct{ send, want string }{
			{"EHLO stall.example.org", "250"}, {"MAIL FROM:<stall@example.org>", "250"},
			{"RCPT TO:<bob@example.test>", "250"}, {"DATA", "354"},
		} {
			if _, err := c.cmd(st.send, st.want); err != nil {
				failed.add(err.Error())
				c.Close()
				return
			}
		}
		if _, err := io.WriteString(c, "Subject: stalled\r\n\r\n"+chunk[:k.n.stalledDataSize]); err != nil {
			failed.add(err.Error())
		}
		hold.add(c)
	})
	if len(failed.m) > 0 {
		t.Errorf("setting up stalled sessions: %v", &failed)
	}
	p.waitRounds(3)
	t.Logf("  %d sessions stalled inside DATA after %d KiB each: %v", k.n.stalledData, k.n.stalledDataSize>>10, abuseReadMem(k.pid))
	hold.closeAll()
	abuseEventually(t, "each abandoned DATA logged", func() bool {
		return abuseCount(k.s.logs(), "stage=data")-logsBefore >= k.n.stalledData
	})
}

// oversized: over-long command lines and DATA lines, an endless line and
// a message over MESSAGE_SIZE_LIMIT each get a clear reply, and none is
// buffered whole.
func (k *abuseKit) oversized(t *testing.T, p *abuseProbe) {
	const from = "127.0.5.1"
	open := func() *abuseConn { return abuseEHLO(t, from, k.s.addr[25], "big.example.org") }
	// writeAll writes in the background: the server may stop reading
	// (and close) long before the client is done.
	writeAll := func(c *abuseConn, n int, unit string) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := []byte(strings.Repeat(unit, 64<<10/len(unit)))
			for sent := 0; sent < n; sent += len(buf) {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		return &wg
	}

	// A 100 KB command line: 500 and the connection is closed.
	c := open()
	wg := writeAll(c, 100<<10, "MAIL FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org>")
	r, err := c.reply()
	t.Logf("  100 KB command line: %q %v", r, err)
	if !strings.HasPrefix(r, "500 ") {
		t.Errorf("100 KB command line: got %q %v, want 500", r, err)
	}
	c.Close()
	wg.Wait()

	// An endless line without CRLF: the same, however much is sent.
	c = open()
	wg = writeAll(c, k.n.endlessLine, "x")
	r, err = c.reply()
	t.Logf("  endless line (%d MiB offered): %q %v", k.n.endlessLine>>20, r, err)
	if !strings.HasPrefix(r, "500 ") {
		t.Errorf("endless line: got %q %v, want 500", r, err)
	}
	c.Close()
	wg.Wait()

	// A DATA line of 1,500 bytes breaks RFC 5322 2.1.1's 998 but real
	// mail does that; Postfix takes it, and so does Petrel.
	c = open()
	for _, st := range []struct{ send, want string }{
		{"MAIL FROM:<long@example.org>", "250"}, {"RCPT TO:<bob@example.test>", "250"}, {"DATA", "354"},
		{"Subject: long line\r\n\r\n" + strings.Repeat("L", 1500) + "\r\n.", "250"},
	} {
		if _, err := c.cmd(st.send, st.want); err != nil {
			t.Errorf("1,500-byte DATA line: %v", err)
			break
		}
	}
	// A DATA line of 100 KB is refused.
	for _, st := range []struct{ send, want string }{
		{"MAIL FROM:<long@example.org>", "250"}, {"RCPT TO:<bob@example.test>", "250"}, {"DATA", "354"},
		{"Subject: longer line\r\n\r\n" + strings.Repeat("L", 100<<10) + "\r\n.", "500 5.5.2 Line too long; lines must be at most 32768 bytes"},
	} {
		if r, err := c.cmd(st.send, st.want); err != nil {
			t.Errorf("100 KB DATA line: %v", err)
			break
		} else if strings.HasPrefix(st.want, "500") {
			t.Logf("  100 KB DATA line: %q", r)
		}
	}
	c.Close()

	// SIZE= over the limit is refused at MAIL.
	c = open()
	if r, err := c.cmd(fmt.Sprintf("MAIL FROM:<big@example.org> SIZE=%d", k.n.sizeLimit+1), "552 5.3.4"); err != nil {
		t.Errorf("MAIL SIZE over the limit: %v", err)
	} else {
		t.Logf("  MAIL SIZE=%d: %q", k.n.sizeLimit+1, r)
	}
	// A message over the limit without SIZE: 552 5.3.4 after the data.
	for _, st := range []string{"MAIL FROM:<big@example.org>", "RCPT TO:<bob@example.test>", "DATA"} {
		if _, err := c.cmd(st, ""); err != nil {
			t.Fatal(err)
		}
	}
	line := strings.Repeat("B", 998) + "\r\n"
	wg = writeAll(c, int(k.n.sizeLimit)+(1<<20), line)
	wg.Wait()
	r, err = c.cmd("\r\n.", "552 5.3.4")
	t.Logf("  message over MESSAGE_SIZE_LIMIT=%d: %q %v", k.n.sizeLimit, r, err)
	if err != nil {
		t.Errorf("oversized message: %v", err)
	}
	c.Close()
	// IMAP and POP3 bound their command lines too: an endless line gets
	// BAD (or BYE) and -ERR, however much is sent.
	for _, tg := range []struct {
		port       int
		greet      string
		want1, or2 string
	}{{143, "* OK", "BAD", "BYE"}, {110, "+OK", "-ERR", "-ERR"}} {
		c, err := abuseOpen(from, k.s.addr[tg.port], false)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
		if g, _ := c.r.ReadString('\n'); !strings.HasPrefix(g, tg.greet) {
			t.Fatalf("port %d greeting %q", tg.port, g)
		}
		if tg.port == 143 {
			io.WriteString(c, "a1 LOGIN ")
		}
		writeAll(c, k.n.endlessLine, "x").Wait()
		io.WriteString(c, "\r\n")
		r, err := c.r.ReadString('\n')
		t.Logf("  port %d endless line (%d MiB offered): %q %v", tg.port, k.n.endlessLine>>20, strings.TrimSpace(r), err)
		if (!strings.Contains(r, tg.want1) && !strings.Contains(r, tg.or2)) || !strings.Contains(strings.ToLower(r), "too long") {
			t.Errorf("port %d endless line: %q %v, want %s", tg.port, r, err, tg.want1)
		}
		c.Close()
	}

	// Every refusal has its log line, go-smtp's own included.
	for _, want := range []struct {
		n    int
		subs []string
	}{
		// The 100 KB line, the endless line, and go-smtp's hang-up after
		// the 100 KB DATA line (the line limit poisons the stream).
		{3, []string{"stage=command", "code=500", "max_line_length=32768"}},
		{1, []string{"stage=data", "code=500", "Line too long"}},
		{1, []string{"stage=size", "code=552"}},
		{1, []string{"stage=data", "code=552"}},
	} {
		abuseEventually(t, fmt.Sprintf("%d log lines with %q from %s", want.n, want.subs, from), func() bool {
			return abuseCount(k.s.logs(), append(want.subs, "remote="+from)...) == want.n
		})
	}
	p.waitRounds(2)
}

// manyRecipients: 10,000 recipients. RFC 5321 4.5.3.1.8 asks servers to
// take at least 100; Petrel takes 1,000 per transaction (Postfix
// smtpd_recipient_limit) and answers the rest 452 4.5.3 (RFC 5321
// 4.5.3.1.10). The first 1,000 of those 452s are free (Postfix
// smtpd_recipient_overshoot_limit); each later one is an error, and at the
// 20th error (smtpd_hard_error_limit) the client gets 421 4.7.0 and is cut,
// its transaction lost. So one envelope of 10,000 pipelined at once is
// cut; the client reconnects and, as a real client would after that,
// offers at most 2,000 per transaction (1,000 accepted, 1,000 free 452s)
// and sends the rest in further transactions.
func (k *abuseKit) manyRecipients(t *testing.T, p *abuseProbe) {
	const from = "127.0.7.1"
	open := func() *abuseConn { return abuseEHLO(t, from, k.s.addr[25], "many.example.org") }
	// offer pipelines (RFC 2920) RCPTs for recipients [first, first+n) and
	// tallies their replies; it stops early at a 421.
	offer := func(c *abuseConn, first, n int) (accepted int, tally *abuseTally, last string) {
		tally = &abuseTally{}
		go func() {
			var b strings.Builder
			for i := first; i < first+n; i++ {
				fmt.Fprintf(&b, "RCPT TO:<carol+%d@example.test>\r\n", i)
				if b.Len() > 32<<10 {
					if _, err := io.WriteString(c, b.String()); err != nil {
						return // the server hung up
					}
					b.Reset()
				}
			}
			io.WriteString(c, b.String())
		}()
		for i := 0; i < n; i++ {
			r, err := c.reply()
			if err != nil {
				t.Fatalf("reply %d: %q %v", i, r, err)
			}
			switch {
			case strings.HasPrefix(r, "250"):
				tally.add("250")
				accepted++
			case strings.HasPrefix(r, "452 4.5.3"):
				tally.add("452 4.5.3")
			case strings.HasPrefix(r, "421"):
				return accepted, tally, r
			default:
				tally.add(r)
			}
		}
		return accepted, tally, ""
	}

	// One envelope of all 10,000: cut after 1,000 + 1,000 + 20 replies.
	c := open()
	if _, err := c.cmd("MAIL FROM:<list@example.org>", "250"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	accepted, tally, last := offer(c, 0, k.n.rcpts)
	rest, err := c.r.ReadString('\n')
	c.Close()
	t.Logf("  one envelope of %d recipients: %v then %q, then %q %v, after %v", k.n.rcpts, tally, last, rest, err, time.Since(began).Round(time.Millisecond))
	if accepted != 1000 || tally.get("452 4.5.3") != 1000+20 || last != "421 4.7.0 "+abuseHostname+" Error: too many errors" || err != io.EOF {
		t.Errorf("one envelope of %d: %v then %q, %v; want 1,000 250, 1,020 452 4.5.3, then 421 4.7.0 and the close", k.n.rcpts, tally, last, err)
	}
	abuseEventually(t, "one too-many-errors log line for "+from, func() bool {
		return abuseCount(k.s.logs(), "session ended: too many errors", "remote="+from, "stage=rcpt", "errors=20") == 1
	})

	// Reconnect; at most 2,000 per transaction, each delivered.
	c = open()
	defer c.Close()
	next := 0
	for round := 0; round < k.n.rcptRounds && next < k.n.rcpts; round++ {
		_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, err := c.cmd("MAIL FROM:<list@example.org>", "250"); err != nil {
			t.Fatal(err)
		}
		n := min(2000, k.n.rcpts-next)
		accepted, tally, last := offer(c, next, n)
		if last != "" {
			t.Fatalf("transaction %d cut: %v then %q", round+1, tally, last)
		}
		if _, err := c.cmd("DATA", "354"); err != nil {
			t.Fatal(err)
		}
		r, err := c.cmd(fmt.Sprintf("Subject: round %d\r\n\r\nto many\r\n.", round), "250")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("  transaction %d offered %d recipients: %v; DATA: %q", round+1, n, tally, r)
		if accepted != min(1000, n) || tally.get("452 4.5.3") != n-accepted {
			t.Errorf("transaction %d: %v, want 1000 accepted and the rest 452 4.5.3", round+1, tally)
		}
		next += accepted
	}
	if k.n.rcptRounds*1000 >= k.n.rcpts && next != k.n.rcpts {
		t.Errorf("%d of %d recipients delivered", next, k.n.rcpts)
	}
	p.waitRounds(2)
}

// authFloodOneIP: failed logins on 465 from one address. After
// AUTH_RATELIMIT_IP (5/hour) distinct usernames from its network the
// limiter answers 451 4.3.2 for every login from that /24, even a right
// password (Mailu: limiter.py rate_limit_ip); a user on another network
// still logs in.
func (k *abuseKit) authFloodOneIP(t *testing.T, p *abuseProbe) {
	var tally abuseTally
	abuseParallel(k.n.authFloodOneIP, 4, func(i int) {
		r, err := abuseAuth465("127.0.1.2", k.s.addr[465], fmt.Sprintf("guess%d@example.test", i), "password123")
		if err != nil && r == "" {
			tally.add("error: " + err.Error())
			return
		}
		tally.add(r)
	})
	t.Logf("  %d failed logins from 127.0.1.2: %v", k.n.authFloodOneIP, &tally)
	bad := tally.get("535 5.7.8 Authentication credentials invalid")
	limited := tally.get("451 4.3.2 Temporary authentication failure (rate-limit)")
	if bad < 5 || bad > 5+4 || bad+limited != k.n.authFloodOneIP {
		t.Errorf("want 5 (plus at most one per concurrent worker) 535 5.7.8 then 451 4.3.2: %v", &tally)
	}
	if r, _ := abuseAuth465("127.0.1.3", k.s.addr[465], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, "451 4.3.2") {
		t.Errorf("right password from the limited network: %q, want 451 4.3.2", r)
	}
	if r, err := abuseAuth465("127.0.2.1", k.s.addr[465], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, "235") {
		t.Errorf("bob from another network: %q %v, want 235", r, err)
	}
	if abuseCount(k.s.logs(), "Login attempt for:", "127.0.1.2", "ratelimit") == 0 {
		t.Error("no rate-limit log line for 127.0.1.2")
	}
	p.waitRounds(2)
}

// authSpray: many networks, one attempt each. Unknown usernames from
// distinct /24s never trip the per-network limit (as in Mailu); distinct
// wrong passwords for one user from many networks spend the account's
// budget, AUTH_RATELIMIT_USER (50/day), after exactly 50; then the right
// password is refused from a network the user never logged in from, while
// a network the user logged in from before still gets in (README
// "Failed-login limits").
func (k *abuseKit) authSpray(t *testing.T, p *abuseProbe) {
	var unknown, user abuseTally
	abuseParallel(k.n.authSprayIPs, 4, func(i int) {
		from := abuseIP(10+i, 9)
		r, _ := abuseAuth465(from, k.s.addr[465], fmt.Sprintf("spray%d@example.test", i), "hunter2")
		unknown.add(r)
		r, _ = abuseAuth465(from, k.s.addr[465], "bob@example.test", fmt.Sprintf("wrong-%d", i))
		user.add(r)
	})
	t.Logf("  %d networks, unknown usernames: %v", k.n.authSprayIPs, &unknown)
	t.Logf("  %d networks, bob with distinct wrong passwords: %v", k.n.authSprayIPs, &user)
	if unknown.get("535 5.7.8 Authentication credentials invalid") != k.n.authSprayIPs {
		t.Errorf("unknown usernames from distinct networks: %v, want all 535 5.7.8", &unknown)
	}
	bad := user.get("535 5.7.8 Authentication credentials invalid")
	if want := min(50, k.n.authSprayIPs); bad < want || bad > want+4 || bad+user.get("451 4.3.2 Temporary authentication failure (rate-limit)") != k.n.authSprayIPs {
		t.Errorf("bob: %v, want about %d 535 then 451 4.3.2", &user, want)
	}
	if k.n.authSprayIPs > 54 {
		if r, _ := abuseAuth465("127.0.3.1", k.s.addr[465], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, "451 4.3.2") {
			t.Errorf("bob from a new address after the spray: %q, want 451 4.3.2", r)
		}
	}
	if r, _ := abuseAuth465("127.0.2.1", k.s.addr[465], "bob@example.test", "Secret-Bob-2"); !strings.HasPrefix(r, "235") {
		t.Errorf("bob from his earlier address: %q, want 235", r)
	}
	p.waitRounds(2)
}

// authPort25: AUTH on port 25 is answered 502 5.5.1 every time, with no
// password check. Each is an error, as in Postfix, so one session gets 20
// (smtpd_hard_error_limit; the last 10 each delayed by
// smtpd_error_sleep_time, 1 s), then 421 4.7.0 and the close. The flood
// reconnects, as a real client would, several sessions at a time; a
// session under the limit goes on.
func (k *abuseKit) authPort25(t *testing.T, p *abuseProbe) {
	const from, perSession = "127.0.4.1", 20
	var tally abuseTally
	sessions := (k.n.port25Auths + perSession - 1) / perSession
	began := time.Now()
	abuseParallel(sessions, 10, func(i int) {
		c, err := abuseOpen(from, k.s.addr[25], false)
		if err != nil {
			tally.add("error: " + err.Error())
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
		c.reply()
		c.cmd("EHLO mx.example.org", "250")
		n := min(perSession, k.n.port25Auths-i*perSession)
		for j := 0; j < n; j++ {
			r, _ := c.cmd("AUTH PLAIN "+abusePlain(fmt.Sprintf("u%d@example.test", i*perSession+j), "pw"), "")
			tally.add(r)
		}
		if n < perSession {
			c.cmd("QUIT", "221")
			return
		}
		r, _ := c.reply()
		if _, err := c.r.ReadString('\n'); err == io.EOF {
			r += " + close"
		}
		tally.add(r)
	})
	t.Logf("  %d AUTH on port 25 in %d sessions: %v in %v", k.n.port25Auths, sessions, &tally, time.Since(began).Round(time.Millisecond))
	if tally.get("502 5.5.1 AUTH not supported on port 25 (server-to-server mail); authenticated clients submit on port 465") != k.n.port25Auths {
		t.Errorf("want 502 5.5.1 every time: %v", &tally)
	}
	full := k.n.port25Auths / perSession
	if tally.get("421 4.7.0 "+abuseHostname+" Error: too many errors + close") != full {
		t.Errorf("want %d sessions ended with 421 4.7.0 and the close: %v", full, &tally)
	}
	abuseEventually(t, fmt.Sprintf("%d too-many-errors log lines for %s", full, from), func() bool {
		return abuseCount(k.s.logs(), "session ended: too many errors", "remote="+from, "stage=auth") == full
	})
	// Under the limit the session goes on.
	c, err := abuseOpen(from, k.s.addr[25], false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.reply()
	c.cmd("EHLO mx.example.org", "250")
	if _, err := c.cmd("AUTH PLAIN "+abusePlain("x@example.test", "pw"), "502 5.5.1"); err != nil {
		t.Error(err)
	}
	if _, err := c.cmd("MAIL FROM:<x@example.org>", "250"); err != nil {
		t.Errorf("session after one AUTH: %v", err)
	}
	if abuseCount(k.s.logs(), "port 25 does not accept AUTH", from) == 0 {
		t.Error("no log line for AUTH on port 25")
	}
	p.waitRounds(2)
}

// timeoutWitnesses opens two sessions that stall: one in the middle of a
// command line, one inside DATA.
func (k *abuseKit) timeoutWitnesses(t *testing.T) []*abuseConn {
	var out []*abuseConn
	for i, steps := range [][]string{{"EHLO w1.example.org"}, {"EHLO w2.example.org", "MAIL FROM:<w@example.org>", "RCPT TO:<bob@example.test>", "DATA"}} {
		c, err := abuseOpen(abuseIP(8, 1+i), k.s.addr[25], false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Time{})
		c.reply()
		for _, s := range steps {
			if _, err := c.cmd(s, ""); err != nil {
				t.Fatal(err)
			}
		}
		io.WriteString(c, map[int]string{0: "MAIL FROM:<half", 1: "Subject: half\r\n\r\nhalf a bo"}[i])
		out = append(out, c)
	}
	return out
}

// checkTimeouts waits until the witnesses have been stalled for the
// 5-minute server timeout and checks that Petrel ended both with 421 4.4.2
// and hung up. (go-smtp runs the half command line when the timeout
// strikes, so the first witness also gets a 501 for it first.)
func (k *abuseKit) checkTimeouts(t *testing.T, ws []*abuseConn, since time.Time) {
	for i, c := range ws {
		_ = c.SetReadDeadline(since.Add(7 * time.Minute))
		var lines []string
		var err error
		for {
			var l string
			if l, err = c.r.ReadString('\n'); err != nil {
				break
			}
			lines = append(lines, strings.TrimSpace(l))
		}
		t.Logf("stalled session %d: %q, then %v, after %v", i+1, lines, err, time.Since(since).Round(time.Second))
		got421 := false
		for _, l := range lines {
			got421 = got421 || strings.HasPrefix(l, "421 4.4.2")
		}
		if !got421 || err != io.EOF {
			t.Errorf("stalled session %d: %q then %v; want 421 4.4.2 from the server timeout, then the server hanging up", i+1, lines, err)
		}
	}
	for _, want := range [][]string{{"remote=127.0.8.1", "stage=command", "code=421"}, {"remote=127.0.8.2", "stage=data", "i/o timeout"}} {
		abuseEventually(t, fmt.Sprintf("one log line with %q", want), func() bool { return abuseCount(k.s.logs(), want...) == 1 })
	}
}
