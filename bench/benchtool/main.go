// Command benchtool holds the small measuring tools bench/inbound.sh needs,
// so that the benchmark depends on nothing but Go, Postfix's smtp-source
// and the sqlite3 CLI.
//
//	benchtool mem [-i 500ms] [-n 0] PID...
//	    Every interval, sum VmRSS (/proc/P/status) and Pss
//	    (/proc/P/smaps_rollup) over the given PIDs and all their
//	    descendants; print "EPOCH NPROC RSS_KB PSS_KB" per sample. -n 1
//	    takes one sample. Stops on SIGTERM/SIGINT or after -n samples.
//	benchtool cpu PID...
//	    Print the CPU seconds (user+system) used so far by the given PIDs,
//	    their descendants and every child they have reaped (cutime and
//	    cstime), so the difference of two readings is what the server
//	    used in between, short-lived workers included.
//	benchtool dns [-listen 127.0.0.1:10053] [-hosts /etc/hosts]
//	    A DNS server answering from a hosts file (see dns.go).
//	benchtool wait220 [-t 60s] [-since EPOCH] ADDR
//	    Connect to ADDR until the server's greeting starts with "220";
//	    print the milliseconds from -since (a `date +%s.%N` taken just
//	    before the server was started) to that greeting.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool mem|cpu|dns|wait220 ...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "mem":
		err = runMem(ctx, os.Args[2:], os.Stdout)
	case "cpu":
		err = runCPU(os.Args[2:], os.Stdout)
	case "dns":
		err = runDNS(ctx, os.Args[2:], os.Stdout)
	case "wait220":
		err = runWait220(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func runMem(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mem", flag.ContinueOnError)
	interval := fs.Duration("i", 500*time.Millisecond, "sampling interval")
	count := fs.Int("n", 0, "number of samples (0: until signalled)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	roots, err := parsePIDs(fs.Args())
	if err != nil {
		return fmt.Errorf("mem: %w", err)
	}
	w := bufio.NewWriter(out)
	t := time.NewTicker(*interval)
	defer t.Stop()
	for n := 0; *count == 0 || n < *count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return w.Flush()
			case <-t.C:
			}
		}
		s := sampleTree(roots)
		fmt.Fprintf(w, "%.3f %d %d %d\n", float64(time.Now().UnixNano())/1e9, s.n, s.rssKB, s.pssKB)
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

type memSample struct{ n, rssKB, pssKB int }

func parsePIDs(args []string) (map[int]bool, error) {
	roots := map[int]bool{}
	for _, a := range args {
		p, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("bad pid %q: %w", a, err)
		}
		roots[p] = true
	}
	if len(roots) == 0 {
		return nil, errors.New("no pids")
	}
	return roots, nil
}

// procStat is what sampleTree and runCPU need from /proc/P/stat.
type procStat struct {
	ppid  int
	ticks int64 // utime + stime + cutime + cstime
}

// readStats reads /proc/P/stat of every process.
func readStats() map[int]procStat {
	all := map[int]procStat{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // the process ended meanwhile
		}
		// The command name may hold spaces and ')': fields follow the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		var st procStat
		st.ppid, _ = strconv.Atoi(f[1])
		for _, k := range f[11:15] {
			v, _ := strconv.ParseInt(k, 10, 64)
			st.ticks += v
		}
		all[pid] = st
	}
	return all
}

// clkTck is USER_HZ, which is 100 on every Linux architecture Go supports.
const clkTck = 100

func runCPU(args []string, out io.Writer) error {
	roots, err := parsePIDs(args)
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	all := readStats()
	var ticks int64
	for pid, st := range all {
		if inTree(pid, roots, all) {
			ticks += st.ticks
		}
	}
	_, err = fmt.Fprintf(out, "%.2f\n", float64(ticks)/clkTck)
	return err
}

// sampleTree sums memory over roots and their descendants. The tree is
// rebuilt every time: Postfix and Dovecot fork and reap workers all along.
func sampleTree(roots map[int]bool) memSample {
	all := readStats()
	var s memSample
	for pid := range all {
		if !inTree(pid, roots, all) {
			continue
		}
		rss, ok := kbField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		if !ok {
			continue // ended, or a kernel thread
		}
		pss, _ := kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
		s.n++
		s.rssKB += rss
		s.pssKB += pss
	}
	return s
}

func inTree(pid int, roots map[int]bool, all map[int]procStat) bool {
	for hops := 0; pid > 0 && hops < 64; hops++ {
		if roots[pid] {
			return true
		}
		pid = all[pid].ppid
	}
	return false
}

// kbField reads "Key:   123 kB" from a /proc file.
func kbField(path, key string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			v, err := strconv.Atoi(f[0])
			return v, err == nil
		}
	}
	return 0, false
}

func runWait220(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("wait220", flag.ContinueOnError)
	timeout := fs.Duration("t", 60*time.Second, "give up after")
	since := fs.Float64("since", 0, "epoch seconds the server was started (default: now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("wait220: one ADDR expected")
	}
	addr := fs.Arg(0)
	start := time.Now()
	if *since > 0 {
		start = time.Unix(0, int64(*since*1e9))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var d net.Dialer
	for {
		if greeted(ctx, &d, addr) {
			fmt.Fprintf(out, "%.1f\n", float64(time.Since(start).Microseconds())/1000)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait220: no 220 greeting from %s within %s", addr, *timeout)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// greeted connects once and reports whether the greeting is a 220 reply.
func greeted(ctx context.Context, d *net.Dialer, addr string) bool {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "220") {
		return false
	}
	_, _ = io.WriteString(c, "QUIT\r\n")
	return true
}
