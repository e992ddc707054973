package sqlstore

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// BenchmarkExpunge20kOf100k measures the store's side of an IMAP EXPUNGE
// of 20,000 \Deleted messages from a 100,000-message mailbox (issue 19):
// ExpungeByID(nil) as imapd calls it, then, separately, the clean-up of
// the freed bodies that runs after it. PETREL_EXPUNGE_N changes the
// mailbox size (a fifth of it is expunged), PETREL_EXPUNGE_K how many are
// expunged (PETREL_EXPUNGE_K=10: a client's EXPUNGE after deleting a few
// messages). One expunge per iteration, on a freshly filled mailbox; the
// fill is not timed.
//
//	go test -run '^$' -bench Expunge20kOf100k -benchtime 1x ./internal/store/sqlstore/
func BenchmarkExpunge20kOf100k(b *testing.B) {
	total := 100000
	if v, err := strconv.Atoi(os.Getenv("PETREL_EXPUNGE_N")); err == nil && v > 0 {
		total = v
	}
	k := total / 5
	if v, err := strconv.Atoi(os.Getenv("PETREL_EXPUNGE_K")); err == nil && v > 0 && v <= total {
		k = v
	}
	pad := strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 30)
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			var wall, cpu, gcWall, gcCPU time.Duration
			for b.Loop() {
				b.StopTimer()
				s := benchStore(b, f.opts)
				s.SetHeaderIndexer(func(h []byte) *store.HeaderFields {
					hf := &store.HeaderFields{}
					hf.Value[store.FieldSubject] = "subject"
					return hf
				})
				ctx := b.Context()
				const group = 1000
				for i := 0; i < total; i += group {
					msgs := make([]*store.NewMessage, 0, group)
					for j := i; j < min(i+group, total); j++ {
						body := []byte(fmt.Sprintf("Subject: Bench message %d\r\nMessage-ID: <b.%d@example.org>\r\n\r\n%s", j, j, pad))
						msgs = append(msgs, &store.NewMessage{ID: fmt.Sprint(j), Body: body, Size: int64(len(body)),
							Targets: []store.MailboxTarget{{User: "u@bench.example"}}})
					}
					if err := s.CommitMessages(ctx, msgs); err != nil {
						b.Fatal(err)
					}
				}
				m, err := s.GetMailbox(ctx, "u@bench.example", "INBOX")
				if err != nil {
					b.Fatal(err)
				}
				uids := make([]uint32, k)
				for i := range uids {
					uids[i] = uint32(1 + i*(total/k)) // spread over the mailbox, as a client's selection is
				}
				if _, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: m.ID, UIDs: uids, Op: store.FlagsAdd, Flags: []string{`\Deleted`}}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0, c0 := time.Now(), cpuTime()
				gone, err := s.ExpungeByID(ctx, m.ID, nil)
				wall += time.Since(t0)
				cpu += cpuTime() - c0
				b.StopTimer()
				if err != nil || len(gone) != k {
					b.Fatalf("expunged %d, want %d: %v", len(gone), k, err)
				}
				t0, c0 = time.Now(), cpuTime()
				if err := s.CollectGarbage(ctx); err != nil {
					b.Fatal(err)
				}
				gcWall += time.Since(t0)
				gcCPU += cpuTime() - c0
				s.Close()
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(wall.Seconds()*1000/n, "ms/expunge")
			b.ReportMetric(cpu.Seconds()*1000/n, "cpu-ms/expunge")
			b.ReportMetric(float64(gcWall.Milliseconds())/n, "ms/gc")
			b.ReportMetric(gcCPU.Seconds()*1000/n, "cpu-ms/gc")
		})
	}
}
