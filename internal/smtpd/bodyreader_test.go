package smtpd

import (
	"bytes"
	"io"
	"math/rand"
	"testing"
)

// refBodyRead is bodyReader.read as it was, a byte at a time: the
// reference the line-wise check must match.
func refBodyRead(b *bodyReader, p []byte) (int, error) {
	n, err := b.r.Read(p)
	for i := range n {
		switch c := p[i]; {
		case c == '\n' && !b.prevCR:
			return 0, errBareLF
		case c != '\n' && b.prevCR:
			return 0, errBareCR
		default:
			b.prevCR = c == '\r'
		}
	}
	if err == io.EOF && b.prevCR {
		return 0, errBareCR
	}
	return n, err
}

// pieceReader returns its data in pieces of random size.
type pieceReader struct {
	data []byte
	rnd  *rand.Rand
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rnd.Intn(30))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestBodyReaderMatchesByteWise: for any input and any split into reads,
// the body reader returns what the byte-at-a-time check returned, the
// same bytes and the same error (bare CR or bare LF, whichever comes
// first).
func TestBodyReaderMatchesByteWise(t *testing.T) {
	alphabet := []byte("\r\r\n\n\nab")
	for seed := int64(0); seed < 30000; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		body := make([]byte, rnd.Intn(120))
		for i := range body {
			body[i] = alphabet[rnd.Intn(len(alphabet))]
		}
		if seed%2 == 0 { // mostly well-formed lines, one fault at most
			body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("\r"), nil), []byte("\n"), []byte("\r\n"))
			if len(body) > 0 && seed%4 == 0 {
				body[rnd.Intn(len(body))] = alphabet[rnd.Intn(len(alphabet))]
			}
		}
		run := func(read func(*bodyReader, []byte) (int, error)) (out []byte, err error) {
			r := rand.New(rand.NewSource(seed))
			br := &bodyReader{r: &pieceReader{data: body, rnd: r}}
			for {
				p := make([]byte, 1+r.Intn(40))
				n, err := read(br, p)
				out = append(out, p[:n]...)
				if err != nil {
					return out, err
				}
			}
		}
		gotOut, gotErr := run((*bodyReader).read)
		wantOut, wantErr := run(refBodyRead)
		if !bytes.Equal(gotOut, wantOut) || gotErr != wantErr {
			t.Fatalf("seed %d, body %q: got %q, %v; want %q, %v", seed, body, gotOut, gotErr, wantOut, wantErr)
		}
	}
}

// BenchmarkBodyReader: 64 KiB of 80-byte lines through the bare CR/LF
// check, and through the byte-wise one for comparison.
func BenchmarkBodyReader(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123\r\n"), 840)
	for _, bc := range []struct {
		name string
		read func(*bodyReader, []byte) (int, error)
	}{{"linewise", (*bodyReader).read}, {"bytewise", refBodyRead}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			buf := make([]byte, 32<<10)
			for b.Loop() {
				br := &bodyReader{r: bytes.NewReader(body)}
				for {
					if _, err := bc.read(br, buf); err != nil {
						break
					}
				}
			}
		})
	}
}
