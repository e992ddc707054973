package pop3d

import (
	"bytes"
	"strings"
	"testing"
)

func encode(in string, top int, chunks ...int) (string, int64, error) {
	var b bytes.Buffer
	e := newEncoder(&b, true, top)
	rest := []byte(in)
	for _, n := range chunks {
		n = min(n, len(rest))
		e.Write(rest[:n])
		rest = rest[n:]
	}
	e.Write(rest)
	n, err := e.finish()
	return b.String(), n, err
}

func TestEncoder(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		top      int
		want     string
		size     int64
	}{
		{"empty", "", -1, "", 0},
		{"crlf", "a\r\nb\r\n", -1, "a\r\nb\r\n", 6},
		{"bare lf", "a\nb\n", -1, "a\r\nb\r\n", 6},
		{"no final newline", "a\r\nb", -1, "a\r\nb\r\n", 6},
		{"final bare cr", "a\r", -1, "a\r\n", 3},
		{"cr inside a line stays", "a\rb\r\n", -1, "a\rb\r\n", 5},
		{"dots", ".\r\n..\r\n.a\r\nb.\r\n", -1, "..\r\n...\r\n..a\r\nb.\r\n", 15},
		{"dot after bare lf", "x\n.\n", -1, "x\r\n..\r\n", 6},
		{"only a dot", ".", -1, "..\r\n", 3},
		{"top 0", "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n", 0, "H: 1\r\nH: 2\r\n\r\n", 14},
		{"top 1", "H: 1\r\n\r\nb1\r\nb2\r\n", 1, "H: 1\r\n\r\nb1\r\n", 12},
		{"top beyond the end", "H: 1\r\n\r\nb1", 5, "H: 1\r\n\r\nb1\r\n", 12},
		{"top without a body", "H: 1\r\nH: 2", 0, "H: 1\r\nH: 2\r\n", 12},
		{"top with bare lf blank line", "H: 1\n\n.b1\nb2\n", 1, "H: 1\r\n\r\n..b1\r\n", 13},
		{"top blank line as CR CR LF is not blank", "H\r\r\nx\r\n\r\nb\r\n", 0, "H\r\r\nx\r\n\r\n", 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for split := 0; split <= len(tc.in); split++ {
				got, n, err := encode(tc.in, tc.top, split, 1)
				if err != nil || got != tc.want || n != tc.size {
					t.Fatalf("split %d: %q size %d (%v), want %q size %d", split, got, n, err, tc.want, tc.size)
				}
			}
			if tc.top < 0 {
				n, err := wireSize(strings.NewReader(tc.in))
				if err != nil || n != tc.size {
					t.Fatalf("wireSize %d (%v), want %d", n, err, tc.size)
				}
			}
		})
	}
}

// unstuff undoes byte-stuffing of an encoded body, checking that every
// line ends in CRLF and every line starting with "." was doubled.
func unstuff(t *testing.T, enc string) string {
	t.Helper()
	if enc == "" {
		return ""
	}
	if !strings.HasSuffix(enc, "\r\n") {
		t.Fatalf("encoded body does not end in CRLF: %q", enc)
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(enc, "\r\n") {
		if l == "" {
			continue
		}
		if strings.Contains(strings.TrimSuffix(l, "\r\n"), "\n") {
			t.Fatalf("bare LF in %q", l)
		}
		if strings.HasPrefix(l, ".") {
			if !strings.HasPrefix(l, "..") {
				t.Fatalf("line starting with an unstuffed dot: %q", l)
			}
			l = l[1:]
		}
		out.WriteString(l)
	}
	return out.String()
}

// FuzzEncoder: for any body and any split into writes, the encoding has
// CRLF lines only, unstuffs to the normalised body, reports its size, and
// TOP output is a prefix of RETR output.
func FuzzEncoder(f *testing.F) {
	for _, s := range []string{"", ".", "a\r\n.b\r\n", "x\ny\r\n\r\n.\n", "\r", "\r\r\n\n", "H: v\r\n\r\n..\r\nbody"} {
		f.Add([]byte(s), uint16(1), int8(-1))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16, top int8) {
		got, n, err := encode(string(in), -1, int(split))
		if err != nil {
			t.Fatal(err)
		}
		plain := unstuff(t, got)
		if want := normalize(string(in)); plain != want {
			t.Fatalf("unstuffed %q, want %q", plain, want)
		}
		if n != int64(len(plain)) {
			t.Fatalf("size %d, unstuffed %d octets", n, len(plain))
		}
		if m, _ := wireSize(bytes.NewReader(in)); m != n {
			t.Fatalf("wireSize %d, encoder %d", m, n)
		}
		if top >= 0 {
			part, _, err := encode(string(in), int(top), int(split))
			if err != nil || !strings.HasPrefix(got, part) {
				t.Fatalf("TOP %d output %q is not a prefix of %q", top, part, got)
			}
		}
	})
}
