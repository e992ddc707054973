package sqlstore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// benchFlavors are the stores the IMAP benchmarks run on: SQLite (in
// PETREL_BENCH_DIR if set) with the default InlineMax, and PostgreSQL
// when PETREL_TEST_PG_DSN is set.
func benchFlavors() []struct {
	name string
	opts func(tb testing.TB) Options
} {
	fl := []struct {
		name string
		opts func(tb testing.TB) Options
	}{{"sqlite", func(t testing.TB) Options {
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
		fl = append(fl, struct {
			name string
			opts func(tb testing.TB) Options
		}{"postgresql", func(t testing.TB) Options {
			o := pgOptions(t)
			o.InlineMax = 0
			return o
		}})
	}
	return fl
}

var benchBody = bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 64) // 4 KiB

func benchStore(b *testing.B, opts func(tb testing.TB) Options) *Store {
	b.Helper()
	s, err := Open(b.Context(), opts(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := b.Context()
	if err := s.CreateDomain(ctx, &store.Domain{Name: "bench.example"}); err != nil {
		b.Fatal(err)
	}
	u := store.NewUser("u", "bench.example", 0, 80)
	if err := s.CreateUser(ctx, &u); err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureMailboxes(ctx, u.Email, store.DefaultMailboxes); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkAppendMessage measures IMAP APPEND of 4 KiB messages, each a
// durable transaction of its own.
func BenchmarkAppendMessage(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			ctx := b.Context()
			a := &store.NewAppend{User: "u@bench.example", Mailbox: "INBOX", Flags: []string{`\Seen`}, Body: benchBody}
			b.SetBytes(int64(len(benchBody)))
			n := 0
			for b.Loop() {
				if _, _, err := s.AppendMessage(ctx, a); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// BenchmarkAppendMessageParallel measures APPENDs from 16 sessions at
// once (8 per CPU), each a durable transaction: on SQLite commits that
// finish during one WAL fsync share the next (walsync.go).
func BenchmarkAppendMessageParallel(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			ctx := b.Context()
			b.SetBytes(int64(len(benchBody)))
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				a := &store.NewAppend{User: "u@bench.example", Mailbox: "INBOX", Flags: []string{`\Seen`}, Body: benchBody}
				for pb.Next() {
					if _, _, err := s.AppendMessage(ctx, a); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// fill10k gives the user's INBOX 10,000 messages, delivered in groups.
func fill10k(b *testing.B, s *Store) int64 {
	b.Helper()
	ctx := b.Context()
	const total, group = 10000, 500
	for i := 0; i < total; i += group {
		msgs := make([]*store.NewMessage, group)
		for j := range msgs {
			msgs[j] = &store.NewMessage{ID: fmt.Sprint(i + j), Body: benchBody,
				Targets: []store.MailboxTarget{{User: "u@bench.example", Flags: []string{`\Seen`}}}}
		}
		if err := s.CommitMessages(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	m, err := s.GetMailbox(ctx, "u@bench.example", "INBOX")
	if err != nil || m.Messages != total {
		b.Fatalf("INBOX: %+v, %v", m, err)
	}
	return m.ID
}

// BenchmarkListMessagesByID measures listing a 10,000-message mailbox
// (what SELECT does to build its UID map).
func BenchmarkListMessagesByID(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			id := fill10k(b, s)
			ctx := b.Context()
			for b.Loop() {
				l, err := s.ListMessagesByID(ctx, id)
				if err != nil || len(l) != 10000 {
					b.Fatalf("%d messages, %v", len(l), err)
				}
			}
			b.ReportMetric(10000*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkChangesSinceIdle measures the poll an IDLE session makes when
// nothing changed, on a 10,000-message mailbox.
func BenchmarkChangesSinceIdle(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			id := fill10k(b, s)
			ctx := b.Context()
			ch, err := s.ChangesSince(ctx, id, 0)
			if err != nil {
				b.Fatal(err)
			}
			hms := ch.Mailbox.HighestModSeq
			for b.Loop() {
				ch, err := s.ChangesSince(ctx, id, hms)
				if err != nil || len(ch.Changed) != 0 {
					b.Fatalf("%+v, %v", ch, err)
				}
			}
		})
	}
}

// BenchmarkChangesPageIdle is the poll an IMAP session makes around its
// commands (imapd's first page of 1,000 changes) when nothing changed.
func BenchmarkChangesPageIdle(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			id := fill10k(b, s)
			ctx := b.Context()
			m, err := s.GetMailbox(ctx, "u@bench.example", "INBOX")
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				ch, err := s.ChangesPage(ctx, id, m.HighestModSeq, store.ChangeKey{}, 1000)
				if err != nil || len(ch.Changed) != 0 {
					b.Fatalf("%+v, %v", ch, err)
				}
			}
		})
	}
}

// BenchmarkChangesPageFew is that poll after other sessions changed
// five messages' flags (what imaptest's sessions meet after most of
// their commands, ten to a mailbox).
func BenchmarkChangesPageFew(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			id := fill10k(b, s)
			ctx := b.Context()
			for uid := uint32(1); uid <= 5; uid++ {
				if _, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: id, UIDs: []uint32{uid * 1000}, Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
					b.Fatal(err)
				}
			}
			m, err := s.GetMailbox(ctx, "u@bench.example", "INBOX")
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				ch, err := s.ChangesPage(ctx, id, m.HighestModSeq-5, store.ChangeKey{}, 1000)
				if err != nil || len(ch.Changed) != 5 {
					b.Fatalf("%+v, %v", ch, err)
				}
			}
		})
	}
}

// BenchmarkStoreFlag measures IMAP STORE of one flag on one message of a
// 10,000-message mailbox, each a transaction of its own (what imaptest's
// stress load does most between its reads).
func BenchmarkStoreFlag(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			id := fill10k(b, s)
			ctx := b.Context()
			ops := []store.FlagOp{store.FlagsAdd, store.FlagsRemove}
			n := 0
			for b.Loop() {
				u := &store.FlagUpdate{MailboxID: id, UIDs: []uint32{uint32(n%10000) + 1}, Op: ops[n/10000%2], Flags: []string{`\Flagged`}}
				if _, err := s.StoreFlags(ctx, u); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "stores/s")
		})
	}
}

// BenchmarkGetUser is the user look-up of every login and every RCPT to
// a mailbox.
func BenchmarkGetUser(b *testing.B) {
	for _, f := range benchFlavors() {
		b.Run(f.name, func(b *testing.B) {
			s := benchStore(b, f.opts)
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.GetUser(ctx, "u@bench.example"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
