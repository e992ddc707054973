// Command imapload is the IMAP load client of bench/imap.sh: a small
// raw-protocol client (tagged commands, literals) over implicit TLS, so
// that it takes little of the CPU it shares with the servers it measures.
//
//	imapload -mode logins -addr HOST:PORT -user U -pass P [-c 1] [-d 10s] [-n 0]
//	    C workers loop: connect, TLS handshake, greeting, LOGIN, LOGOUT,
//	    close. One row: logins/s and the latency of a whole login
//	    (connect to tagged LOGIN OK) at p50 and p99. -n stops after n
//	    logins in all (-n 1 -c 1: one login, e.g. the first, uncached one).
//	imapload -mode append ... [-c 1] [-n 2000] [-size 4096] [-mailbox INBOX]
//	    C connections, each logged in once, APPEND one message at a time
//	    (waiting for its tagged OK) until n in all; APPEND/s, p50, p99.
//	imapload -mode fill ... [-c 4] [-n 10000] [-window 32]
//	    Like append but pipelined: up to -window APPENDs in flight per
//	    connection with LITERAL+ (RFC 7888); prepares a large mailbox.
//	imapload -mode fetch ... [-reps 3] [-bodies 100] [-expect 10000]
//	    -reps times, on a fresh connection (login not timed): SELECT;
//	    UID FETCH 1:* (UID FLAGS); FETCH 1:* (ENVELOPE); UID FETCH 1:*
//	    (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (...)]) as a
//	    client's first sync does; UID SEARCH UNSEEN; UID SEARCH SUBJECT;
//	    BODY.PEEK[] of -bodies messages spread over the mailbox, one
//	    command each. One row per step and repetition.
//	imapload -mode maildir -dir D -n N [-size 4096] -user U
//	    writes -mode fill's messages as Maildir files in D/cur (no
//	    server); -mode index then SELECTs them once, untimed.
//	imapload -mode mbox -dir FILE -n N [-size 4096] -user U
//	    writes the same messages as one mbox file (imaptest mbox=).
//	imapload -mode scaling ... [-expect N] [-exp1 1000] [-exp2 20000]
//	    bench/scaling.sh's operations on a filled mailbox, one row each:
//	    SELECT, FETCH FLAGS, header SEARCHes cold and warm, STORE, two
//	    EXPUNGEs and another session's NOOP after each (scaling.go).
//
// Output: TSV rows (-header prints the column names first):
//
//	mode step conc rep n errors seconds rate p50_ms p99_ms bytes client_cpu_s
//
// n is what was done (logins, APPENDs, untagged responses of a fetch
// step), rate is n/seconds, client_cpu_s the user+system CPU this process
// used for the whole row. Certificates are not verified. -kex x25519 (the
// default) offers only X25519 so that both servers do the same key
// exchange: Go servers would otherwise pick the costlier post-quantum
// hybrid that OpenSSL 3.0 (Dovecot) does not have.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	mode, addr, user, pass, mailbox, kex string
	dir                                  string
	conc, n, size, reps, bodies, window  int
	expect, exp1, exp2                   int
	dur, timeout                         time.Duration
	header                               bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("imapload", flag.ExitOnError)
	fs.StringVar(&o.mode, "mode", "", "logins, append, fill, fetch or scaling")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:993", "server address (implicit TLS)")
	fs.StringVar(&o.user, "user", "", "user name")
	fs.StringVar(&o.pass, "pass", "", "password")
	fs.StringVar(&o.mailbox, "mailbox", "INBOX", "mailbox for append, fill and fetch")
	fs.StringVar(&o.kex, "kex", "x25519", "TLS key exchange: x25519 or default (Go's list)")
	fs.IntVar(&o.conc, "c", 1, "concurrent connections")
	fs.IntVar(&o.n, "n", 0, "operations in all (logins: 0 = until -d; append: default 2000; fill: default 10000)")
	fs.IntVar(&o.size, "size", 4096, "message size in bytes")
	fs.IntVar(&o.reps, "reps", 3, "fetch: repetitions")
	fs.IntVar(&o.bodies, "bodies", 100, "fetch: messages whose BODY.PEEK[] is fetched")
	fs.IntVar(&o.window, "window", 32, "fill: APPENDs in flight per connection")
	fs.IntVar(&o.expect, "expect", 0, "fetch: fail unless SELECT reports this many messages (0: any)")
	fs.StringVar(&o.dir, "dir", "", "maildir: the Maildir to write; mbox: the mbox file to write")
	fs.IntVar(&o.exp1, "exp1", 1000, "scaling: messages of the first EXPUNGE")
	fs.IntVar(&o.exp2, "exp2", 20000, "scaling: messages of the second EXPUNGE")
	fs.DurationVar(&o.dur, "d", 10*time.Second, "logins: duration")
	fs.DurationVar(&o.timeout, "timeout", 120*time.Second, "deadline of one exchange")
	fs.BoolVar(&o.header, "header", false, "print the TSV column names first")
	_ = fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "imapload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.user == "" {
		return errors.New("-user is required")
	}
	if o.mode == "mbox" {
		if o.dir == "" || o.n <= 0 {
			return errors.New("-mode mbox needs -dir (the file) and -n")
		}
		return runMbox(o, out)
	}
	if o.mode == "maildir" {
		if o.dir == "" || o.n <= 0 {
			return errors.New("-mode maildir needs -dir and -n")
		}
		return runMaildir(o, out)
	}
	tc := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} // bench: self-signed certificates
	switch o.kex {
	case "x25519":
		tc.CurvePreferences = []tls.CurveID{tls.X25519}
	case "default":
	default:
		return fmt.Errorf("-kex %q: want x25519 or default", o.kex)
	}
	d := &dialer{addr: o.addr, tls: tc, timeout: o.timeout}
	if o.header {
		fmt.Fprintln(out, "mode\tstep\tconc\trep\tn\terrors\tseconds\trate\tp50_ms\tp99_ms\tbytes\tclient_cpu_s")
	}
	switch o.mode {
	case "logins":
		return runLogins(ctx, d, o, out)
	case "append":
		if o.n == 0 {
			o.n = 2000
		}
		return runAppend(ctx, d, o, out, false)
	case "fill":
		if o.n == 0 {
			o.n = 10000
		}
		return runAppend(ctx, d, o, out, true)
	case "fetch":
		return runFetch(ctx, d, o, out)
	case "scaling":
		return runScaling(ctx, d, o, out)
	case "index":
		return runIndex(ctx, d, o)
	}
	return fmt.Errorf("-mode %q: want logins, append, fill, fetch or scaling", o.mode)
}

