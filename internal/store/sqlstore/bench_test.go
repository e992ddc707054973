package sqlstore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// BenchmarkCommitMessages measures durable delivery of 4 and 64 KiB messages
// (inline bodies, one INBOX copy each, spread over 32 users) committed one
// per transaction and 32 per transaction: the group-commit gain is the
// ratio of the msgs/s figures. Set PETREL_BENCH_DIR to put the SQLite
// database on a particular file system (the default is the temp dir).
func BenchmarkCommitMessages(b *testing.B) {
	type flavor struct {
		name string
		opts func(tb testing.TB) Options
	}
	fl := []flavor{{"sqlite", func(t testing.TB) Options {
		dir := t.TempDir()
		if d := os.Getenv("PETREL_BENCH_DIR"); d != "" {
			var err error
			if dir, err = os.MkdirTemp(d, "bench"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		return Options{Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")}
	}}}
	if os.Getenv("PETREL_TEST_PG_DSN") != "" {
		fl = append(fl, flavor{"postgresql", pgOptions})
	}
	line := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n")
	for _, f := range fl {
		for _, kib := range []int{4, 64} {
			body := bytes.Repeat(line, 16*kib)
			for _, group := range []int{1, 32} {
				b.Run(fmt.Sprintf("%s/%dKiB/group=%d", f.name, kib, group), func(b *testing.B) {
					s, err := Open(b.Context(), f.opts(b))
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					users := make([]string, 32)
					ctx := b.Context()
					if err := s.CreateDomain(ctx, &store.Domain{Name: "bench.example"}); err != nil {
						b.Fatal(err)
					}
					for i := range users {
						u := store.NewUser(fmt.Sprintf("u%d", i), "bench.example", 0, 80)
						if err := s.CreateUser(ctx, &u); err != nil {
							b.Fatal(err)
						}
						users[i] = u.Email
					}
					// Create the mailboxes outside the timed loop.
					for _, u := range users {
						if err := s.EnsureMailboxes(ctx, u, store.DefaultMailboxes); err != nil {
							b.Fatal(err)
						}
					}
					n := 0
					b.SetBytes(int64(len(body) * group))
					b.ResetTimer()
					for b.Loop() {
						msgs := make([]*store.NewMessage, group)
						for i := range msgs {
							msgs[i] = &store.NewMessage{ID: fmt.Sprint(n), Sender: "s@remote.example",
								Size: int64(len(body)), Body: body,
								Targets: []store.MailboxTarget{{User: users[n%len(users)]}}}
							n++
						}
						if err := s.CommitMessages(ctx, msgs); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
				})
			}
		}
	}
}
