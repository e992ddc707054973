package imapd

import (
	"fmt"
	"os"
	"runtime"
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
// PETREL_HEAP_PROFILE=path writes a heap profile after the searches.
//
//	go test -run '^$' -bench Scaling -benchtime 1x ./internal/imapd/
func BenchmarkScaling(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("PETREL_SCALING_N")); err == nil && v > 0 {
		n = v
	}
	ts := startServer(b, nil)
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
	idle := heapBytes()
	var peak, stepPeak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				h := heapBytes()
				if h > peak.Load() {
					peak.Store(h)
				}
				if h > stepPeak.Load() {
					stepPeak.Store(h)
				}
			}
		}
	}()
	c := ts.login(alice, alicePass)
	other := ts.login(alice, alicePass)
	b.ResetTimer()
	step := func(name, cmd string) []string {
		t0 := time.Now()
		stepPeak.Store(0)
		u := c.ok(cmd)
		fmt.Fprintf(os.Stderr, "%-22s %8.1f ms  %6d responses  heap peak %6.1f MiB\n", name,
			float64(time.Since(t0).Microseconds())/1000, len(u), mib(stepPeak.Load()))
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
	other.ok("NOOP")
	next := 1
	for _, k := range []int{1000, min(20000, n/5)} {
		c.ok(fmt.Sprintf(`UID STORE %d:%d +FLAGS.SILENT (\Deleted)`, next, next+k-1))
		next += k
		other.ok("NOOP")
		step(fmt.Sprintf("expunge_%d", k), "EXPUNGE")
		t0 := time.Now()
		u := other.ok("NOOP")
		fmt.Fprintf(os.Stderr, "%-22s %8.1f ms  %d responses\n", "other session", float64(time.Since(t0).Microseconds())/1000, len(u))
	}
	close(stop)
	fmt.Fprintf(os.Stderr, "heap: idle %.1f MiB, peak %.1f MiB (+%.1f)\n", mib(idle), mib(peak.Load()), mib(peak.Load())-mib(idle))
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
	ts := startServer(b, nil)
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
