package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the abuse kit (abuse_test.go): a normal client that measures
// its latency while abusers run, Petrel's memory and file descriptors from
// /proc, and clients bound to chosen loopback addresses.

// abuseHostname is the HOSTNAMES the harness gives Petrel: the name in its
// 421 replies.
const abuseHostname = "mail.example.test"

// abuseServeTimeout is how long one normal-client operation may take
// before the kit calls it unserved; generous on purpose (no speed target).
const abuseServeTimeout = 10 * time.Second

// abuseDial connects to addr from the loopback address from ("" for the
// default, 127.0.0.1). Linux routes all of 127.0.0.0/8 to lo, so each
// address is a distinct client to Petrel's per-IP limits.
func abuseDial(from, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return d.Dial("tcp", addr)
}

// abuseIP is 127.0.b.c: the kit's abusers live outside 127.0.0.1, which
// Petrel exempts from per-IP limits as Mailu's mynetworks.
func abuseIP(b, c int) string { return fmt.Sprintf("127.0.%d.%d", b, c) }

// abuseConn is a line-oriented client for abusers; unlike dialog its
// failures are returned, not fatal, so it runs on any goroutine.
type abuseConn struct {
	net.Conn
	r *bufio.Reader
}

func abuseOpen(from, addr string, useTLS bool) (*abuseConn, error) {
	c, err := abuseDial(from, addr, abuseServeTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(abuseServeTimeout))
	if useTLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	return &abuseConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// reply reads one SMTP reply (all lines) and returns its last line.
// abuseEHLO opens a port-25 session from the address from, reads the
// greeting and says EHLO helo; the session may last two minutes.
func abuseEHLO(t *testing.T, from, addr, helo string) *abuseConn {
	t.Helper()
	c, err := abuseOpen(from, addr, false)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	c.reply()
	if _, err := c.cmd("EHLO "+helo, "250"); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *abuseConn) reply() (string, error) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return line, err
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}

// cmd sends line and returns the reply's last line; an error if it does
// not start with want.
func (c *abuseConn) cmd(line, want string) (string, error) {
	if _, err := io.WriteString(c, line+"\r\n"); err != nil {
		return "", err
	}
	r, err := c.reply()
	if err == nil && !strings.HasPrefix(r, want) {
		err = fmt.Errorf("after %.40q: got %q, want %s", line, r, want)
	}
	return r, err
}

func abusePlain(user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
}

// abuseAuth465 logs in on 465 from from and returns the AUTH reply.
func abuseAuth465(from, addr, user, pw string) (string, error) {
	c, err := abuseOpen(from, addr, true)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.reply(); err != nil {
		return "", err
	}
	if _, err := c.cmd("EHLO laptop", "250"); err != nil {
		return "", err
	}
	r, err := c.cmd("AUTH PLAIN "+abusePlain(user, pw), "")
	_, _ = io.WriteString(c, "QUIT\r\n")
	return r, err
}

// abuseIMAPLogin logs in on 993 and out again.
func abuseIMAPLogin(addr, user, pw string) error {
	c, err := abuseOpen("", addr, true)
	if err != nil {
		return err
	}
	defer c.Close()
	greet, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greet, "* OK") {
		return fmt.Errorf("imap greeting %q: %v", greet, err)
	}
	if err := abuseIMAPCmd(c, "a1 LOGIN "+user+" "+pw, "a1 OK"); err != nil {
		return err
	}
	return abuseIMAPCmd(c, "a2 LOGOUT", "a2 OK")
}

func abuseIMAPCmd(c *abuseConn, line, want string) error {
	if _, err := io.WriteString(c, line+"\r\n"); err != nil {
		return err
	}
	tag := strings.Fields(want)[0] + " "
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s: %w", line, err)
		}
		if strings.HasPrefix(l, tag) {
			if !strings.HasPrefix(l, want) {
				return fmt.Errorf("%s: got %q", strings.Fields(line)[1], l)
			}
			return nil
		}
	}
}

// abuseProbe is the normal client: from 127.0.0.1 it repeatedly delivers
// one message to alice on 25 and logs in on 465 and 993, timing each.
type abuseProbe struct {
	s    *server
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	lat    map[string][]time.Duration
	errs   []string
	rounds int
	acked  int // messages that got 250 on port 25
}

