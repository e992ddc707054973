package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"strings"
)

// cmdCompress is COMPRESS DEFLATE (RFC 4978): after the tagged OK both
// directions are raw DEFLATE (RFC 1951) streams, each response flushed
// with a sync flush so that the client can read it at once.
func cmdCompress(s *session, c *command) error {
	d := c.args
	d.SP()
	alg := d.Atom()
	if err := d.End(); err != nil {
		return err
	}
	switch {
	case s.compressed:
		// RFC 4978 3: a second COMPRESS.
		return no("COMPRESSIONACTIVE", "DEFLATE is already active")
	case !strings.EqualFold(alg, "DEFLATE"):
		return bad("Only DEFLATE is supported")
	}
	s.tagged(c.tag, &result{kind: "OK", text: "DEFLATE active"})
	if err := s.w.Flush(); err != nil {
		s.closing = true
		return errAnswered
	}
	s.compressed = true
	s.setConn(s.conn)
	return errAnswered
}

// compressLayers puts DEFLATE between the connection and the session's
// reader and writer: in inflates what the client sends (starting with
// what is already buffered, which RFC 4978 3 says is compressed), out
// deflates responses. Level 1 (flate.BestSpeed) keeps the CPU per
// response low; mail text still shrinks about threefold.
func (s *session) compressLayers(in io.Reader, out io.Writer) (io.Reader, *syncFlusher) {
	if s.r != nil && s.r.Buffered() > 0 {
		early, _ := s.r.Peek(s.r.Buffered())
		in = io.MultiReader(bytes.NewReader(bytes.Clone(early)), in)
	}
	zw, _ := flate.NewWriter(out, flate.BestSpeed) // the level is valid: no error
	return flate.NewReader(bufio.NewReaderSize(in, 4<<10)), &syncFlusher{zw: zw}
}

// syncFlusher sync-flushes the DEFLATE stream only when something was
// written since the last flush. An empty sync flush still sends five
// bytes, and right after COMPRESS's OK a client can read them together
// with the OK, before it has switched to inflating (seen in CI).
type syncFlusher struct {
	zw      *flate.Writer
	pending bool
}

func (f *syncFlusher) Write(p []byte) (int, error) {
	f.pending = f.pending || len(p) > 0
	return f.zw.Write(p)
}

func (f *syncFlusher) Flush() error {
	if !f.pending {
		return nil
	}
	f.pending = false
	return f.zw.Flush()
}
