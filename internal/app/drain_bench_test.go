package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// BenchmarkQueueDrain measures the outbound path end to end: DKIM-signed
// 4 KiB messages already in the queue are delivered by the real relay
// client over loopback SMTP to a sink (RELAYHOST), one recipient each,
// spread over 10 destination domains. Reported: messages/s.
func BenchmarkQueueDrain(b *testing.B) {
	dir := b.TempDir()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Path: filepath.Join(dir, "main.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateDomain(ctx, &store.Domain{Name: "example.test", MaxUsers: -1, MaxAliases: -1}); err != nil {
		b.Fatal(err)
	}
	keys := msgauth.NewKeys(filepath.Join(dir, "dkim"), "dkim")
	if err := keys.Generate(context.Background(), "example.test"); err != nil {
		b.Fatal(err)
	}
	key, err := keys.Load(context.Background(), "example.test")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := msgauth.NewSigner("example.test", "dkim", key)
	if err != nil {
		b.Fatal(err)
	}
	raw := "From: alice@example.test\r\nTo: friend@remote.example\r\nSubject: drain\r\nMessage-ID: <x@example.test>\r\n\r\n" +
		string(bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 64))
	var signed bytes.Buffer
	if err := signer.Sign(ctx, &signed, bytes.NewReader([]byte(raw))); err != nil {
		b.Fatal(err)
	}
	body := signed.Bytes()

	sink := sinktest.Start(b, sinktest.Options{})
	tr := relay.New(relay.Options{
		Hostname:  "mail.example.test",
		RelayHost: config.RelayTarget{Host: "127.0.0.1", Port: sink.Port()},
		Relays:    st,
		Logger:    slog.New(slog.DiscardHandler),
	})
	w, err := queue.New(queue.Options{
		Store: st, Transport: tr, Bouncer: failBouncer{}, Hostname: "mail.example.test",
		PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}

	msgs := make([]*store.NewMessage, b.N)
	for i := range msgs {
		msgs[i] = &store.NewMessage{
			ID: fmt.Sprintf("m%d", i), Sender: "alice@example.test", ReceivedAt: time.Now(),
			Size: int64(len(body)), Body: body,
			Remote: []string{fmt.Sprintf("friend%d@dest%d.example", i, i%10)},
		}
	}
	for i := 0; i < len(msgs); i += 256 {
		if err := st.CommitMessages(ctx, msgs[i:min(i+256, len(msgs))]); err != nil {
			b.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- w.Run(runCtx) }()
	for len(sink.Messages()) < b.N {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

type failBouncer struct{}

func (failBouncer) Bounce(context.Context, string, []byte) error {
	return errors.New("benchmark: no bounce expected")
}
