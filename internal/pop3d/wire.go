package pop3d

import (
	"bytes"
	"io"
	"sync"
)

// encoder writes a stored message as the body of a POP3 multi-line
// response (RFC 1939 3): every line ends in CRLF (a bare LF gets its CR),
// a line that starts with "." gets another one (byte-stuffing), and a
// last line without an end gets CRLF. With top >= 0 it stops after the
// header, the blank line and top body lines (RFC 1939 7 TOP).
//
// n counts the octets as RETR sends them without the stuffing, which is
// the message size LIST and STAT report (RFC 1939 11). The terminating
// ".CRLF" is the caller's.
type encoder struct {
	w     io.Writer // nil: only count
	stuff bool
	top   int // body lines still to send; < 0: all

	n         int64
	lineStart bool
	lineLen   int  // bytes of the current line so far, LF excluded
	prevCR    bool // the last byte written was CR
	inBody    bool // past the blank line after the header
	done      bool // TOP limit reached
	err       error
}

func newEncoder(w io.Writer, stuff bool, top int) *encoder {
	return &encoder{w: w, stuff: stuff, top: top, lineStart: true}
}

var (
	crlf = []byte("\r\n")
	dot  = []byte(".")
)

func (e *encoder) emit(p []byte) {
	if e.err != nil || e.w == nil || len(p) == 0 {
		return
	}
	_, e.err = e.w.Write(p)
}

// Write implements io.Writer. It reports len(p) even after the TOP limit,
// so io.Copy runs to the end; encoding stops there all the same.
func (e *encoder) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && !e.done && e.err == nil {
		if e.lineStart {
			if e.top >= 0 && e.inBody {
				if e.top == 0 {
					e.done = true
					break
				}
				e.top--
			}
			if e.stuff && p[0] == '.' {
				e.emit(dot) // RFC 1939 3: not counted in the size
			}
			e.lineStart = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			e.emit(p)
			e.n += int64(len(p))
			e.lineLen += len(p)
			e.prevCR = p[len(p)-1] == '\r'
			break
		}
		cr := e.prevCR
		if i > 0 {
			cr = p[i-1] == '\r'
		}
		line := e.lineLen + i // bytes before the LF, CR included
		if cr {
			e.emit(p[:i+1])
			e.n += int64(i + 1)
		} else {
			e.emit(p[:i])
			e.emit(crlf)
			e.n += int64(i + 2)
		}
		if !e.inBody && (line == 0 || line == 1 && cr) {
			e.inBody = true // the blank line ends the header (RFC 5322 2.1)
		}
		e.lineStart, e.lineLen, e.prevCR = true, 0, false
		p = p[i+1:]
	}
	return total, e.err
}

// finish ends an unterminated last line and returns the size.
func (e *encoder) finish() (int64, error) {
	if !e.lineStart && !e.done {
		if e.prevCR {
			e.emit(crlf[1:])
			e.n++
		} else {
			e.emit(crlf)
			e.n += 2
		}
		e.lineStart = true
	}
	return e.n, e.err
}

// wireSize is the size of a stored message as RETR sends it.
func wireSize(r io.Reader) (int64, error) {
	e := newEncoder(nil, false, -1)
	if _, err := io.Copy(e, r); err != nil {
		return 0, err
	}
	return e.finish()
}

// sizeCache remembers wire sizes by body id: bodies never change (the
// store forbids updating message.body_id), so a size computed once holds
// for every later session of every user sharing the body.
type sizeCache struct {
	mu  sync.Mutex
	max int
	m   map[int64]int64
}

// defaultSizeCacheEntries keeps a few megabytes of sizes.
const defaultSizeCacheEntries = 1 << 18

func newSizeCache(max int) *sizeCache { return &sizeCache{max: max, m: make(map[int64]int64)} }

func (c *sizeCache) get(id int64) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[id]
	return n, ok
}

func (c *sizeCache) put(id, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Crude but bounded: start over; sizes are recomputed on demand.
		clear(c.m)
	}
	c.m[id] = n
}
