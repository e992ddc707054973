package app

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/store"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runRelayTLS builds the queue as serve does, with RELAYHOST pointing at a
// sink with a self-signed certificate and the given extra settings, queues
// one message and runs the worker until done says stop.
func runRelayTLS(t *testing.T, extra map[string]string, done func(p *parts, sink *sinktest.Sink) bool) (*lockedBuffer, *parts) {
	t.Helper()
	ctx := context.Background()
	certCfg, _ := sinktest.Cert(t, "127.0.0.1")
	sink := sinktest.Start(t, sinktest.Options{TLS: certCfg})
	env := map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())}
	for k, v := range extra {
		if v == "CAFILE" {
			f := filepath.Join(t.TempDir(), "relay-ca.pem")
			b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certCfg.Certificates[0].Leaf.Raw})
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			v = f
		}
		env[k] = v
	}
	logs := &lockedBuffer{}
	_, p := testPartsLogged(t, env, slog.New(slog.NewTextHandler(logs, nil)))
	body := []byte("From: alice@example.test\r\nSubject: relay tls\r\n\r\nbody\r\n")
	if err := p.store.CommitMessages(ctx, []*store.NewMessage{{ID: "rt1", Sender: "alice@example.test",
		ReceivedAt: time.Now(), Size: int64(len(body)), Body: body, Remote: []string{"bob@remote.example"}}}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- p.queue.Run(runCtx) }()
	waitFor(t, "the delivery attempt", func() bool { return done(p, sink) })
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	return logs, p
}

// By default the self-signed relay is not trusted: the queue entry keeps
// the message, and its last error and the log say how to fix it.
func TestRelayHostCertificateHint(t *testing.T) {
	var lastErr string
	logs, _ := runRelayTLS(t, nil, func(p *parts, _ *sinktest.Sink) bool {
		items, err := p.store.ListQueueEntries(context.Background())
		if err != nil || len(items) != 1 {
			return false
		}
		lastErr = items[0].LastError
		return lastErr != ""
	})
	for _, want := range []string{"certificate of RELAYHOST 127.0.0.1 not verified", "RELAYHOST_CA_FILE", "RELAYHOST_TLS_VERIFY=false"} {
		if !strings.Contains(lastErr, want) {
			t.Errorf("queue entry's last error %q lacks %q", lastErr, want)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestRelayHostCAFileSetting(t *testing.T) {
	logs, _ := runRelayTLS(t, map[string]string{"RELAYHOST_CA_FILE": "CAFILE"},
		func(_ *parts, s *sinktest.Sink) bool { return len(s.Messages()) == 1 })
	if !strings.Contains(logs.String(), "tls_policy=verify") {
		t.Errorf("log does not show the verified policy:\n%s", logs)
	}
}

// RELAYHOST_TLS_VERIFY=false delivers, and says at start what it means.
func TestRelayHostTLSVerifyOffSetting(t *testing.T) {
	logs, _ := runRelayTLS(t, map[string]string{"RELAYHOST_TLS_VERIFY": "false"},
		func(_ *parts, s *sinktest.Sink) bool { return len(s.Messages()) == 1 && s.Messages()[0].TLS })
	l := logs.String()
	if !strings.Contains(l, "level=WARN msg=\"RELAYHOST_TLS_VERIFY=false: the certificate of RELAYHOST is not verified") {
		t.Errorf("no start-up warning:\n%s", l)
	}
	if !strings.Contains(l, "tls_policy=encrypt-unverified") {
		t.Errorf("log does not show the unverified policy:\n%s", l)
	}
}
