// Command ftsbench measures Petrel's full-text search (issue 14,
// docs/benchmarks.md): it fills one INBOX with generated mail whose words
// follow a Zipf distribution over a 60,000-word vocabulary, indexes it
// with the background indexer's code (rate, CPU time), reports the index
// size against the text, and times UID SEARCH BODY and TEXT over a real
// IMAP socket with the index and without it (the old scan).
//
//	go run ./bench/ftsbench -n 100000                      # SQLite in a temp dir
//	go run ./bench/ftsbench -n 10000 -pg postgres://...    # PostgreSQL
//
// Two more modes put the same mailbox into another server (bench/ftsxapian.sh,
// Dovecot with fts-xapian):
//
//	ftsbench -n 100000 -maildir DIR               # write the messages as a Maildir, no server
//	ftsbench -addr 127.0.0.1:143 -cpupid PID      # time the same searches against a running
//	                                              # server (plaintext LOGIN); PID: the root of
//	                                              # the server's processes, for CPU per search
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/petrelmail/petrel/internal/fts"
	"github.com/petrelmail/petrel/internal/imapd"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

const user, pass = "user20@example.test", "bench-pw"

func main() {
	n := flag.Int("n", 10000, "messages")
	size := flag.Int("size", 2048, "approximate body bytes per message")
	pg := flag.String("pg", "", "PostgreSQL DSN (default: SQLite in -dir)")
	dir := flag.String("dir", "", "data directory (default: a temp dir, removed)")
	reps := flag.Int("reps", 5, "timed repetitions per search")
	scan := flag.Bool("scan", true, "also time the searches without the index")
	only := flag.Int("only", 0, "time only the first N searches (0: all)")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the searches to this file")
	maildir := flag.String("maildir", "", "write the -n messages as Maildir DIR/cur files and exit")
	addr := flag.String("addr", "", "time the searches against this running IMAP server (plaintext) and exit")
	cpupid := flag.Int("cpupid", 0, "with -addr: CPU per search is that of this process and its descendants")
	flag.Parse()
	ctx := context.Background()
	if *maildir != "" {
		must(writeMaildir(*maildir, *n, *size))
		return
	}
	if *addr != "" {
		fmt.Printf("searches against %s (load %s):\n", *addr, loadavg())
		search(*addr, "server", newGen(1).needles(*only), *reps, func() float64 { return treeCPU(*cpupid) })
		return
	}
	reuse := false
	if *dir != "" {
		if _, err := os.Stat(filepath.Join(*dir, "main.db")); err == nil && *pg == "" {
			reuse = true // filled and indexed by an earlier run: time the searches only
		}
	}
	if *dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "ftsbench")
		must(err)
		defer os.RemoveAll(d)
		*dir = d
	}
	opt := sqlstore.Options{Path: filepath.Join(*dir, "main.db"), BlobDir: filepath.Join(*dir, "blobs")}
	if *pg != "" {
		opt = sqlstore.Options{Flavor: sqlstore.FlavorPostgreSQL, DSN: *pg, BlobDir: filepath.Join(*dir, "blobs")}
	}
	st, err := sqlstore.Open(ctx, opt)
	must(err)
	defer st.Close()
	if !reuse {
		must(st.CreateDomain(ctx, &store.Domain{Name: "example.test", MaxUsers: -1, MaxAliases: -1}))
		u := store.NewUser("user20", "example.test", 0, 80)
		must(st.CreateUser(ctx, &u))
	}
	load := loadavg
	fmt.Printf("messages %d, ~%d bytes each, store %s, load %s\n", *n, *size, map[bool]string{true: "postgresql", false: "sqlite"}[*pg != ""], load())

	// Fill: batches through the delivery path (CommitMessages).
	g := newGen(1)
	t0 := time.Now()
	const batch = 500
	for i := 0; i < *n && !reuse; i += batch {
		var msgs []*store.NewMessage
		for j := i; j < min(i+batch, *n); j++ {
			body := g.message(j, *size)
			msgs = append(msgs, &store.NewMessage{ID: fmt.Sprint(j), Sender: "s@remote.test", ReceivedAt: time.Now(),
				Size: int64(len(body)), Body: body, Targets: []store.MailboxTarget{{User: user, Mailbox: "INBOX"}}})
		}
		must(st.CommitMessages(ctx, msgs))
	}
	if reuse {
		fmt.Printf("fill: reused from %s\n", *dir)
	} else {
		fmt.Printf("fill: %.1f s\n", time.Since(t0).Seconds())
	}

	srv := imapd.New(imapd.Options{NoTLS: true, Hostname: "mail.example.test", Store: st,
		Auth: testutil.NewFakeAuth(map[string]string{user: pass}), FullTextSearch: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	srvOff := imapd.New(imapd.Options{NoTLS: true, Hostname: "mail.example.test", Store: st,
		Auth: testutil.NewFakeAuth(map[string]string{user: pass})})
	lnOff, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go srvOff.Serve(lnOff)
	defer srvOff.Shutdown(ctx)

	needles := g.needles(*only)

	// Index, as the background indexer does, timed.
	ix := fts.NewIndexer(fts.IndexerOptions{Store: st, Extract: imapd.FullTextExtractor(false)})
	var r0, r1 syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &r0))
	t0 = time.Now()
	done, err := 0, error(nil)
	if !reuse {
		done, err = ix.IndexAll(ctx, "", nil)
	}
	must(err)
	el := time.Since(t0).Seconds()
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &r1))
	cpu := tv(r1.Utime) + tv(r1.Stime) - tv(r0.Utime) - tv(r0.Stime)
	stat, err := st.FullTextStatus(ctx)
	must(err)
	if reuse {
		fmt.Printf("index: reused from %s (indexed by an earlier run)\n", *dir)
	} else {
		fmt.Printf("index: %d messages in %.1f s = %.0f/s (%.2f MiB/s of text); this process's CPU %.1f s = %.0f us/message\n",
			done, el, float64(done)/el, float64(stat.TextBytes)/(1<<20)/el, cpu, cpu*1e6/float64(done))
	}
	fmt.Printf("size: text %.1f MiB, index %.1f MiB = %.2f of the text (load %s)\n",
		float64(stat.TextBytes)/(1<<20), float64(stat.IndexBytes)/(1<<20), float64(stat.IndexBytes)/float64(stat.TextBytes), load())
	if *pg == "" {
		fi, err := os.Stat(opt.Path)
		if err == nil {
			fmt.Printf("database file: %.1f MiB\n", float64(fi.Size())/(1<<20))
		}
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("searches with the index (load %s):\n", load())
	search(ln.Addr().String(), "index", needles, *reps, cpuNow)
	if *scan {
		fmt.Printf("searches without the index, FULL_TEXT_SEARCH=off (load %s):\n", load())
		search(lnOff.Addr().String(), "scan", needles, *reps, cpuNow)
	}
}

