package relay

import (
	"errors"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/config"
)

func TestParseTransport(t *testing.T) {
	const dom = "relayed.test"
	tests := []struct {
		in   string
		want string // nexthop.String(), or "" for an error
	}{
		// Mailu: empty = MX of the relay domain.
		{"", "smtp:relayed.test"},
		{"  ", "smtp:relayed.test"},
		{"mx:", "smtp:relayed.test"},
		{":2525", "smtp:relayed.test:2525"},
		// host[:port] and [host]:port connect directly (Mailu brackets them).
		{"smtp.example.com", "smtp:[smtp.example.com]"},
		{"SMTP.Example.COM:587", "smtp:[smtp.example.com]:587"},
		{"[smtp.example.com]", "smtp:[smtp.example.com]"},
		{"[smtp.example.com]:465", "smtp:[smtp.example.com]:465"},
		{"192.0.2.1:25", "smtp:[192.0.2.1]:25"},
		{"[2001:db8::1]:2525", "smtp:[2001:db8::1]:2525"},
		{"[ipv6:2001:db8::1]", "smtp:[2001:db8::1]"},
		{"2001:db8::1", "smtp:[2001:db8::1]"},
		{"bücher.example", "smtp:[xn--bcher-kva.example]"},
		// mx:host looks up host's MX.
		{"mx:mail.example.net", "smtp:mail.example.net"},
		{"mx:mail.example.net:2525", "smtp:mail.example.net:2525"},
		{"mx:192.0.2.9", "smtp:[192.0.2.9]"},
		// lmtp:host:port, port 24 by default.
		{"lmtp:127.0.0.1:2525", "lmtp:[127.0.0.1]:2525"},
		{"lmtp:lists.example.org", "lmtp:[lists.example.org]:24"},
		{"lmtp:[::1]:24", "lmtp:[::1]:24"},
		// Errors (Mailu answers 400).
		{"mx:[smtp.example.com]", ""},
		{"[smtp.example.com", ""},
		{"[smtp.example.com]587", ""},
		{"smtp.example.com:", ""},
		{"smtp.example.com:smtp", ""},
		{"smtp.example.com:70000", ""},
		{"lmtp:", ""},
		{"lmtp::24", ""},
		{"bad_host!.example", ""},
		{"[fe80::1%eth0]:25", ""},
	}
	for _, tt := range tests {
		h, err := parseTransport(dom, tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, errTransport) {
				t.Errorf("parseTransport(%q) = %v, %v; want an errTransport", tt.in, h, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseTransport(%q): %v", tt.in, err)
			continue
		}
		if got := h.String(); got != tt.want {
			t.Errorf("parseTransport(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if h.kind != hopTransport {
			t.Errorf("parseTransport(%q) kind = %v", tt.in, h.kind)
		}
	}
}

func TestRelayHostHop(t *testing.T) {
	h := relayHostHop(config.RelayTarget{Host: "smtp.example.net", Port: 587})
	if h.String() != "smtp:[smtp.example.net]:587" || h.kind != hopRelayHost {
		t.Errorf("relayHostHop = %s (%v)", h, h.kind)
	}
	h = relayHostHop(config.RelayTarget{Host: "example.net", Port: 25, MX: true})
	if h.String() != "smtp:example.net:25" {
		t.Errorf("relayHostHop MX = %s", h)
	}
}

func TestLiteralHop(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"[192.0.2.1]", "smtp:[192.0.2.1]"},
		{"[IPv6:2001:db8::1]", "smtp:[2001:db8::1]"},
		{"[example.com]", ""},
		{"example.com", ""},
		{"[]", ""},
	}
	for _, tt := range tests {
		h, ok := literalHop(tt.in)
		got := ""
		if ok {
			got = h.String()
		}
		if got != tt.want {
			t.Errorf("literalHop(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseReply(t *testing.T) {
	se := parseReply(454, "4.7.0 TLS not available")
	if se.Code != 454 || se.EnhancedCode[0] != 4 || se.EnhancedCode[2] != 0 || se.Message != "TLS not available" {
		t.Errorf("parseReply = %+v", se)
	}
	se = parseReply(454, "TLS not available now")
	if se.Message != "TLS not available now" || se.EnhancedCode[0] != 0 {
		t.Errorf("parseReply without enhanced code = %+v", se)
	}
	de := fromReply(parseReply(550, "5.1.1 no\nsuch   user"), "mx.test")
	if !de.Permanent || de.Enhanced != "5.1.1" || de.Message != "no such user" || de.Remote != "mx.test" {
		t.Errorf("fromReply = %+v", de)
	}
}

func FuzzParseTransport(f *testing.F) {
	for _, s := range []string{"", "mx:", "[h]:1", "lmtp:h:24", "mx:h:2", "h:25", "[ipv6:::1]:25", "2001:db8::1", ":x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseTransport("relayed.test", s)
		if err != nil {
			return
		}
		if h.host == "" || strings.ContainsAny(h.host, "[] \r\n") {
			t.Fatalf("parseTransport(%q) host = %q", s, h.host)
		}
		if h.port < 0 || h.port > 65535 || (h.lmtp && h.port == 0) {
			t.Fatalf("parseTransport(%q) port = %d", s, h.port)
		}
		if h.mx && isIP(h.host) {
			t.Fatalf("parseTransport(%q): MX lookup of an address", s)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"4.7.0 TLS not available", "no code", "5.1.1", "1.2.3.4 x", "9999.1.1 x", ""} {
		f.Add(454, s)
	}
	f.Fuzz(func(t *testing.T, code int, msg string) {
		se := parseReply(code, msg)
		if se.Code != code || !strings.Contains(msg, se.Message) {
			t.Fatalf("parseReply(%d, %q) = %+v", code, msg, se)
		}
		de := fromReply(se, "h")
		if de.Permanent != (code >= 500 && code <= 599) || strings.ContainsAny(de.Message, "\r\n") {
			t.Fatalf("fromReply(%+v) = %+v", se, de)
		}
	})
}
