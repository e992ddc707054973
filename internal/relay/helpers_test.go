package relay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/store"
)

const body = "From: <alice@petrel.test>\r\nTo: <bob@example.test>\r\nSubject: hello\r\n\r\nHello, world.\r\n"

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t    *testing.T
	dns  *dnstest.Server
	logs *syncBuffer
	port int // the port MX hosts listen on in this test
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, dns: dnstest.New(t), logs: &syncBuffer{}}
}

// client builds a relay client; tweak adjusts the options.
func (e *env) client(tweak func(*relay.Options)) *relay.Client {
	o := relay.Options{
		Hostname:   "mail.petrel.test",
		LocalNames: []string{"mail.petrel.test", "mx.petrel.test"},
		Resolver:   e.dns.Resolver(),
		Port:       e.port,
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Timeouts:   relay.Timeouts{Connect: 5 * time.Second, Command: 20 * time.Second, DataEnd: 20 * time.Second},
	}
	if tweak != nil {
		tweak(&o)
	}
	return relay.New(o)
}

// sink starts a sink on ip. The first sink of a test picks a random port
// that all MX sinks of the test then share (the client dials every MX on
// one port); sinks for explicit next hops pass any=true for a fresh port.
func (e *env) sink(ip string, o sinktest.Options, any bool) *sinktest.Sink {
	e.t.Helper()
	port := 0
	if !any {
		port = e.port
	}
	o.Addr = net.JoinHostPort(ip, strconv.Itoa(port))
	s := sinktest.Start(e.t, o)
	if !any && e.port == 0 {
		e.port = s.Port()
	}
	return s
}

func msg(rcpts ...string) *queue.Message {
	return &queue.Message{
		ID:         "T1",
		Sender:     "alice@petrel.test",
		Recipients: rcpts,
		Size:       int64(len(body)),
		Body:       func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}
}

func deliver(t *testing.T, c *relay.Client, m *queue.Message) ([]queue.RecipientResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.Deliver(ctx, m)
}

// mustDeliver expects every recipient to be accepted.
func mustDeliver(t *testing.T, c *relay.Client, m *queue.Message) {
	t.Helper()
	res, err := deliver(t, c, m)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if len(res) != len(m.Recipients) {
		t.Fatalf("Deliver returned %d results for %d recipients", len(res), len(m.Recipients))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("recipient %s: %v", r.Recipient, r.Err)
		}
	}
}

// wholesale expects one DeliveryError for the whole message.
func wholesale(t *testing.T, c *relay.Client, m *queue.Message) *queue.DeliveryError {
	t.Helper()
	res, err := deliver(t, c, m)
	if err == nil {
		t.Fatalf("Deliver succeeded with %+v, want an error", res)
	}
	var de *queue.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("Deliver error %T %v, want *queue.DeliveryError", err, err)
	}
	return de
}

func checkErr(t *testing.T, what string, de *queue.DeliveryError, permanent bool, code int, enhanced string) {
	t.Helper()
	if de == nil {
		t.Fatalf("%s: no error", what)
	}
	if de.Permanent != permanent || de.Code != code || de.Enhanced != enhanced {
		t.Errorf("%s: got permanent=%v code=%d enhanced=%q (%s); want permanent=%v code=%d enhanced=%q",
			what, de.Permanent, de.Code, de.Enhanced, de.Message, permanent, code, enhanced)
	}
}

func asDE(t *testing.T, err error) *queue.DeliveryError {
	t.Helper()
	var de *queue.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("error %T %v is not a *queue.DeliveryError", err, err)
	}
	return de
}

// relays is a map-backed relay domain table.
type relays map[string]string

func (r relays) GetRelay(_ context.Context, name string) (*store.Relay, error) {
	smtp, ok := r[name]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &store.Relay{Name: name, SMTP: smtp}, nil
}
