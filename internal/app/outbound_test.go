package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/store"
)

// TestOutboundConcurrencyPerNextHop builds the queue as serve does, with
// RELAYHOST, and queues mail to two recipient domains: the deliveries in
// progress at the smarthost never exceed the per-destination limit, since
// both domains share one next hop (Postfix keys
// default_destination_concurrency_limit on the nexthop), and the sessions
// are reused (fewer connections than messages).
func TestOutboundConcurrencyPerNextHop(t *testing.T) {
	ctx := context.Background()
	hold := make(chan struct{})
	sink := sinktest.Start(t, sinktest.Options{Hold: hold})
	_, p := testParts(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	addDomain(t, p)

	const perDomain = 30
	body := []byte("From: alice@example.test\r\nSubject: hop\r\n\r\nbody\r\n")
	var msgs []*store.NewMessage
	for i := range 2 * perDomain {
		msgs = append(msgs, &store.NewMessage{
			ID: fmt.Sprintf("m%d", i), Sender: "alice@example.test", ReceivedAt: time.Now(),
			Size: int64(len(body)), Body: body,
			Remote: []string{fmt.Sprintf("u%d@%c.example", i, 'a'+i%2)},
		})
	}
	if err := p.store.CommitMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.queue.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	const limit = 20 // queue.DefaultMaxPerDestination: the app sets none
	waitFor(t, "deliveries to pile up at the smarthost", func() bool { return sink.MaxActive() >= limit })
	time.Sleep(100 * time.Millisecond) // give a wrong worker time to start more
	if n := sink.MaxActive(); n != limit {
		t.Fatalf("%d deliveries at once through RELAYHOST for two domains, want %d", n, limit)
	}
	close(hold)
	waitFor(t, "every message at the smarthost", func() bool { return len(sink.Messages()) == 2*perDomain })
	if n := sink.Conns(); n > limit {
		t.Errorf("%d connections for %d messages with at most %d at once: sessions were not reused", n, 2*perDomain, limit)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
