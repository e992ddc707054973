package smtpd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// countingWriter records the size of every Write.
type countingWriter struct {
	bytes.Buffer
	writes []int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

// TestCopyBody: the prefix and the body arrive whole whatever the read
// sizes, in full chunks (one Write for a message that fits in one), and a
// bare LF past the first chunk still fails the copy with body.err set.
func TestCopyBody(t *testing.T) {
	const prefix = "Received: from x\r\n"
	for _, size := range []int{0, 100, bodyBuffer - len(prefix), bodyBuffer, 3*bodyBuffer + 7} {
		body := strings.Repeat("0123456789abcd\r\n", size/16+1)[:size]
		var w countingWriter
		br := &bodyReader{r: iotest.OneByteReader(strings.NewReader(body))}
		if err := copyBody(&w, prefix, br); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if w.String() != prefix+body {
			t.Fatalf("size %d: copied %d bytes, want %d", size, w.Len(), len(prefix)+size)
		}
		wantWrites := (len(prefix) + size + bodyBuffer - 1) / bodyBuffer
		if len(w.writes) != wantWrites {
			t.Errorf("size %d: %d writes %v, want %d", size, len(w.writes), w.writes, wantWrites)
		}
		for i, n := range w.writes[:max(len(w.writes)-1, 0)] {
			if n != bodyBuffer {
				t.Errorf("size %d: write %d of %d bytes, not a full chunk", size, i, n)
			}
		}
	}

	bad := strings.Repeat("x\r\n", bodyBuffer) + "bare\nLF\r\n"
	var w countingWriter
	br := &bodyReader{r: strings.NewReader(bad)}
	err := copyBody(&w, prefix, br)
	if !errors.Is(err, errBareLF) || !errors.Is(br.err, errBareLF) {
		t.Errorf("bare LF: err %v, body.err %v", err, br.err)
	}

	// A failing spool stops the copy with its error, not the client's.
	br = &bodyReader{r: strings.NewReader("hello\r\n")}
	werr := errors.New("disk full")
	if err := copyBody(failingWriter{werr}, prefix, br); !errors.Is(err, werr) || br.err != nil {
		t.Errorf("write failure: err %v, body.err %v", err, br.err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }
