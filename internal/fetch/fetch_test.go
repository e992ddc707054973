package fetch

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

func TestSealRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Seal("pässword")
	b, _ := s.Seal("pässword")
	if a == b || strings.Contains(a, "pässword") || !strings.HasPrefix(a, "v1:") {
		t.Fatalf("sealed forms %q %q: want distinct, opaque, versioned", a, b)
	}
	if got, err := s.Open(a); err != nil || got != "pässword" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(a); err != ErrUnsealable {
		t.Fatalf("another key opened it: %v", err)
	}
	for _, bad := range []string{"", "v1:", "v1:!!!", "plain", a[:len(a)-2]} {
		if _, err := s.Open(bad); err != ErrUnsealable {
			t.Errorf("Open(%q) = %v, want ErrUnsealable", bad, err)
		}
	}
	if _, err := NewSealer(key[:16]); err == nil {
		t.Error("a 16-byte key was taken")
	}
}

// pop3Over is a client reading the given server bytes.
func pop3Over(t testing.TB, server string) *pop3Client {
	c1, c2 := net.Pipe()
	go func() {
		c2.Write([]byte(server))
		c2.Close()
	}()
	t.Cleanup(func() { c1.Close() })
	return &pop3Client{conn: c1, r: bufio.NewReaderSize(c1, 16), timeout: 5 * time.Second}
}

// TestPOP3Multi: dot-unstuffing only at line starts, also for lines
// longer than the read buffer, and the terminator ends the data.
func TestPOP3Multi(t *testing.T) {
	long := strings.Repeat("x", 40) + ".." + strings.Repeat("y", 40)
	c := pop3Over(t, "..a\r\n"+long+"\r\n..\r\nb\r\n.\r\nafter\r\n")
	got, err := c.multi("RETR", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := ".a\r\n" + long + "\r\n.\r\nb\r\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := pop3Over(t, "a\r\nb\r\n").multi("RETR", 0); err == nil {
		t.Fatal("data cut off before the terminator was taken")
	}
	if _, err := pop3Over(t, strings.Repeat("z", 100)+"\r\n.\r\n").multi("RETR", 50); err == nil {
		t.Fatal("the size limit was not enforced")
	}
}

func FuzzPOP3Multi(f *testing.F) {
	f.Add("..a\r\nb\r\n.\r\n")
	f.Add(".\r\n")
	f.Add("x\n.\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := pop3Over(t, s).multi("RETR", 1<<20)
		if err == nil && len(got) > len(s) {
			t.Fatalf("data longer than the input: %q", got)
		}
	})
}
