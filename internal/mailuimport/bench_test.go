package mailuimport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// cpuTime is the process's user + system CPU time: on a shared machine
// the figure that compares, where wall time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bzip2Maildir writes n messages as Dovecot's zlib plugin does with
// Mailu's COMPRESSION=bz2 (bzip2 -9, one stream per file).
func bzip2Maildir(b *testing.B, root string, n int) {
	b.Helper()
	if _, err := exec.LookPath("bzip2"); err != nil {
		b.Skip("bzip2 not installed")
	}
	for _, d := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// A handful of distinct bodies, compressed once each.
	var variants [][]byte
	for v := range 8 {
		body := fmt.Sprintf("From: a@b\r\nSubject: variant %d\r\n\r\n", v)
		for l := range 20 + 10*v {
			body += fmt.Sprintf("line %d of a plain text message body, variant %d\r\n", l, v)
		}
		cmd := exec.Command("bzip2", "-9", "-c")
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		variants = append(variants, out)
	}
	for i := 1; i <= n; i++ {
		name := filepath.Join(root, "cur", fmt.Sprintf("17000%05d.M%dP1.host,S=100:2,S", i, i))
		if err := os.WriteFile(name, variants[i%len(variants)], 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImportBzip2 imports a Maildir of bzip2-compressed messages
// and reports the process's CPU time per message.
func BenchmarkImportBzip2(b *testing.B) {
	mail := b.TempDir()
	const n = 1000
	bzip2Maildir(b, filepath.Join(mail, "anna@one.test"), n)
	benchImport(b, mail, n)
}

// BenchmarkImportPlain is the same with plain files (gzip and zstd for a
// tenth each), the other Maildirs' path.
func BenchmarkImportPlain(b *testing.B) {
	mail := b.TempDir()
	const n = 2000
	maildir(b, filepath.Join(mail, "anna@one.test"), n)
	benchImport(b, mail, n+1)
}

func benchImport(b *testing.B, mail string, n int) {
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		st := openStore(b)
		ctx := context.Background()
		st.CreateDomain(ctx, &store.Domain{Name: "one.test", MaxUsers: -1, MaxAliases: -1})
		u := store.NewUser("anna", "one.test", 0, 80)
		u.Password = "x"
		st.CreateUser(ctx, &u)
		b.StartTimer()
		c0 := cpuTime()
		rep, err := Run(ctx, st, Options{MailDir: mail})
		cpu += cpuTime() - c0
		if err != nil || rep.Messages != int64(n) {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/msg")
}

// TestBzip2Pooled: a pooled reader decodes file after file correctly,
// concatenated streams included (bzip2 -9 as Dovecot's zlib plugin
// writes it), and a damaged file fails without spoiling the next one.
func TestBzip2Pooled(t *testing.T) {
	if _, err := exec.LookPath("bzip2"); err != nil {
		t.Skip("bzip2 not installed")
	}
	compress := func(s string) []byte {
		cmd := exec.Command("bzip2", "-9", "-c")
		cmd.Stdin = strings.NewReader(s)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	d, err := newDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	big := strings.Repeat("Subject: big\r\n\r\n"+strings.Repeat("x", 1000)+"\r\n", 2000)
	a, b := "Subject: a\r\n\r\nfirst\r\n", "Subject: b\r\n\r\nsecond\r\n"
	cases := []struct{ in, want string }{
		{string(compress(big)), big},
		{string(compress(a)), a},
		{string(compress(a)) + string(compress(b)), a + b},
		{string(compress("")), ""},
	}
	for round := range 3 {
		for i, c := range cases {
			out, method, err := d.decode([]byte(c.in))
			if err != nil || method != "bz2" || string(out) != c.want {
				t.Fatalf("round %d case %d: method %q, err %v, %d bytes, want %d", round, i, method, err, len(out), len(c.want))
			}
		}
		bad := compress(b)
		bad[len(bad)/2] ^= 0xff
		if _, _, err := d.decode(bad); err == nil {
			t.Fatal("a damaged bzip2 file decoded")
		}
	}
}

// TestReadFile: the whole file whatever size the listing saw (smaller,
// exact, larger, zero), and a missing file is os.ErrNotExist (the
// renamed-file path depends on it).
func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m")
	want := strings.Repeat("0123456789", 1000)
	if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{0, 1, 9999, 10000, 10001, 1 << 20, -1} {
		got, err := readFile(p, size)
		if err != nil || string(got) != want {
			t.Fatalf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
	if _, err := readFile(p+".gone", 10); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
