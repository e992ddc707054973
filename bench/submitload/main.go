// Command submitload is bench/submission.sh's load client for authenticated
// SMTP submission over implicit TLS (port 465, RFC 8314 3.3). It speaks the
// protocol itself over one bufio reader and writer per connection, without
// pipelining, so that the client costs little CPU and both servers see the
// same command sequence.
//
//	submitload handshakes [flags]
//	    -c workers each loop until -n handshakes are done in total:
//	    connect, TLS handshake (a full one; -resume allows session
//	    resumption), read the greeting, EHLO, AUTH PLAIN, QUIT.
//	    Latency is per handshake, connect to the 221 reply.
//	submitload messages [flags]
//	    -c workers each open sessions (connect, TLS, EHLO, AUTH PLAIN) and
//	    send -m messages of -s bytes to -rcpt in each before QUIT, until -n
//	    messages are done in total. Latency is per message, MAIL FROM to the
//	    reply after the final dot.
//
// Login: worker w authenticates as fmt.Sprintf(-user, w%-users+1) with the
// password fmt.Sprintf(-pass, same number), e.g. user3@example.test /
// Bench-Password-3, and uses that address as envelope sender and From.
//
// Output: one tab-separated line on stdout,
//
//	RESULT mode workers ok errors seconds rate_per_s p50_ms p99_ms max_ms
//
// where ok counts handshakes completed or messages answered with 250 and
// rate is ok/seconds; the first errors go to stderr. The exit status is 1
// when any handshake or message failed.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: submitload handshakes|messages [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "submitload:", err)
		os.Exit(2)
	}
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "submitload:", err)
		os.Exit(1)
	}
	fmt.Println(res.TSV())
	if res.Errors > 0 {
		os.Exit(1)
	}
}

// config is one load run.
type config struct {
	Mode     string // "handshakes" or "messages"
	Addr     string
	Workers  int
	Total    int // handshakes or messages in all
	PerSess  int // messages per session (messages mode)
	Size     int // message size in bytes, header included (messages mode)
	Rcpt     string
	UserFmt  string
	PassFmt  string
	Users    int
	Helo     string
	Resume   bool
	Timeout  time.Duration // per connection step (dial, handshake, each reply)
	MaxErrs  int           // errors printed to stderr
	Deadline time.Duration // whole run; 0 = none
}

func parseFlags(mode string, args []string) (config, error) {
	c := config{Mode: mode}
	if mode != "handshakes" && mode != "messages" {
		return c, fmt.Errorf("unknown mode %q (handshakes or messages)", mode)
	}
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:465", "server address (implicit TLS)")
	fs.IntVar(&c.Workers, "c", 1, "concurrent workers (connections)")
	fs.IntVar(&c.Total, "n", 1000, "handshakes or messages in all")
	fs.IntVar(&c.PerSess, "m", 10, "messages per session (messages mode)")
	fs.IntVar(&c.Size, "s", 4096, "message size in bytes (messages mode)")
	fs.StringVar(&c.Rcpt, "rcpt", "rcpt@sink.test", "envelope recipient")
	fs.StringVar(&c.UserFmt, "user", "user%d@example.test", "login and sender; %d is the user number")
	fs.StringVar(&c.PassFmt, "pass", "Bench-Password-%d", "password; %d is the user number")
	fs.IntVar(&c.Users, "users", 10, "worker w logs in as user number w%users+1")
	fs.StringVar(&c.Helo, "helo", "bench-client.example.org", "EHLO name")
	fs.BoolVar(&c.Resume, "resume", false, "allow TLS session resumption")
	fs.DurationVar(&c.Timeout, "t", 60*time.Second, "timeout of each step")
	fs.IntVar(&c.MaxErrs, "errors", 5, "errors printed to stderr")
	fs.DurationVar(&c.Deadline, "deadline", 0, "give up after this long (0: never)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Workers < 1 || c.Total < 1 || c.PerSess < 1 || c.Users < 1 || c.Size < 256 {
		return c, errors.New("need -c, -n, -m, -users >= 1 and -s >= 256")
	}
	return c, nil
}

// Result is what one run measured.
type Result struct {
	Mode      string
	Workers   int
	OK        int
	Errors    int
	Elapsed   time.Duration
	latencies []time.Duration
}

