package sqlstore

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// BenchmarkHeaderColumn100k measures what a cold header SEARCH costs the
// store: reading one stored field of every message of a 100,000-message
// mailbox (imapd's column cache then answers warm searches in memory).
func BenchmarkHeaderColumn100k(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			s.SetHeaderIndexer(func(h []byte) *store.HeaderFields {
				hf := &store.HeaderFields{}
				for _, line := range strings.Split(string(h), "\r\n") {
					if v, ok := strings.CutPrefix(line, "Subject: "); ok {
						hf.Value[store.FieldSubject] = strings.ToLower(v)
					}
				}
				return hf
			})
			ctx := b.Context()
			const total, group = 100000, 1000
			for i := 0; i < total; i += group {
				msgs := make([]*store.NewMessage, group)
				for j := range msgs {
					body := []byte(fmt.Sprintf("Subject: Bench message %d about topic %d\r\n\r\nbody\r\n", i+j, (i+j)%50))
					msgs[j] = &store.NewMessage{ID: fmt.Sprint(i + j), Body: body,
						Targets: []store.MailboxTarget{{User: "u@bench.example"}}}
				}
				if err := s.CommitMessages(ctx, msgs); err != nil {
					b.Fatal(err)
				}
			}
			m, err := s.GetMailbox(ctx, "u@bench.example", "INBOX")
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := cpuTime()
			for b.Loop() {
				n := 0
				err := s.HeaderColumn(ctx, m.ID, store.FieldSubject, 1, func(_ uint32, _ int64, v string, ok, _ bool) error {
					if ok && strings.Contains(v, "topic 7") {
						n++
					}
					return nil
				})
				if err != nil || n != total/50 {
					b.Fatalf("%d found, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/column")
			// The machine the figures come from is shared: CPU time says
			// what the load costs without waiting for a core.
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/column")
		})
	}
}

// cpuTime is the user and system CPU time of this process (the Go side
// and, for SQLite, the database engine; PostgreSQL's server is another
// process and not included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
