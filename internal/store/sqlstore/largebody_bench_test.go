package sqlstore

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// BenchmarkCommitLargeBody measures inbound delivery of a 5 MiB message
// on PostgreSQL as inbound does it: spool to a blob file, then
// CommitMessages naming it (and, where bodies go into the database, the
// spool removed). Besides ns/op it reports the CPU time per message of
// this process and of every PostgreSQL server process on the machine
// (the database is local), which do not depend on the machine's load
// the way wall time does.
func BenchmarkCommitLargeBody(b *testing.B) {
	if os.Getenv("PETREL_TEST_PG_DSN") == "" {
		b.Skip("PETREL_TEST_PG_DSN not set")
	}
	s, err := Open(b.Context(), pgOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	mustB(b, s.CreateDomain(ctx, &store.Domain{Name: "bench.example"}))
	u := store.NewUser("u", "bench.example", 0, 80)
	mustB(b, s.CreateUser(ctx, &u))
	body := make([]byte, 5<<20)
	rand.Read(body)
	copy(body, "Subject: large\r\n\r\n")
	inDB := false
	if h, ok := any(s).(interface{ BodiesInDatabase() bool }); ok {
		inDB = h.BodiesInDatabase()
	}
	selfBefore, pgBefore := selfCPU(), postgresCPU(b)
	b.ResetTimer()
	for i := range b.N {
		name := commitSpooled(b, s, u.Email, body, "m"+strconv.Itoa(i))
		if inDB {
			mustB(b, s.Blobs().Remove(name))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(selfCPU()-selfBefore)/float64(b.N)/1e6, "self-cpu-ms/op")
	b.ReportMetric(float64(postgresCPU(b)-pgBefore)/float64(b.N)/1e6, "pg-cpu-ms/op")
}

func mustB(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func selfCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// postgresCPU sums user and system time of the PostgreSQL server whose
// postmaster.pid PETREL_BENCH_PG_PID names (its postmaster and children;
// other servers on a shared machine are left out), in ns (clock ticks of
// 10 ms: a figure over many operations). 0 without it.
func postgresCPU(tb testing.TB) int64 {
	pidFile := os.Getenv("PETREL_BENCH_PG_PID")
	if pidFile == "" {
		return 0
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		tb.Fatal(err)
	}
	master, _, _ := strings.Cut(string(raw), "\n")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Skip("no /proc")
	}
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if e.Name() != master && f[1] != master {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return ticks * 10e6
}

// commitSpooled delivers body to user's INBOX as smtpd does: spooled to
// a blob file first, then committed by name. It returns the blob's name.
func commitSpooled(b *testing.B, s *Store, user string, body []byte, id string) string {
	b.Helper()
	w, err := s.Blobs().Create()
	mustB(b, err)
	_, err = w.Write(body)
	mustB(b, err)
	name, err := w.Commit()
	mustB(b, err)
	mustB(b, s.CommitMessages(b.Context(), []*store.NewMessage{{ID: id, BlobName: name, Size: int64(len(body)),
		Targets: []store.MailboxTarget{{User: user}}}}))
	return name
}