// Rate is completed operations per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0..100) of the latencies.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p / 100)
	return r.latencies[i]
}

// TSV is the RESULT line bench/submission.sh parses.
func (r Result) TSV() string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	max := time.Duration(0)
	if n := len(r.latencies); n > 0 {
		max = r.latencies[n-1]
	}
	return strings.Join([]string{"RESULT", r.Mode, strconv.Itoa(r.Workers), strconv.Itoa(r.OK), strconv.Itoa(r.Errors),
		strconv.FormatFloat(r.Elapsed.Seconds(), 'f', 3, 64), strconv.FormatFloat(r.Rate(), 'f', 1, 64),
		ms(r.Percentile(50)), ms(r.Percentile(99)), ms(max)}, "\t")
}

// run starts the workers and waits for them.
func run(ctx context.Context, c config, errOut io.Writer) (Result, error) {
	if c.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Deadline)
		defer cancel()
	}
	tc := &tls.Config{InsecureSkipVerify: true} // self-signed benchmark certificates
	if c.Resume {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(c.Workers)
	}
	var (
		next    atomic.Int64 // handshakes, or messages, handed out
		nerr    atomic.Int64
		mu      sync.Mutex
		all     []time.Duration
		ok      int
		wg      sync.WaitGroup
		printed atomic.Int64
	)
	report := func(err error) {
		nerr.Add(1)
		if printed.Add(1) <= int64(c.MaxErrs) {
			mu.Lock() // errOut need not be safe for concurrent writes
			fmt.Fprintln(errOut, "submitload:", err)
			mu.Unlock()
		}
	}
	start := time.Now()
	for w := 0; w < c.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			wk := newWorker(c, w, tc)
			var lat []time.Duration
			n := 0
			for ctx.Err() == nil {
				if c.Mode == "handshakes" {
					if next.Add(1) > int64(c.Total) {
						break
					}
					d, err := wk.handshake(ctx)
					if err != nil {
						report(err)
						continue
					}
					lat = append(lat, d)
					n++
					continue
				}
				// messages: claim up to PerSess messages for one session
				first := next.Add(int64(c.PerSess)) - int64(c.PerSess)
				if first >= int64(c.Total) {
					break
				}
				want := min(int64(c.PerSess), int64(c.Total)-first)
				ds, failed, err := wk.session(ctx, int(want), first)
				lat = append(lat, ds...)
				n += len(ds)
				if err != nil {
					nerr.Add(int64(failed) - 1)
					report(err)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			ok += n
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	r := Result{Mode: c.Mode, Workers: c.Workers, OK: ok, Errors: int(nerr.Load()), Elapsed: time.Since(start), latencies: all}
	slices.Sort(r.latencies)
	if ctx.Err() != nil && r.OK+r.Errors < c.Total {
		return r, fmt.Errorf("stopped after %d of %d: %w", r.OK+r.Errors, c.Total, ctx.Err())
	}
	return r, nil
}

// worker holds one worker's login and prebuilt message body.
type worker struct {
	c      config
	tls    *tls.Config
	dialer net.Dialer
	user   string
	authB  string // base64 of "\x00user\x00pass"
	body   []byte // the message after its header, dot-stuffing not needed
	w      int
}

func newWorker(c config, w int, tc *tls.Config) *worker {
	num := w%c.Users + 1
	user := fmt.Sprintf(c.UserFmt, num)
	pass := fmt.Sprintf(c.PassFmt, num)
	return &worker{
		c: c, tls: tc, w: w, user: user,
		dialer: net.Dialer{Timeout: c.Timeout},
		authB:  base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass)),
		body:   makeBody(c.Size - headerSize(c, user)),
	}
}

// makeBody returns about n bytes of 76-character lines, each ending in CRLF
// and none starting with a dot.
func makeBody(n int) []byte {
	const line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrst\r\n"
	if n < len(line) {
		n = len(line)
	}
	b := make([]byte, 0, n+len(line))
	for len(b)+len(line) <= n {
		b = append(b, line...)
	}
	if rest := n - len(b); rest > 2 {
		b = append(b, line[:rest-2]...)
		b = append(b, "\r\n"...)
	}
	return b
}

