package smtp

import (
	"bytes"
	"errors"
	"io"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
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

	// Petrel: counted a line at a time (bytes.IndexByte) rather than a
	// byte at a time, with the same result: an LF starts the next line's
	// count at 1, and the count only grows within a line, so checking it
	// at each line's end finds every line over the limit.
	rest := b[:n]
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			r.curLineLength += len(rest)
			if r.curLineLength > r.LineLimit {
				return 0, ErrTooLongLine
			}
			return n, nil
		}
		r.curLineLength += i
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
		r.curLineLength = 1
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
		rest = rest[i+1:]
	}
}
