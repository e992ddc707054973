package submit

import (
	"bytes"
	"io"
	"os"
)

// spool holds a message between signing and writing: in memory up to
// limit bytes, then in a temporary file that close removes.
type spool struct {
	dir   string
	limit int64
	buf   bytes.Buffer
	f     *os.File
	err   error // the first write failure
}

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && int64(s.buf.Len()+len(p)) <= s.limit {
		return s.buf.Write(p)
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "petrel-submit-*")
		if err != nil {
			s.err = err
			return 0, err
		}
		s.f = f
		if _, err := s.f.Write(s.buf.Bytes()); err != nil {
			s.err = err
			return 0, err
		}
		s.buf = bytes.Buffer{}
	}
	n, err := s.f.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// reader returns the spooled message from its start.
func (s *spool) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.buf.Bytes()), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.f, nil
}

func (s *spool) close() {
	if s.f != nil {
		name := s.f.Name()
		_ = s.f.Close()
		_ = os.Remove(name)
	}
}
