package pop3d

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// memStore is a fixed maildrop in memory; ExpungeMessages only counts, so
// every fuzz run sees the same messages.
type memStore struct {
	bodies   []string
	expunges atomic.Int64
}

func (m *memStore) EnsureMailboxes(context.Context, string, []store.MailboxSpec) error { return nil }

func (m *memStore) ListMailboxes(_ context.Context, user string) ([]store.Mailbox, error) {
	return []store.Mailbox{{ID: 1, UserEmail: user, Name: "INBOX", UIDValidity: 1700000000, UIDNext: uint32(len(m.bodies) + 1)}}, nil
}

func (m *memStore) ListMessages(context.Context, string, string) ([]store.MessageInfo, error) {
	var out []store.MessageInfo
	for i, b := range m.bodies {
		out = append(out, store.MessageInfo{MailboxID: 1, UID: uint32(i + 1), Size: int64(len(b)), BodyID: int64(i + 1)})
	}
	return out, nil
}

func (m *memStore) OpenBody(_ context.Context, id int64) (io.ReadCloser, error) {
	if id < 1 || int(id) > len(m.bodies) {
		return nil, fmt.Errorf("body %d: %w", id, store.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(m.bodies[id-1])), nil
}

func (m *memStore) ExpungeMessages(context.Context, string, string, []uint32) error {
	m.expunges.Add(1)
	return nil
}

// panicCounter counts log records about recovered panics.
type panicCounter struct{ n *atomic.Int64 }

func (h panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.n.Add(1)
	}
	return nil
}
func (h panicCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicCounter) WithGroup(string) slog.Handler      { return h }

// FuzzSession feeds arbitrary bytes as a whole client dialogue to a real
// server on a loopback socket: port 110 in plaintext (TLS_FLAVOR=notls)
// when the first byte is even, port 110 with STLS when odd. The server
// must greet, never panic, and always finish: answer and close once the
// client has sent everything and shut its side.
func FuzzSession(f *testing.F) {
	login := "USER " + alice + "\r\nPASS " + alicePass + "\r\n"
	seeds := []string{
		"\x00" + login + "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 2\r\nNOOP\r\nQUIT\r\n",
		"\x00CAPA\r\nAUTH\r\nAUTH PLAIN " + plainIR("", alice, alicePass) + "\r\nLIST 1\r\nUIDL 2\r\nRETR 3\r\nQUIT\r\n",
		"\x00AUTH LOGIN\r\n" + b64(alice) + "\r\n" + b64(alicePass) + "\r\nRETR 2\r\nRETR 9\r\nDELE 0\r\nTOP 1 -1\r\n",
		"\x00AUTH PLAIN\r\n*\r\nAUTH LOGIN =\r\n%%%\r\nAUTH PLAIN =\r\nUSER\r\nPASS\r\nAPOP x y\r\n",
		"\x01CAPA\r\nUSER " + alice + "\r\nSTLS\r\n\x16\x03\x01\x00\x05hello",
		"\x01STLS\r\nCAPA\r\n",
		"\x00" + login + "LIST 99999999999999999999\r\nTOP 1 99999999999999999999\r\nRETR +1\r\nlist 1\r\n",
		"\x00" + strings.Repeat("x", 5000) + "\r\nNOOP\r\n",
		"\x00" + login + "DELE 1\r\nDELE 1\r\nQUIT extra\r\nSTAT\r\n",
		"\x00" + login + "RETR 1",
		"\x00",
		// issue 17: unterminated over-long lines are answered and closed
		"\x00" + strings.Repeat("x", 5000),
		"\x00AUTH PLAIN\r\n" + strings.Repeat("QUFB", 1500),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	var panics atomic.Int64
	cert := newTestCert(f)
	startSrv := func(tlsOn bool) (string, func()) {
		a := newFakeAuth()
		o := Options{
			Hostname:      testHost,
			NoTLS:         !tlsOn,
			Auth:          a,
			Store:         &memStore{bodies: []string{msg1, "Subject: dots\r\n\r\n.\r\n..x\r\n", "no header\nbare\n.end"}},
			Logger:        slog.New(panicCounter{&panics}),
			MaxConns:      -1,
			MaxConnsPerIP: -1,
			IdleTimeout:   5 * time.Second,
			WriteTimeout:  5 * time.Second,
			MaxLineLength: 1024,
		}
		if tlsOn {
			o.TLSConfig = cert.Server
		}
		s := New(o)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		go s.Serve(ln)
		return ln.Addr().String(), func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		}
	}
	plainAddr, stop1 := startSrv(false)
	defer stop1()
	tlsAddr, stop2 := startSrv(true)
	defer stop2()

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		addr := plainAddr
		if in[0]%2 == 1 {
			addr = tlsAddr
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			_, _ = conn.Write(in[1:])
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(conn)
		if err != nil && !isReset(err) {
			t.Fatalf("server did not close the session: %v (read %d bytes)", err, len(out))
		}
		if !bytes.HasPrefix(out, []byte("+OK POP3 "+testHost+" ready\r\n")) {
			t.Fatalf("no greeting: %q", out)
		}
		if n := panics.Load(); n > 0 {
			t.Fatalf("%d panics in sessions", n)
		}
	})
}
