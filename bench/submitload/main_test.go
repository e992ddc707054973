package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is a go-smtp backend that accepts AUTH PLAIN for one password and
// records what it received.
type sink struct {
	mu       sync.Mutex
	logins   int
	messages []received
}

type received struct {
	user, from, to string
	data           []byte
}

type session struct {
	s    *sink
	user string
	from string
	to   string
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if !strings.HasSuffix(user, "@example.test") || pass != "pw-"+strings.TrimSuffix(strings.TrimPrefix(user, "user"), "@example.test") {
			return errors.New("bad login")
		}
		ss.user = user
		ss.s.mu.Lock()
		ss.s.logins++
		ss.s.mu.Unlock()
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error { ss.to = to; return nil }

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, received{ss.user, ss.from, ss.to, b})
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

// startServer serves implicit TLS on a loopback port.
func startServer(t *testing.T, be *sink) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // the listener is TLS; go-smtp does not know
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func testConfig(mode, addr string) config {
	return config{Mode: mode, Addr: addr, Workers: 3, Total: 10, PerSess: 4, Size: 4096, Rcpt: "rcpt@sink.test",
		UserFmt: "user%d@example.test", PassFmt: "pw-%d", Users: 2, Helo: "client.test", Timeout: 10 * time.Second, MaxErrs: 5}
}

func TestMessages(t *testing.T) {
	be := &sink{}
	addr := startServer(t, be)
	c := testConfig("messages", addr)
	var errs bytes.Buffer
	res, err := run(context.Background(), c, &errs)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 10 || res.Errors != 0 {
		t.Fatalf("ok %d errors %d, want 10 and 0 (%s)", res.OK, res.Errors, errs.String())
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.messages) != 10 {
		t.Fatalf("server got %d messages, want 10", len(be.messages))
	}
	// 10 messages at 4 per session in 3 workers: at least 3 sessions
	if be.logins < 3 {
		t.Errorf("logins %d, want >= 3", be.logins)
	}
	ids := map[string]bool{}
	for _, m := range be.messages {
		if m.from != m.user || m.to != "rcpt@sink.test" {
			t.Errorf("envelope %s -> %s for login %s", m.from, m.to, m.user)
		}
		// go-smtp hands over the data with CRLF line ends and without the dot
		if d := len(m.data) - c.Size; d < -2 || d > 2 {
			t.Errorf("message of %d bytes, want about %d", len(m.data), c.Size)
		}
		if !bytes.HasPrefix(m.data, []byte("From: <"+m.user+">\r\n")) {
			t.Errorf("header starts %q", m.data[:40])
		}
		i := bytes.Index(m.data, []byte("Message-ID: <"))
		if i < 0 {
			t.Fatal("no Message-ID")
		}
		id := string(m.data[i : i+bytes.IndexByte(m.data[i:], '\n')])
		if ids[id] {
			t.Errorf("duplicate %s", id)
		}
		ids[id] = true
	}
	f := strings.Split(res.TSV(), "\t")
	if len(f) != 10 || f[0] != "RESULT" || f[1] != "messages" || f[3] != "10" || f[4] != "0" {
		t.Errorf("TSV %q", res.TSV())
	}
}

func TestHandshakes(t *testing.T) {
	be := &sink{}
	addr := startServer(t, be)
	res, err := run(context.Background(), testConfig("handshakes", addr), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 10 || res.Errors != 0 {
		t.Fatalf("ok %d errors %d, want 10 and 0", res.OK, res.Errors)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.logins != 10 || len(be.messages) != 0 {
		t.Errorf("logins %d messages %d, want 10 and 0", be.logins, len(be.messages))
	}
	if res.Percentile(50) <= 0 || res.Percentile(99) < res.Percentile(50) {
		t.Errorf("p50 %v p99 %v", res.Percentile(50), res.Percentile(99))
	}
}

func TestBadPasswordCountsErrors(t *testing.T) {
	be := &sink{}
	addr := startServer(t, be)
	c := testConfig("messages", addr)
	c.PassFmt = "wrong-%d"
	var errs bytes.Buffer
	res, err := run(context.Background(), c, &errs)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors != 10 {
		t.Fatalf("ok %d errors %d, want 0 and 10", res.OK, res.Errors)
	}
	if !strings.Contains(errs.String(), "AUTH PLAIN") {
		t.Errorf("stderr %q does not name AUTH", errs.String())
	}
}

func TestMakeBody(t *testing.T) {
	for _, n := range []int{100, 4000, 65000} {
		b := makeBody(n)
		if len(b) != n {
			t.Errorf("makeBody(%d) has %d bytes", n, len(b))
		}
		if !bytes.HasSuffix(b, []byte("\r\n")) || bytes.Contains(b, []byte("\n.")) {
			t.Errorf("makeBody(%d): bad line ends or a leading dot", n)
		}
	}
}
