package inbound

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/petrelmail/petrel/internal/store/blob"
)

// spillBuffer is the write buffer in front of a spilled blob file, so a
// DATA stream of small writes does not become one syscall each.
const spillBuffer = 64 << 10

// headroom is the room an in-memory body keeps in front of it for the
// header fields added after DATA (Authentication-Results, the scanners'
// fields, Return-Path): Prepend then writes them there instead of copying
// the body behind them.
const headroom = 1 << 10

// errSpoolDone is returned for use of a Spool after Deliver or Abort.
var errSpoolDone = errors.New("inbound: spool already delivered or aborted")

// Spool receives one message body. Up to the Deliverer's InlineMax bytes
// stay in memory (they are stored inline in the database); a larger body
// spills to a blob temp file. A Spool is used by one goroutine. It is
// consumed by Deliver or released by Abort; Abort after Deliver is a no-op,
// so `defer sp.Abort()` is the usual pattern.
type Spool struct {
	blobs     *blob.Dir
	inlineMax int64
	onDone    func() // called once when the spool is consumed or aborted; nil: nothing

	mem  []byte // the in-memory body is mem[head:]
	head int
	pre  []byte // fields prepended to a spilled body: finish writes them in front
	w    *blob.Writer
	bw   *bufio.Writer
	size int64
	err  error // sticky write error
	done bool
}