func abuseStartProbe(s *server) *abuseProbe {
	p := &abuseProbe{s: s, stop: make(chan struct{}), done: make(chan struct{}), lat: map[string][]time.Duration{}}
	go p.loop()
	return p
}

func (p *abuseProbe) loop() {
	defer close(p.done)
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		default:
		}
		p.time("smtp25", func() error { return sendOne(p.s.addr[25], fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)) })
		p.time("auth465", func() error {
			r, err := abuseAuth465("", p.s.addr[465], "alice@example.test", "Secret-Alice-1")
			if err == nil && !strings.HasPrefix(r, "235") {
				err = fmt.Errorf("AUTH got %q", r)
			}
			return err
		})
		p.time("login993", func() error { return abuseIMAPLogin(p.s.addr[993], "alice@example.test", "Secret-Alice-1") })
		p.mu.Lock()
		p.rounds++
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *abuseProbe) time(op string, f func() error) {
	start := time.Now()
	err := f()
	d := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s after %v: %v", op, d.Round(time.Millisecond), err))
		return
	}
	if op == "smtp25" {
		p.acked++
	}
	p.lat[op] = append(p.lat[op], d)
}

// waitRounds blocks until the probe has completed n more rounds (each
// round is all three operations), or 60 s have passed.
func (p *abuseProbe) waitRounds(n int) {
	p.mu.Lock()
	target := p.rounds + n
	p.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		r := p.rounds
		p.mu.Unlock()
		if r >= target {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops the probe and returns its latencies, errors and acked
// messages.
func (p *abuseProbe) finish() (map[string][]time.Duration, []string, int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lat, p.errs, p.acked
}

// abuseQuantiles renders p50/p99/max of ds.
func abuseQuantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) time.Duration { return s[min(len(s)-1, int(f*float64(len(s))))] }
	r := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(s), r(q(0.5)), r(q(0.99)), r(s[len(s)-1]))
}

// abuseMem is Petrel's memory and descriptor use from /proc.
type abuseMem struct {
	RSS, HWM, Pss int64 // KiB
	FDs           int
}

func (m abuseMem) String() string {
	return fmt.Sprintf("VmRSS=%.1fMiB VmHWM=%.1fMiB Pss=%.1fMiB fds=%d",
		float64(m.RSS)/1024, float64(m.HWM)/1024, float64(m.Pss)/1024, m.FDs)
}

func abuseReadMem(pid int) abuseMem {
	var m abuseMem
	field := func(file, name string) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
		if err != nil {
			return -1
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, name+":") {
				f := strings.Fields(l[len(name)+1:])
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					return n
				}
			}
		}
		return -1
	}
	m.RSS = field("status", "VmRSS")
	m.HWM = field("status", "VmHWM")
	m.Pss = field("smaps_rollup", "Pss")
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		m.FDs = len(ents)
	}
	return m
}

// abuseSampler records the peak of Petrel's memory and descriptors while
// a scenario runs.
type abuseSampler struct {
	stop chan struct{}
	done chan struct{}
	peak abuseMem
}

func abuseStartSampler(pid int) *abuseSampler {
	s := &abuseSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			m := abuseReadMem(pid)
			s.peak.RSS = max(s.peak.RSS, m.RSS)
			s.peak.HWM = max(s.peak.HWM, m.HWM)
			s.peak.Pss = max(s.peak.Pss, m.Pss)
			s.peak.FDs = max(s.peak.FDs, m.FDs)
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *abuseSampler) finish() abuseMem {
	close(s.stop)
	<-s.done
	return s.peak
}

// abuseFirstLine reads the first line a server sends, or "" at EOF/reset.
func abuseFirstLine(c net.Conn, d time.Duration) string {
	_ = c.SetReadDeadline(time.Now().Add(d))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n")
}

// abuseParallel runs f(i) for i in [0,n) on at most workers goroutines.
func abuseParallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// abuseCount counts the log lines containing all of subs.
func abuseCount(log string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// abuseHold keeps connections open until closed together.
type abuseHold struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (h *abuseHold) add(c net.Conn) {
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
}

func (h *abuseHold) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// abuseTally counts outcomes by label from many goroutines.
type abuseTally struct {
	mu sync.Mutex
	m  map[string]int
}

func (t *abuseTally) add(label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]int{}
	}
	t.m[label]++
}

func (t *abuseTally) get(label string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[label]
}

func (t *abuseTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%d ", k, t.m[k])
	}
	return b.String()
}