// header is the message's header; Message-ID and Date are present, so
// neither server has to add them.
func header(c config, user string, id int64) string {
	return "From: <" + user + ">\r\nTo: <" + c.Rcpt + ">\r\nSubject: submission benchmark " + strconv.FormatInt(id, 10) +
		"\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <" + strconv.FormatInt(id, 10) + ".bench@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
}

func headerSize(c config, user string) int { return len(header(c, user, int64(c.Total))) }

// conn is one SMTP session over TLS.
type conn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
	to time.Duration
}

// open connects, completes the TLS handshake, reads the greeting, says EHLO
// and authenticates.
func (wk *worker) open(ctx context.Context) (*conn, error) {
	raw, err := wk.dialer.DialContext(ctx, "tcp", wk.c.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	tc := tls.Client(raw, wk.tls)
	hctx, cancel := context.WithTimeout(ctx, wk.c.Timeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	c := &conn{nc: tc, r: bufio.NewReaderSize(tc, 4096), w: bufio.NewWriterSize(tc, 32<<10), to: wk.c.Timeout}
	if err := c.expect("", 220); err != nil {
		c.close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := c.expect("EHLO "+wk.c.Helo, 250); err != nil {
		c.close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	// RFC 4954 4: the initial response saves a round trip.
	if err := c.expect("AUTH PLAIN "+wk.authB, 235); err != nil {
		c.close()
		return nil, fmt.Errorf("AUTH PLAIN as %s: %w", wk.user, err)
	}
	return c, nil
}

// handshake is one connect..QUIT cycle without mail.
func (wk *worker) handshake(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	c, err := wk.open(ctx)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.expect("QUIT", 221); err != nil {
		return 0, fmt.Errorf("QUIT: %w", err)
	}
	return time.Since(t0), nil
}

// session sends n messages in one session. It returns the latency of each
// message answered 250, how many were not, and the first error.
func (wk *worker) session(ctx context.Context, n int, firstID int64) ([]time.Duration, int, error) {
	c, err := wk.open(ctx)
	if err != nil {
		return nil, n, err
	}
	defer c.close()
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return lat, n - i, ctx.Err()
		}
		t0 := time.Now()
		if err := wk.send(c, firstID+int64(i)); err != nil {
			return lat, n - i, err
		}
		lat = append(lat, time.Since(t0))
	}
	if err := c.expect("QUIT", 221); err != nil {
		// every message was already accepted; a lost 221 costs nothing
		return lat, 0, nil
	}
	return lat, 0, nil
}

func (wk *worker) send(c *conn, id int64) error {
	if err := c.expect("MAIL FROM:<"+wk.user+">", 250); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.expect("RCPT TO:<"+wk.c.Rcpt+">", 250); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	if err := c.expect("DATA", 354); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.to))
	c.w.WriteString(header(wk.c, wk.user, id))
	c.w.Write(wk.body)
	if err := c.expect(".", 250); err != nil { // the final dot, RFC 5321 4.1.1.4
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

// expect sends line (none when empty) and reads a reply, which must have
// the code want.
func (c *conn) expect(line string, want int) error {
	deadline := time.Now().Add(c.to)
	c.nc.SetDeadline(deadline)
	if line != "" {
		c.w.WriteString(line)
		c.w.WriteString("\r\n")
		if err := c.w.Flush(); err != nil {
			return err
		}
	}
	code, text, err := c.reply()
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("%d %s", code, text)
	}
	return nil
}

// reply reads a possibly multi-line reply (RFC 5321 4.2.1).
func (c *conn) reply() (int, string, error) {
	var text strings.Builder
	for {
		l, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, "", fmt.Errorf("reading reply: %w", err)
		}
		if len(l) < 4 {
			return 0, "", fmt.Errorf("short reply %q", l)
		}
		code, err := strconv.Atoi(string(l[:3]))
		if err != nil {
			return 0, "", fmt.Errorf("bad reply %q", l)
		}
		text.Write(trimCRLF(l[4:]))
		if l[3] != '-' {
			return code, text.String(), nil
		}
		text.WriteByte(' ')
	}
}

func trimCRLF(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func (c *conn) close() { c.nc.Close() }
