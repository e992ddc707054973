package imapmsg

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// scanner reads a message line by line and tracks where it is: the offset
// of the next unread byte and the number of line feeds before it.
type scanner struct {
	br       *bufio.Reader
	pool     *sync.Pool // where br goes back
	off      int64      // offset of the next unread byte
	lfs      int64      // line feeds in [0, off)
	prevTerm int        // length of the line break of the last line read (0, 1 or 2)
	err      error      // the first read error other than EOF

	// The same two counters as they were before the last line read.
	lfsBefore  int64
	termBefore int
}

// The scanners' read buffers are reused: a FETCH of a message's
// structure parsed it with a fresh 64 KiB buffer, a third of the bytes
// the whole IMAP load allocated. Nothing a parse returns points into
// the buffer (header lines are copied), so it goes back when Parse ends.
var (
	parseBufs  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
	headerBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headerBufSize) }}
)

// newScanner reads r (size octets) through a buffer from pool; release
// gives it back.
func newScanner(r io.ReaderAt, size int64, pool *sync.Pool) *scanner {
	br := pool.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(r, 0, size))
	return &scanner{br: br, pool: pool}
}

// release returns the buffer; the scanner is not used again.
func (sc *scanner) release() {
	sc.br.Reset(nil)
	sc.pool.Put(sc.br)
	sc.br = nil
}

// line is one line of the message. head is its beginning (the whole line,
// line break included, when full is true) and is valid until the next call.
type line struct {
	start int64
	head  []byte
	full  bool
}

// blank reports whether the line is empty (just a line break).
func (l line) blank() bool {
	return l.full && (len(l.head) == 1 && l.head[0] == '\n' || len(l.head) == 2 && l.head[0] == '\r' && l.head[1] == '\n')
}

// next reads the next line; false at the end of the message. A line
// longer than the read buffer is consumed whole but only its first
// readBufSize bytes are returned.
func (sc *scanner) next() (line, bool) {
	if sc.err != nil {
		return line{}, false
	}
	start := sc.off
	sc.lfsBefore, sc.termBefore = sc.lfs, sc.prevTerm
	head, err := sc.br.ReadSlice('\n')
	sc.off += int64(len(head))
	full := true
	if errors.Is(err, bufio.ErrBufferFull) {
		full = false
		// Keep the head: copy it, as the next ReadSlice overwrites the buffer.
		head = append([]byte(nil), head...)
		last := head[len(head)-1]
		for errors.Is(err, bufio.ErrBufferFull) {
			var more []byte
			more, err = sc.br.ReadSlice('\n')
			sc.off += int64(len(more))
			if len(more) > 0 {
				sc.setTerm(more, last)
				last = more[len(more)-1]
			}
		}
	} else if len(head) > 0 {
		sc.setTerm(head, 0)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		sc.err = err
		return line{}, false
	}
	if len(head) == 0 {
		return line{}, false
	}
	return line{start: start, head: head, full: full}, true
}

// setTerm records the line break that ends chunk, the last piece of a
// line (prev is the last byte of the piece before it, for a CR split from
// its LF).
func (sc *scanner) setTerm(chunk []byte, prev byte) {
	n := len(chunk)
	switch {
	case chunk[n-1] != '\n':
		sc.prevTerm = 0
		return
	case n >= 2 && chunk[n-2] == '\r':
		sc.prevTerm = 2
	case n == 1 && prev == '\r':
		sc.prevTerm = 2
	default:
		sc.prevTerm = 1
	}
	sc.lfs++
}

// match reports whether l is a delimiter line of one of the active
// boundaries (RFC 2046 5.1.1). Like Dovecot, any line that starts with
// "--" and the boundary matches; the longest matching boundary wins, so
// that nested boundaries that share a prefix work.
func (sc *scanner) match(l line, bounds []string) *boundaryHit {
	h := l.head
	if len(h) < 3 || h[0] != '-' || h[1] != '-' {
		return nil
	}
	best := -1
	for i, b := range bounds {
		if len(h)-2 >= len(b) && string(h[2:2+len(b)]) == b && (best < 0 || len(b) >= len(bounds[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	rest := h[2+len(bounds[best]):]
	return &boundaryHit{
		idx:       best,
		close:     len(rest) >= 2 && rest[0] == '-' && rest[1] == '-',
		lineStart: l.start,
		lfsBefore: sc.lfsBefore,
		prevTerm:  sc.termBefore,
	}
}

// skipBody reads body lines until a delimiter line of one of bounds,
// which it returns, or the end of the message (nil).
func (sc *scanner) skipBody(bounds []string) *boundaryHit {
	for {
		l, ok := sc.next()
		if !ok {
			return nil
		}
		if len(bounds) > 0 {
			if hit := sc.match(l, bounds); hit != nil {
				return hit
			}
		}
	}
}
