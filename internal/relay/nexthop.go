package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/mailaddr"
)

// hopKind says who chose a next hop, which decides the TLS and lookup policy.
type hopKind int

const (
	// hopMX: the recipient domain's own MX (the Internet default).
	hopMX hopKind = iota
	// hopTransport: a relay domain's transport (Mailu: Relay.smtp).
	hopTransport
	// hopRelayHost: RELAYHOST, the smarthost for all other mail.
	hopRelayHost
)

func (k hopKind) String() string {
	switch k {
	case hopTransport:
		return "transport"
	case hopRelayHost:
		return "relayhost"
	}
	return "mx"
}

// nexthop is where the mail for one destination goes.
type nexthop struct {
	kind hopKind
	host string // domain name (IDNA) or IP address, no brackets
	port int    // 0 = the client's default port (25)
	mx   bool   // look up host's MX records (else host's A/AAAA directly)
	lmtp bool   // speak LMTP (RFC 2033), as Postfix's lmtp: transport
}

// key groups recipients that can share one connection.
func (h nexthop) key() string {
	return fmt.Sprintf("%s|%s|%d|%t|%t", h.kind, h.host, h.port, h.mx, h.lmtp)
}

// String is the next hop in Postfix's notation, for logs: smtp:[host]:port,
// smtp:host (MX lookup) or lmtp:host:port.
func (h nexthop) String() string {
	proto := "smtp"
	if h.lmtp {
		proto = "lmtp"
	}
	host := h.host
	if !h.mx {
		host = "[" + host + "]"
	}
	if h.port != 0 {
		host += ":" + strconv.Itoa(h.port)
	}
	return proto + ":" + host
}

// lmtpDefaultPort is Postfix's default for lmtp:host without a port (the
// "lmtp" service, RFC 2033 asks for a port other than 25).
const lmtpDefaultPort = 24

var errTransport = errors.New("invalid relay transport")

// parseTransport reads a relay domain's transport in Mailu's syntax
// (Mailu: internal/views/postfix.py postfix_transport):
//
//	""                 the MX of the relay domain itself
//	"host", "host:port", "[host]", "[host]:port"
//	                   host directly, without an MX lookup (Mailu brackets
//	                   every host that has no mx: prefix)
//	"mx:host[:port]"   the MX of host
//	"mx:" or ":port"   the MX of the relay domain (on that port)
//	"lmtp:host[:port]", "lmtp:[host]:port"
//	                   LMTP to host (port 24 when not given)
//
// IPv6 addresses go in brackets; a bare IPv6 address without a port is
// accepted too (Mailu would split it at its last colon).
func parseTransport(domain, transport string) (nexthop, error) {
	target := strings.ToLower(strings.TrimSpace(transport))
	h := nexthop{kind: hopTransport}
	switch {
	case strings.HasPrefix(target, "mx:"):
		target, h.mx = target[3:], true
	case strings.HasPrefix(target, "lmtp:"):
		target, h.lmtp = target[5:], true
	}
	var host, port string
	switch {
	case strings.HasPrefix(target, "["):
		end := strings.IndexByte(target, ']')
		if h.mx || end < 0 {
			return nexthop{}, fmt.Errorf("%w %q: brackets need a closing ] and no mx: prefix", errTransport, transport)
		}
		host = target[1:end]
		rest := target[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return nexthop{}, fmt.Errorf("%w %q: expected :port after ]", errTransport, transport)
			}
			port = rest[1:]
		}
		if len(host) > 5 && host[:5] == "ipv6:" {
			host = host[5:]
		}
	case isIP(target):
		host = target
	default:
		host = target
		if i := strings.LastIndexByte(target, ':'); i >= 0 {
			host, port = target[:i], target[i+1:]
		}
	}
	if host == "" {
		if h.lmtp {
			return nexthop{}, fmt.Errorf("%w %q: lmtp: needs a host", errTransport, transport)
		}
		host, h.mx = domain, true
	}
	if port != "" || strings.HasSuffix(target, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nexthop{}, fmt.Errorf("%w %q: %q is not a port number", errTransport, transport, port)
		}
		h.port = n
	}
	if h.lmtp && h.port == 0 {
		h.port = lmtpDefaultPort
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nexthop{}, fmt.Errorf("%w %q: zoned IPv6 address", errTransport, transport)
		}
		// An address has no MX records; Mailu brackets IPv6 hosts as well.
		h.host, h.mx = ip.String(), false
		return h, nil
	}
	d, err := mailaddr.NormalizeDomain(host)
	if err != nil {
		return nexthop{}, fmt.Errorf("%w %q: %w", errTransport, transport, err)
	}
	h.host = d
	return h, nil
}

// relayHostHop turns the parsed RELAYHOST into a next hop.
func relayHostHop(t config.RelayTarget) nexthop {
	return nexthop{kind: hopRelayHost, host: t.Host, port: t.Port, mx: t.MX}
}

// literalHop is the next hop for a recipient domain that is an address
// literal, user@[192.0.2.1] or user@[IPv6:2001:db8::1] (RFC 5321 4.1.3).
func literalHop(domain string) (nexthop, bool) {
	if len(domain) < 3 || domain[0] != '[' || domain[len(domain)-1] != ']' {
		return nexthop{}, false
	}
	s := domain[1 : len(domain)-1]
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return nexthop{}, false
	}
	return nexthop{kind: hopMX, host: ip.String()}, true
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
