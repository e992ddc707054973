package smtp

import (
	"bufio"
	"bytes"
	"io"
	"math/rand"
	"testing"
)

// Petrel: the line-at-a-time dataReader and lineLimitReader must behave
// exactly as upstream's byte-at-a-time state machines (kept below as the
// reference), for any input, buffer size and read size.

// refDataRead is dataReader.Read as it was before the fast path.
func refDataRead(r *dataReader, b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			if err = r.r.UnreadByte(); err != nil {
				break
			}
			c = '\r'
			r.state = stateCR
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

// refLineLimitRead is lineLimitReader.Read as it was.
func refLineLimitRead(r *lineLimitReader, b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	if r.LineLimit == 0 {
		return n, nil
	}
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

// chunkReader returns its data in pieces of random size.
type chunkReader struct {
	data []byte
	rnd  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1 + c.rnd.Intn(40)
	if n > len(p) {
		n = len(p)
	}
	if n > len(c.data) {
		n = len(c.data)
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// randomBody is mostly the bytes that move the state machines.
func randomBody(rnd *rand.Rand) []byte {
	alphabet := []byte("..\r\r\n\n\nabcdefgh")
	b := make([]byte, rnd.Intn(300))
	for i := range b {
		b[i] = alphabet[rnd.Intn(len(alphabet))]
	}
	if rnd.Intn(2) == 0 {
		b = append(b, "\r\n.\r\ntrailing"...)
	}
	return b
}

type readStep struct {
	data []byte
	err  error
}

// drain reads with random buffer sizes until an error, recording every
// step.
func drain(rnd *rand.Rand, read func([]byte) (int, error)) []readStep {
	var steps []readStep
	for i := 0; i < 10000; i++ {
		b := make([]byte, 1+rnd.Intn(50))
		n, err := read(b)
		steps = append(steps, readStep{append([]byte(nil), b[:n]...), err})
		if err != nil {
			break
		}
	}
	return steps
}

func sameSteps(a, b []readStep) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].data, b[i].data) || a[i].err != b[i].err {
			return false
		}
	}
	return true
}

func TestDataReaderMatchesUpstream(t *testing.T) {
	for seed := int64(0); seed < 20000; seed++ {
		body := randomBody(rand.New(rand.NewSource(seed)))
		limit := int64(0)
		if seed%3 == 0 {
			limit = int64(1 + rand.New(rand.NewSource(seed)).Intn(200))
		}
		run := func(read func(*dataReader, []byte) (int, error)) ([]readStep, []byte) {
			rnd := rand.New(rand.NewSource(seed))
			br := bufio.NewReaderSize(&chunkReader{data: body, rnd: rnd}, 16+int(seed%64))
			dr := &dataReader{r: br, limited: limit > 0, n: limit}
			steps := drain(rnd, func(b []byte) (int, error) { return read(dr, b) })
			rest, _ := io.ReadAll(br)
			return steps, rest
		}
		gotSteps, gotRest := run((*dataReader).Read)
		wantSteps, wantRest := run(refDataRead)
		if !sameSteps(gotSteps, wantSteps) || !bytes.Equal(gotRest, wantRest) {
			t.Fatalf("seed %d, body %q, limit %d:\ngot  %v rest %q\nwant %v rest %q", seed, body, limit, gotSteps, gotRest, wantSteps, wantRest)
		}
	}
}

func TestLineLimitReaderMatchesUpstream(t *testing.T) {
	for seed := int64(0); seed < 20000; seed++ {
		body := randomBody(rand.New(rand.NewSource(seed)))
		limit := int(seed % 12) // 0: no limit
		run := func(read func(*lineLimitReader, []byte) (int, error)) []readStep {
			rnd := rand.New(rand.NewSource(seed))
			lr := &lineLimitReader{R: &chunkReader{data: body, rnd: rnd}, LineLimit: limit}
			return drain(rnd, func(b []byte) (int, error) { return read(lr, b) })
		}
		if got, want := run((*lineLimitReader).Read), run(refLineLimitRead); !sameSteps(got, want) {
			t.Fatalf("seed %d, body %q, limit %d:\ngot  %v\nwant %v", seed, body, limit, got, want)
		}
	}
}

// BenchmarkDataReader: a 64 KiB body of 80-byte lines through the DATA
// reader, and through upstream's for comparison.
func BenchmarkDataReader(b *testing.B) {
	b.Run("petrel", func(b *testing.B) { benchDataReader(b, (*dataReader).Read) })
	b.Run("upstream", func(b *testing.B) { benchDataReader(b, refDataRead) })
}

func benchDataReader(b *testing.B, read func(*dataReader, []byte) (int, error)) {
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123\r\n"), 840)
	body = append(body, ".\r\n"...)
	b.SetBytes(int64(len(body)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		dr := &dataReader{r: bufio.NewReader(bytes.NewReader(body))}
		for {
			if _, err := read(dr, buf); err != nil {
				break
			}
		}
	}
}
