// Package s3fake runs an in-process S3 server (github.com/johannesboyne/
// gofakes3 over memory) on a real 127.0.0.1 socket, for tests of the
// BLOB_S3_* body store. Debian ships no light S3 server (only radosgw),
// so this fake is what the tests use. It can be stopped and started again
// on the same address with the same contents, to test an unreachable
// store.
package s3fake

import (
	"errors"
	"net"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials the fake accepts (it checks none; clients need some).
const (
	AccessKey = "petrel-test-access"
	SecretKey = "petrel-test-secret-0123456789"
	Bucket    = "petrel-bodies"
)

// Server is a running fake.
type Server struct {
	t       testing.TB
	backend *s3mem.Backend
	handler http.Handler
	addr    string

	mu  sync.Mutex
	srv *http.Server
}

// Start starts a fake holding an empty bucket named Bucket; it stops
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, backend: be, handler: gofakes3.New(be, gofakes3.WithTimeSkewLimit(0)).Server()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Endpoint is host:port (plain HTTP: BLOB_S3_TLS=false).
func (s *Server) Endpoint() string { return s.addr }

// Stop closes the listener and every connection; the contents stay.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens again on the same address after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("s3fake: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Keys lists the keys in the bucket, sorted.
func (s *Server) Keys() []string {
	s.t.Helper()
	l, err := s.backend.ListBucket(Bucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		s.t.Fatal(err)
	}
	var keys []string
	for _, c := range l.Contents {
		keys = append(keys, c.Key)
	}
	sort.Strings(keys)
	return keys
}

// Object returns the bytes of key.
func (s *Server) Object(key string) ([]byte, error) {
	o, err := s.backend.GetObject(Bucket, key, nil)
	if err != nil {
		return nil, err
	}
	defer o.Contents.Close()
	if o.Size > 1<<30 {
		return nil, errors.New("s3fake: too large")
	}
	b := make([]byte, o.Size)
	n := 0
	for n < len(b) {
		k, err := o.Contents.Read(b[n:])
		n += k
		if err != nil {
			break
		}
	}
	return b[:n], nil
}