// Write appends p to the body.
func (s *Spool) Write(p []byte) (int, error) {
	if s.done {
		return 0, errSpoolDone
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.w == nil && s.size+int64(len(p)) <= s.inlineMax {
		s.reserve(len(p))
		s.mem = append(s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.w == nil {
		if err := s.spill(); err != nil {
			s.err = err
			return 0, err
		}
	}
	n, err := s.bw.Write(p)
	s.size += int64(n)
	if err != nil {
		s.err = fmt.Errorf("inbound: spool write: %w", err)
		return n, s.err
	}
	return n, nil
}

// Grow makes room for n more bytes when they will stay in memory, so a
// body whose size the writer knows (a re-spool of another Spool) is one
// allocation instead of one per doubling.
func (s *Spool) Grow(n int64) {
	if s.done || s.w != nil || n <= 0 || s.size+n > s.inlineMax {
		return
	}
	s.reserve(int(n))
}

// reserve makes room for n more bytes of an in-memory body; the first
// allocation leaves headroom in front.
func (s *Spool) reserve(n int) {
	if s.mem == nil {
		s.mem = make([]byte, headroom, headroom+n)
		s.head = headroom
		return
	}
	s.mem = slices.Grow(s.mem, n)
}

// Prepend puts p in front of the body written so far: header fields
// that are known only once the whole message is in. An in-memory body
// takes them into its headroom, without a copy of the body; past the
// headroom it is copied once. A spilled body keeps them aside, and
// finish writes the blob file again once with all of them in front.
func (s *Spool) Prepend(p []byte) error {
	if s.done {
		return errSpoolDone
	}
	if s.err != nil {
		return s.err
	}
	if len(p) == 0 {
		return nil
	}
	if s.w == nil && s.size+int64(len(p)) <= s.inlineMax {
		if len(p) > s.head {
			mem := make([]byte, headroom+len(p)+int(s.size))
			copy(mem[headroom+len(p):], s.mem[s.head:])
			s.mem, s.head = mem, headroom+len(p)
		}
		s.head -= len(p)
		copy(s.mem[s.head:], p)
		s.size += int64(len(p))
		return nil
	}
	if s.w != nil {
		s.pre = append(append(make([]byte, 0, len(p)+len(s.pre)), p...), s.pre...)
		s.size += int64(len(p))
		return nil
	}
	// Past InlineMax: the body spills, with p in front.
	if err := s.rewrite(p); err != nil {
		s.err = err
		return err
	}
	s.size += int64(len(p))
	return nil
}

// rewrite moves the body into a new blob file behind p (Size is the
// caller's to count).
func (s *Spool) rewrite(p []byte) error {
	if s.blobs == nil {
		return errors.New("inbound: body larger than InlineMax and no blob directory")
	}
	var old io.ReadCloser = io.NopCloser(bytes.NewReader(s.body()))
	if s.w != nil {
		if err := s.bw.Flush(); err != nil {
			return fmt.Errorf("inbound: spool flush: %w", err)
		}
		rc, err := s.w.Open()
		if err != nil {
			return fmt.Errorf("inbound: spool: %w", err)
		}
		old = rc
	}
	defer old.Close()
	w, err := s.blobs.Create()
	if err != nil {
		return fmt.Errorf("inbound: spool: %w", err)
	}
	bw := bufio.NewWriterSize(w, spillBuffer)
	_, err = bw.Write(p)
	if err == nil {
		_, err = io.Copy(bw, old)
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("inbound: spool write: %w", err)
	}
	if s.w != nil {
		s.w.Abort()
	}
	s.w, s.bw, s.mem, s.head = w, bw, nil, 0
	return nil
}

// body is the in-memory body.
func (s *Spool) body() []byte {
	if s.mem == nil {
		return nil
	}
	return s.mem[s.head:]
}

// spill moves the in-memory part into a new blob file.
func (s *Spool) spill() error {
	if s.blobs == nil {
		return errors.New("inbound: body larger than InlineMax and no blob directory")
	}
	w, err := s.blobs.Create()
	if err != nil {
		return fmt.Errorf("inbound: spool: %w", err)
	}
	s.w = w
	s.bw = bufio.NewWriterSize(w, spillBuffer)
	if _, err := s.bw.Write(s.body()); err != nil {
		return fmt.Errorf("inbound: spool write: %w", err)
	}
	s.mem, s.head = nil, 0
	return nil
}

// setDone marks the spool consumed, once: it no longer counts as a
// message on its way to the committer.
func (s *Spool) setDone() {
	s.done = true
	if s.onDone != nil {
		s.onDone()
		s.onDone = nil
	}
}

// takeOnDone returns the spool's onDone and leaves it without one: the
// caller runs it once the message is where it goes next.
func (s *Spool) takeOnDone() func() {
	f := s.onDone
	s.onDone = nil
	if f == nil {
		return func() {}
	}
	return f
}

// Size is the number of body bytes written so far.
func (s *Spool) Size() int64 { return s.size }

// Open returns a reader of the body written so far, from its start; the
// Spool stays usable. Each call gives a new reader, which the caller
// closes. The inbound checks read the message back through it before
// the message is delivered.
func (s *Spool) Open() (io.ReadCloser, error) {
	if s.done {
		return nil, errSpoolDone
	}
	if s.err != nil {
		return nil, s.err
	}
	if s.w == nil {
		return io.NopCloser(bytes.NewReader(s.body())), nil
	}
	if err := s.bw.Flush(); err != nil {
		s.err = fmt.Errorf("inbound: spool flush: %w", err)
		return nil, s.err
	}
	rc, err := s.w.Open()
	if err != nil || len(s.pre) == 0 {
		return rc, err
	}
	return prefixed{io.MultiReader(bytes.NewReader(s.pre), rc), rc}, nil
}

// prefixed reads the prepended fields, then the blob file it closes.
type prefixed struct {
	io.Reader
	io.Closer
}

// Spilled reports whether the body went to a blob file.
func (s *Spool) Spilled() bool { return s.w != nil }

// Abort discards the body. It is safe to call more than once and after
// Deliver.
func (s *Spool) Abort() {
	if s.done {
		return
	}
	s.setDone()
	s.mem, s.pre = nil, nil
	if s.w != nil {
		s.w.Abort()
	}
}

// finish makes the body ready for CommitMessages: the inline bytes, or the
// name of the committed (fsynced) blob. The Spool is consumed either way.
func (s *Spool) finish() (body []byte, blobName string, err error) {
	if s.done {
		return nil, "", errSpoolDone
	}
	if s.err != nil {
		s.Abort()
		return nil, "", s.err
	}
	if s.w == nil {
		s.setDone()
		body = s.body()
		if body == nil {
			body = []byte{}
		}
		s.mem = nil
		return body, "", nil
	}
	if err := s.bw.Flush(); err != nil {
		s.Abort()
		return nil, "", fmt.Errorf("inbound: spool flush: %w", err)
	}
	if len(s.pre) > 0 {
		pre := s.pre
		s.pre = nil
		if err := s.rewrite(pre); err != nil {
			s.Abort()
			return nil, "", err
		}
		if err := s.bw.Flush(); err != nil {
			s.Abort()
			return nil, "", fmt.Errorf("inbound: spool flush: %w", err)
		}
	}
	s.setDone()
	name, err := s.w.Commit()
	if err != nil {
		return nil, "", fmt.Errorf("inbound: spool: %w", err)
	}
	return nil, name, nil
}