type needle struct{ key, needle string }

// needles: a rare word (Zipf rank 20,000) by TEXT and BODY, a word in no
// message, two words, a prefix, a common word (rank 30) and a piece from
// the middle of a word: the cheap ones first (-only).
func (g *gen) needles(only int) []needle {
	ns := []needle{
		{"TEXT", g.vocab[20000]}, {"BODY", g.vocab[20000]}, {"TEXT", "qqqqzzzz"},
		{"BODY", g.vocab[100] + " " + g.vocab[101]}, {"BODY", " " + g.vocab[9000][:4]},
		{"BODY", g.vocab[30]}, {"BODY", g.vocab[5000][1:5]},
	}
	if only > 0 {
		ns = ns[:min(only, len(ns))]
	}
	return ns
}

// search times each needle reps times over one IMAP session at addr:
// hits, the first (cold) time, the median, and the median CPU time that
// cpu (seconds) says one search took.
func search(addr, when string, needles []needle, reps int, cpu func() float64) {
	c := dial(addr)
	defer c.close()
	for _, q := range needles {
		cmd := fmt.Sprintf("UID SEARCH %s %q", q.key, q.needle)
		var times, cpus []float64
		hits := 0
		for r := 0; r < reps; r++ {
			c0 := cpu()
			s := time.Now()
			hits = c.search(cmd)
			times = append(times, time.Since(s).Seconds()*1000)
			cpus = append(cpus, (cpu()-c0)*1000)
		}
		first := times[0]
		sort.Float64s(times)
		sort.Float64s(cpus)
		fmt.Printf("  %-6s %-40s hits %6d  first %8.1f ms  median %8.1f ms  cpu median %7.1f ms\n", when, cmd, hits, first, times[len(times)/2], cpus[len(cpus)/2])
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// cpuNow is this process's CPU time (user and system) in seconds: server
// and client share the process, and the client's part is small.
func cpuNow() float64 {
	var r syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &r))
	return tv(r.Utime) + tv(r.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// gen makes mail text: words drawn from a Zipf distribution over a
// vocabulary of pronounceable made-up words, in sentences and lines.
type gen struct {
	vocab []string
	zipf  *rand.Zipf
	rng   *rand.Rand
}

func newGen(seed uint64) *gen {
	rng := rand.New(rand.NewPCG(seed, 2))
	syl := []string{"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "za", "bri", "den", "fal", "gor", "hin", "jus", "kel", "mar", "nor", "pel", "quin", "ros", "sul", "tor", "ven", "wil"}
	seen := map[string]bool{}
	var vocab []string
	for len(vocab) < 60000 {
		var b strings.Builder
		for k := 0; k < 2+rng.IntN(3); k++ {
			b.WriteString(syl[rng.IntN(len(syl))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			vocab = append(vocab, w)
		}
	}
	return &gen{vocab: vocab, zipf: rand.NewZipf(rng, 1.07, 2, uint64(len(vocab)-1)), rng: rng}
}

func (g *gen) message(i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: \"Sender %d\" <sender%d@example.org>\r\nTo: <%s>\r\n", i%97, i%97, user)
	fmt.Fprintf(&b, "Subject: %s %s %s\r\n", g.word(), g.word(), g.word())
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <bench.%d@example.org>\r\n", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z), i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := 0
	for b.Len() < size {
		w := g.word()
		if line == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		line += len(w) + 1
		switch {
		case line > 72:
			b.WriteString(".\r\n")
			line = 0
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func (g *gen) word() string { return g.vocab[g.zipf.Uint64()] }

// client is a minimal IMAP client for timing SEARCH.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dial(addr string) *client {
	conn, err := net.Dial("tcp", addr)
	must(err)
	c := &client{conn: conn, r: bufio.NewReaderSize(conn, 1<<20)}
	_, err = c.r.ReadString('\n')
	must(err)
	c.run(fmt.Sprintf("LOGIN %q %q", user, pass))
	c.run("SELECT INBOX")
	return c
}

// run sends one command and returns its untagged lines.
func (c *client) run(cmd string) []string {
	c.n++
	tag := fmt.Sprintf("b%d", c.n)
	_, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, cmd)
	must(err)
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		must(err)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				log.Fatalf("%s: %s", cmd, l)
			}
			return lines
		}
		lines = append(lines, l)
	}
}

func (c *client) search(cmd string) int {
	for _, l := range c.run(cmd) {
		if strings.HasPrefix(l, "* SEARCH") {
			return len(strings.Fields(l)) - 2
		}
	}
	return -1
}

func (c *client) close() { c.run("LOGOUT"); c.conn.Close() }
