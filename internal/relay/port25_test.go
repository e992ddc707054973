package relay_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// With the default port, MX hosts are contacted on 25. Binding port 25
// needs root; 127.0.0.2 keeps clear of anything on 127.0.0.1:25.
func TestDefaultPort25(t *testing.T) {
	e := newEnv(t)
	s := fixedPortSink(t, "127.0.0.2", 25, sinktest.Options{})
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.2")
	c := e.client(func(o *relay.Options) { o.Port = 0 })
	mustDeliver(t, c, msg("bob@example.test"))
	if len(s.Messages()) != 1 {
		t.Errorf("port 25 sink got %d messages", len(s.Messages()))
	}
	if !strings.Contains(e.logs.String(), "addr=127.0.0.2:25") {
		t.Errorf("log does not show port 25:\n%s", e.logs.String())
	}
}

// Cancelling the context (shutdown) ends a delivery stuck on a silent
// server with a temporary error.
func TestCancelInterruptsSession(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // never greets
		}
	}()
	e.port = ln.Addr().(*net.TCPAddr).Port
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	c := e.client(func(o *relay.Options) { o.Timeouts.Command = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	_, err = c.Deliver(ctx, msg("bob@example.test"))
	de := asDE(t, err)
	if de.Permanent || !strings.Contains(de.Message, "interrupted") {
		t.Errorf("cancelled delivery: %+v; want a temporary 'delivery interrupted'", de)
	}
}

// Every attempt leaves one INFO line with the next hop, host, TLS and reply.
func TestAttemptLogLine(t *testing.T) {
	e := newEnv(t)
	e.sink("127.0.0.1", sinktest.Options{}, false)
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	mustDeliver(t, e.client(nil), msg("bob@example.test"))
	var info []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "level=INFO") {
			info = append(info, l)
		}
	}
	if len(info) != 1 {
		t.Fatalf("INFO lines %q; want exactly one", info)
	}
	for _, want := range []string{"msgid=T1", "nexthop=smtp:example.test", "host=mx.example.test", "accepted=1", `reply="250 `} {
		if !strings.Contains(info[0], want) {
			t.Errorf("INFO line lacks %s: %s", want, info[0])
		}
	}
}

// IPv6: an MX host with only an AAAA record, and a relay transport with a
// bracketed IPv6 literal.
func TestIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	e := newEnv(t)
	mx := e.sink("::1", sinktest.Options{}, false)
	direct := e.sink("::1", sinktest.Options{}, true)
	e.dns.Add(t, "six.test. MX 10 mx.six.test.", "mx.six.test. AAAA ::1")
	c := e.client(func(o *relay.Options) {
		o.Relays = relays{"literal.test": "[IPv6:::1]:" + strconv.Itoa(direct.Port())}
	})
	mustDeliver(t, c, msg("bob@six.test"))
	mustDeliver(t, c, msg("bob@literal.test"))
	if len(mx.Messages()) != 1 || len(direct.Messages()) != 1 {
		t.Errorf("AAAA MX got %d, [::1] transport got %d; want 1 each", len(mx.Messages()), len(direct.Messages()))
	}
}

// LocalAddr picks the source address of outgoing connections.
func TestLocalAddr(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{}, false)
	e.dns.Add(t, "example.test. MX 10 mx.example.test.", "mx.example.test. A 127.0.0.1")
	c := e.client(func(o *relay.Options) { o.LocalAddr = netip.MustParseAddr("127.0.0.5") })
	mustDeliver(t, c, msg("bob@example.test"))
	if m := s.Messages(); len(m) != 1 || !strings.HasPrefix(m[0].Remote, "127.0.0.5:") {
		t.Errorf("sink messages %+v; want one from 127.0.0.5", m)
	}
}
