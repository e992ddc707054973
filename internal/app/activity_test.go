package app

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestActivityWiring: a delivered message and an IMAP command each move
// the count the full-text indexer watches to yield to users.
func TestActivityWiring(t *testing.T) {
	ctx := context.Background()
	cfg, p := testParts(t, nil)
	addDomain(t, p)
	u := store.NewUser("reader", "example.test", 0, 80)
	if err := p.store.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}

	before := p.activity.Load()
	deliverRaw(t, p, "a1", "a@example.org", "From: <a@example.org>\r\nSubject: hello\r\n\r\nbody\r\n", "reader@example.test")
	if got := p.activity.Load() - before; got != 1 {
		t.Errorf("a delivery moved the activity count by %d, want 1", got)
	}

	var imap server
	for _, r := range roleServers(cfg, p) {
		if r.port == 143 {
			imap = r.build(nil)
		}
	}
	if imap == nil {
		t.Fatal("no IMAP role on port 143")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go imap.Serve(ln)
	defer imap.Shutdown(ctx)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting %q, %v", line, err)
	}
	before = p.activity.Load()
	c.Write([]byte("a1 NOOP\r\n"))
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "a1 OK") {
		t.Fatalf("NOOP: %q, %v", line, err)
	}
	if got := p.activity.Load() - before; got != 1 {
		t.Errorf("an IMAP command moved the activity count by %d, want 1", got)
	}
}