// row is one output line.
type row struct {
	mode, step   string
	conc, rep, n int
	errors       int
	seconds      float64
	lat          []time.Duration
	bytes        int64
	cpu          float64
}

func (r row) write(w io.Writer) {
	p50, p99 := percentile(r.lat, 0.50), percentile(r.lat, 0.99)
	rate := 0.0
	if r.seconds > 0 {
		rate = float64(r.n) / r.seconds
	}
	fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%.4f\t%.2f\t%.3f\t%.3f\t%d\t%.3f\n",
		r.mode, r.step, r.conc, r.rep, r.n, r.errors, r.seconds, rate, ms(p50), ms(p99), r.bytes, r.cpu)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile of the sorted-in-place latencies (nearest rank); 0 if none.
func percentile(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(p*float64(len(l))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(l) {
		i = len(l) - 1
	}
	return l[i]
}

// cpuSeconds is the user+system CPU used by this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// errLog prints the first few errors of a run, so a failing server is
// visible without flooding the log.
type errLog struct {
	n atomic.Int64
}

func (e *errLog) add(err error) {
	if e.n.Add(1) <= 5 {
		fmt.Fprintln(os.Stderr, "imapload:", err)
	}
}

// workers runs fn on conc goroutines and waits.
func workers(conc int, fn func(w int)) {
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	wg.Wait()
}

func runLogins(ctx context.Context, d *dialer, o options, out io.Writer) error {
	var (
		done   atomic.Int64
		errs   errLog
		mu     sync.Mutex
		all    []time.Duration
		cpu0   = cpuSeconds()
		t0     = time.Now()
		expire = t0.Add(o.dur)
	)
	claim := func() bool { // one more login, within -n and -d?
		if ctx.Err() != nil {
			return false
		}
		if o.n > 0 {
			return done.Add(1) <= int64(o.n)
		}
		if time.Now().After(expire) {
			return false
		}
		done.Add(1)
		return true
	}
	workers(o.conc, func(int) {
		var lat []time.Duration
		for claim() {
			s := time.Now()
			c, err := d.dial(ctx)
			if err != nil {
				errs.add(err)
				continue
			}
			c.setDeadline(o.timeout)
			if err := c.login(o.user, o.pass); err != nil {
				errs.add(err)
				c.close()
				continue
			}
			lat = append(lat, time.Since(s))
			if err := c.logout(); err != nil {
				errs.add(err)
			}
			c.close()
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	el := time.Since(t0).Seconds()
	r := row{mode: "logins", step: "login", conc: o.conc, n: len(all), errors: int(errs.n.Load()),
		seconds: el, lat: all, cpu: cpuSeconds() - cpu0}
	r.write(out)
	if len(all) == 0 {
		return errors.New("no login succeeded")
	}
	return nil
}

// runAppend is -mode append (one APPEND at a time per connection) and,
// with pipelined, -mode fill.
func runAppend(ctx context.Context, d *dialer, o options, out io.Writer, pipelined bool) error {
	var (
		next  atomic.Int64 // message numbers handed out
		okN   atomic.Int64
		bytes atomic.Int64
		errs  errLog
		mu    sync.Mutex
		all   []time.Duration
		cpu0  = cpuSeconds()
		nonce = strconv.FormatInt(time.Now().UnixNano(), 36)
	)
	claim := func() (int, bool) {
		i := next.Add(1)
		return int(i), i <= int64(o.n) && ctx.Err() == nil
	}
	conns := make([]*conn, o.conc)
	for i := range conns { // log in first: only APPENDs are timed
		c, err := d.dial(ctx)
		if err != nil {
			return err
		}
		c.setDeadline(o.timeout)
		if err := c.login(o.user, o.pass); err != nil {
			c.close()
			return err
		}
		conns[i] = c
	}
	t0 := time.Now()
	workers(o.conc, func(w int) {
		c := conns[w]
		defer c.close()
		if pipelined && c.literalPlus {
			n, err := fillPipelined(c, o, claim, nonce, &bytes)
			okN.Add(int64(n))
			if err != nil {
				errs.add(err)
			}
			return
		}
		var lat []time.Duration
		for {
			i, ok := claim()
			if !ok {
				break
			}
			m := message(i, o.size, nonce, o.user)
			c.setDeadline(o.timeout)
			s := time.Now()
			if err := c.appendMsg(o.mailbox, m); err != nil {
				errs.add(err)
				break // the connection's state is unknown now
			}
			lat = append(lat, time.Since(s))
			okN.Add(1)
			bytes.Add(int64(len(m)))
		}
		_ = c.logout()
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	el := time.Since(t0).Seconds()
	mode := "append"
	if pipelined {
		mode = "fill"
	}
	r := row{mode: mode, step: "append", conc: o.conc, n: int(okN.Load()), errors: int(errs.n.Load()),
		seconds: el, lat: all, bytes: bytes.Load(), cpu: cpuSeconds() - cpu0}
	r.write(out)
	if okN.Load() < int64(o.n) {
		return fmt.Errorf("%d of %d APPENDs succeeded", okN.Load(), o.n)
	}
	return nil
}

// fillPipelined keeps up to about o.window LITERAL+ APPENDs in flight on
// c: a writer goroutine sends, this goroutine reads the tagged answers.
func fillPipelined(c *conn, o options, claim func() (int, bool), nonce string, bytes *atomic.Int64) (int, error) {
	tags := make(chan struct{}, o.window) // one per APPEND sent and not yet answered
	stop := make(chan struct{})           // the reader gave up
	werr := make(chan error, 1)
	go func() {
		defer close(tags)
		for {
			i, ok := claim()
			if !ok {
				werr <- nil
				return
			}
			m := message(i, o.size, nonce, o.user)
			_, err := c.startAppend(o.mailbox, m)
			if err == nil {
				err = c.w.Flush()
			}
			if err != nil {
				werr <- err
				return
			}
			bytes.Add(int64(len(m)))
			select {
			case tags <- struct{}{}:
			case <-stop:
				werr <- nil
				return
			}
		}
	}()
	got := 0
	c.setDeadline(o.timeout * 10)
	for range tags {
		if err := readAppendAnswer(c); err != nil {
			close(stop)
			for range tags { // let the writer finish
			}
			return got, err
		}
		got++
	}
	if err := <-werr; err != nil {
		return got, err
	}
	return got, c.logout()
}

// readAppendAnswer reads lines up to the next tagged one and checks it is OK.
func readAppendAnswer(c *conn) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 || line[0] == '*' {
			continue
		}
		tag, rest, _ := bytesCutString(string(line), ' ')
		cond, text, _ := bytesCutString(rest, ' ')
		if tag == "" || tag[0] != 'a' {
			return fmt.Errorf("fill: unexpected %q", line)
		}
		if cond != "OK" {
			return fmt.Errorf("fill: APPEND %s %s", cond, text)
		}
		return nil
	}
}
