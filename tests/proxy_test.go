package tests

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/proxyproto"
)

// proxyDial connects to addr as a load balancer would: the PROXY header
// (v1 or v2) for a client at src first.
func proxyDial(t *testing.T, addr, src string, v2 bool) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := proxyproto.Header{Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort("192.0.2.25:25")}
	var b []byte
	if v2 {
		b = proxyproto.AppendV2(nil, h)
	} else {
		b = proxyproto.AppendV1(nil, h)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// smtpSay sends a command (unless empty) and returns the last reply line.
func smtpSay(t *testing.T, r *bufio.Reader, c net.Conn, cmd string) string {
	t.Helper()
	if cmd != "" {
		if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", cmd, err)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimSpace(line)
		}
	}
}

// TestProxyProtocol: on the PROXY_PROTOCOL ports, the address in a
// trusted proxy's header is the client's (RELAYNETS decides by it, logs
// show it), for v1 and v2, on SMTP and on IMAP over TLS; a header from an
// untrusted address, or a trusted peer without one, is logged and closed.
func TestProxyProtocol(t *testing.T) {
	s := newServer(t, map[string]string{
		"PROXY_PROTOCOL": "25,993",
		"REAL_IP_FROM":   "127.0.0.1",
		"RELAYNETS":      "203.0.113.0/24",
	})
	s.start()

	for _, tc := range []struct {
		src   string
		v2    bool
		relay string // reply to RCPT for a foreign domain
	}{
		{"203.0.113.7:40001", false, "250"}, // in RELAYNETS
		{"203.0.113.8:40002", true, "250"},
		{"198.51.100.9:40003", false, "554"}, // not: relaying refused
		{"[2001:db8::9]:40004", true, "554"},
	} {
		c := proxyDial(t, s.addr[25], tc.src, tc.v2)
		r := bufio.NewReader(c)
		if got := smtpSay(t, r, c, ""); !strings.HasPrefix(got, "220") {
			t.Fatalf("%s: banner %q", tc.src, got)
		}
		smtpSay(t, r, c, "EHLO client.example")
		if got := smtpSay(t, r, c, "MAIL FROM:<someone@client.example>"); !strings.HasPrefix(got, "250") {
			t.Fatalf("%s: MAIL: %q", tc.src, got)
		}
		if got := smtpSay(t, r, c, "RCPT TO:<friend@elsewhere.example>"); !strings.HasPrefix(got, tc.relay) {
			t.Errorf("%s: RCPT to a foreign domain: %q, want %s (RELAYNETS by the proxied address)", tc.src, got, tc.relay)
		}
		smtpSay(t, r, c, "QUIT")
		if !s.waitLog("remote=" + netip.MustParseAddrPort(tc.src).String()) {
			t.Errorf("the log never shows the client %s", tc.src)
		}
	}

	// IMAP over implicit TLS, behind the proxy.
	c := proxyDial(t, s.addr[993], "203.0.113.44:50000", true)
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // the self-signed certificate
	greet, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || !strings.HasPrefix(greet, "* OK") {
		t.Fatalf("IMAP greeting through the proxy: %q, %v", greet, err)
	}
	tc.Close()
	if !s.waitLog("remote=203.0.113.44:50000") {
		t.Errorf("the IMAP log never shows the proxied client")
	}

	// A trusted proxy that sends no header: refused.
	plain, err := net.DialTimeout("tcp", s.addr[25], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _ = plain.Write([]byte("EHLO sneaky.example\r\n"))
	_ = plain.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := plain.Read(make([]byte, 64)); err == nil {
		t.Errorf("a connection without a PROXY header got %d bytes of answer", n)
	}
	// (start's own probe of port 25 is refused too, for its EOF.)
	if !s.waitLog("proxyproto: no PROXY header") {
		t.Errorf("the refusal is not logged:\n%s", s.logs())
	}
}

// TestProxyProtocolUntrusted: a PROXY header from outside REAL_IP_FROM is
// refused (logged and closed), so a client cannot choose its address.
func TestProxyProtocolUntrusted(t *testing.T) {
	s := newServer(t, map[string]string{"PROXY_PROTOCOL": "mail", "REAL_IP_FROM": "10.0.0.0/8"})
	s.start()
	c := proxyDial(t, s.addr[465], "203.0.113.7:1", false)
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Errorf("an untrusted PROXY header got %d bytes of answer", n)
	}
	// start's probe of port 25 is refused too: look for 465's line.
	if !s.waitLog(`not in REAL_IP_FROM" part=proxy port=465`) {
		t.Errorf("the refusal is not logged:\n%s", s.logs())
	}
}
