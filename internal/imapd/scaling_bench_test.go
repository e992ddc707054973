package imapd

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// BenchmarkScaling is bench/scaling.sh's operations in process, for a
// heap profile: PETREL_SCALING_N messages (default 100,000) delivered
// through the store, then SELECT, FETCH FLAGS, header SEARCHes, STORE
// and two EXPUNGEs, each timed once, with the peak Go heap over them.
// PETREL_HEAP_PROFILE=path writes a heap profile after the searches;
// PETREL_SCALING_PG=1 runs it on PostgreSQL (PETREL_TEST_PG_DSN).
//
//	go test -run '^$' -bench Scaling -benchtime 1x ./internal/imapd/
func BenchmarkScaling(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("PETREL_SCALING_N")); err == nil && v > 0 {
		n = v
	}
	// PETREL_SCALING_PG=1: the store on PostgreSQL (PETREL_TEST_PG_DSN).
	var ts *testServer
	if os.Getenv("PETREL_SCALING_PG") == "1" {
		ts = startServerPG(b)
	} else {
		ts = startServer(b, nil)
	}
	ts.st.SetHeaderIndexer(HeaderIndexer())
	pad := strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 30)
	for i := 0; i < n; i += 1000 {
		var msgs []*store.NewMessage
		for j := i; j < min(i+1000, n); j++ {
			body := []byte(fmt.Sprintf("From: \"Sender %d\" <sender%d@example.org>\r\nTo: <alice@example.test>\r\n"+
				"Subject: Bench message %d about topic %d\r\nMessage-ID: <bench.%d@example.org>\r\n\r\n%s",
				j%97, j%97, j, j%50, j, pad))
			msgs = append(msgs, &store.NewMessage{
				ID: fmt.Sprintf("s%d", j), Sender: "s@remote.test", ReceivedAt: time.Now(),
				Size: int64(len(body)), Body: body,
				Targets: []store.MailboxTarget{{User: alice, Mailbox: "INBOX"}},
			})
		}
		if err := ts.st.CommitMessages(b.Context(), msgs); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	idle := heapBytes()
	// RSS beside the Go heap: VmHWM is reset here (clear_refs 5), so it
	// is the peak over the operations; what RSS holds beyond the Go
	// runtime's own memory is SQLite's (modernc allocates outside the Go
	// heap: page caches, statements).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	idleRSS, idleGo := procKiB("VmRSS"), goTotalBytes()
	var goPeak atomic.Uint64
	var peak, stepPeak atomic.Uint64
	// outside is RSS less the Go runtime's memory (SQLite's C heap, page
	// caches): its peak per step, over idle.
	idleOutside := idleRSS*1024 - int64(idleGo)
	var stepOutside atomic.Int64
	stop := make(chan struct{})
	// PETREL_PEAK_PROFILE=path rewrites a heap profile at each new peak
	// (1 MiB above the last one): its in-use figures are those of the GC
	// cycle just before the peak, i.e. what was live when it came.
	peakPath := os.Getenv("PETREL_PEAK_PROFILE")
	var profiled uint64
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				h := heapBytes()
				if g := goTotalBytes(); g > goPeak.Load() {
					goPeak.Store(g)
				}
				if h > peak.Load() {
					peak.Store(h)
				}
				if peakPath != "" && h > profiled+1<<20 {
					profiled = h
					if f, err := os.Create(peakPath); err == nil {
						pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
				if h > stepPeak.Load() {
					stepPeak.Store(h)
				}
				if o := procKiB("VmRSS")*1024 - int64(goTotalBytes()) - idleOutside; o > stepOutside.Load() {
					stepOutside.Store(o)
				}
			}
		}
	}()
	c := ts.login(alice, alicePass)
	other := ts.login(alice, alicePass)
	// The clients' 30 s deadline is for tests; a loaded machine needs
	// more for the whole run.
	for _, cl := range []*client{c, other} {
		_ = cl.conn.SetDeadline(time.Now().Add(15 * time.Minute))
	}
	b.ResetTimer()
	// PETREL_ALLOC_PROFILE_DIR=dir writes the cumulative allocation
	// profile after each step (dir/NN-name.prof): `go tool pprof -base`
	// of two neighbours shows what one step allocated.
	allocDir := os.Getenv("PETREL_ALLOC_PROFILE_DIR")
	steps := 0
	writeAllocs := func(name string) {
		if allocDir == "" {
			return
		}
		steps++
		f, err := os.Create(filepath.Join(allocDir, fmt.Sprintf("%02d-%s.prof", steps, name)))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	writeAllocs("start")
	step := func(name, cmd string) int {
		t0 := time.Now()
		stepPeak.Store(0)
		stepOutside.Store(0)
		u := okCount(c, cmd)
		fmt.Fprintf(os.Stderr, "%-22s %8.1f ms  %6d responses  heap peak %6.1f MiB  outside Go %+5.1f MiB\n", name,
			float64(time.Since(t0).Microseconds())/1000, u, mib(stepPeak.Load()), float64(stepOutside.Load())/(1<<20))
		writeAllocs(name)
		return u
	}
	step("select", "SELECT INBOX")
	other.ok("SELECT INBOX")
	step("fetch_flags", "UID FETCH 1:* (UID FLAGS)")
	for _, temp := range []string{"cold", "warm"} {
		step("search_subject_"+temp, `UID SEARCH SUBJECT "topic 7"`)
		step("search_from_"+temp, `UID SEARCH FROM "sender 13"`)
		step("search_msgid_"+temp, `UID SEARCH HEADER Message-ID ".4242@example.org"`)
	}
	if path := os.Getenv("PETREL_HEAP_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	step("store", `UID STORE 1:* +FLAGS.SILENT (\Flagged)`)
	otherStep := func(name string) {
		t0 := time.Now()
		stepPeak.Store(0)
		stepOutside.Store(0)
		u := okCount(other, "NOOP")
		fmt.Fprintf(os.Stderr, "%-22s %8.1f ms  %6d responses  heap peak %6.1f MiB  outside Go %+5.1f MiB\n", name,
			float64(time.Since(t0).Microseconds())/1000, u, mib(stepPeak.Load()), float64(stepOutside.Load())/(1<<20))
	}
	otherStep("other after store")
	next := 1
	for _, k := range []int{1000, min(20000, n/5)} {
		c.ok(fmt.Sprintf(`UID STORE %d:%d +FLAGS.SILENT (\Deleted)`, next, next+k-1))
		next += k
		okCount(other, "NOOP")
		step(fmt.Sprintf("expunge_%d", k), "EXPUNGE")
		otherStep("other session")
	}
	close(stop)
	fmt.Fprintf(os.Stderr, "heap: idle %.1f MiB, peak %.1f MiB (+%.1f)\n", mib(idle), mib(peak.Load()), mib(peak.Load())-mib(idle))
	fmt.Fprintf(os.Stderr, "Go runtime total: idle %.1f MiB, peak %.1f MiB (+%.1f)\n", mib(idleGo), mib(goPeak.Load()), mib(goPeak.Load())-mib(idleGo))
	peakRSS := procKiB("VmHWM")
	fmt.Fprintf(os.Stderr, "RSS: idle %.1f MiB, peak %.1f MiB (+%.1f)\n", float64(idleRSS)/1024, float64(peakRSS)/1024, float64(peakRSS-idleRSS)/1024)
}

// goTotalBytes is all memory the Go runtime has mapped (heap, stacks,
// metadata), less what it returned to the OS.
func goTotalBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// procKiB reads a "Name: n kB" line of /proc/self/status (0 if absent).
func procKiB(name string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// okCount runs a command that must succeed and counts its untagged
// responses without keeping them: the client shares the process, and
// 100,000 kept FETCH lines would count as the server's heap.
func okCount(c *client, line string) int {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("A%03d", c.n)
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second)) // per command, as cmd
	c.send(tag + " " + line + "\r\n")
	n := 0
	for {
		r := c.read()
		if t, ok := strings.CutPrefix(r, tag+" "); ok {
			if !strings.HasPrefix(t, "OK") {
				c.t.Fatalf("%s: %s", line, t)
			}
			return n
		}
		n++
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func mib(v uint64) float64 { return float64(v) / (1 << 20) }

// BenchmarkHeaderIndexer is the cost the stored search fields add to a
// delivery or APPEND: computing them from a typical header block.
func BenchmarkHeaderIndexer(b *testing.B) {
	h := []byte("Received: from mx.example.org (mx.example.org [192.0.2.1])\r\n\tby mail.example.test with ESMTPS id 4f2a\r\n" +
		"From: =?UTF-8?Q?Jos=C3=A9_Garc=C3=ADa?= <jose@example.org>\r\nTo: Alice <alice@example.test>, bob@example.test\r\n" +
		"Cc: \"Team, Dev\" <dev@example.test>\r\nSubject: =?UTF-8?B?UsOpdW5pb24gZGUgbHVuZGk=?= and the plan\r\n" +
		"Date: Mon, 7 Feb 2026 21:52:25 -0800\r\nMessage-ID: <4f2a.123@example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n")
	b.SetBytes(int64(len(h)))
	for b.Loop() {
		if f := headerFields(h); f.Value[store.FieldFrom] == "" {
			b.Fatal("no From")
		}
	}
}

// BenchmarkAppendIndexed is BenchmarkAppend with the store computing and
// storing the header search fields, as the app runs it: run both to see
// what the fields cost an APPEND.
func BenchmarkAppendIndexed(b *testing.B) {
	// PETREL_SCALING_PG=1: the store on PostgreSQL (PETREL_TEST_PG_DSN).
	var ts *testServer
	if os.Getenv("PETREL_SCALING_PG") == "1" {
		ts = startServerPG(b)
	} else {
		ts = startServer(b, nil)
	}
	ts.st.SetHeaderIndexer(HeaderIndexer())
	c := ts.login(alice, alicePass)
	msg := testMessage("bench") + strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 64)
	cmd := fmt.Sprintf(" APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n", len(msg), msg)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		tag := fmt.Sprintf("b%d", i)
		c.send(tag + cmd)
		if _, tagged := c.collect(tag); !strings.HasPrefix(tagged, "OK [APPENDUID") {
			b.Fatal(tagged)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}
