package dnsres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TLSA is one TLSA record (RFC 6698 2.1): what a server's certificate must
// match for DANE (RFC 7672).
type TLSA struct {
	Usage        uint8 // 2 DANE-TA, 3 DANE-EE; 0 and 1 (PKIX-*) are unusable for SMTP
	Selector     uint8 // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8 // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte
}

func (t TLSA) String() string {
	return fmt.Sprintf("%d %d %d %x", t.Usage, t.Selector, t.MatchingType, t.Data)
}

// SecureResolver answers the look-ups whose DNSSEC status matters: DANE
// (RFC 7672) trusts a TLSA record only when the validating resolver said
// the answer was authenticated (the AD bit, RFC 4035 3.2.3).
type SecureResolver interface {
	// LookupTLSA returns the TLSA records of name (such as
	// "_25._tcp.mx.example.com") and whether the answer, records or their
	// absence, was authenticated. No records is an IsNotFound error.
	LookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error)
	// MXSecure reports whether the MX answer for domain (records or their
	// absence) was authenticated.
	MXSecure(ctx context.Context, domain string) (bool, error)
}

var _ SecureResolver = (*Net)(nil)

// secureTimeout bounds one query of a secure look-up.
const secureTimeout = 10 * time.Second

// servers returns where DNSSEC-aware queries go and whether their AD bit
// can be trusted: RESOLVER_ADDRESS is the admin's validating resolver
// (Mailu requires one); from resolv.conf only a loopback server or
// "options trust-ad" is trusted, as glibc does, since the AD bit from a
// resolver across the network can be forged on the way.
func (n *Net) servers() ([]string, bool) {
	if n.addr != "" {
		return []string{n.addr}, true
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cc.Servers) == 0 {
		return []string{"127.0.0.1:53"}, true
	}
	trustAD := false
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			trustAD = trustAD || (len(f) > 1 && f[0] == "options" && slices.Contains(f[1:], "trust-ad"))
		}
	}
	var out []string
	allLoopback := true
	for _, s := range cc.Servers {
		if a, err := netip.ParseAddr(s); err != nil || !a.IsLoopback() {
			allLoopback = false
		}
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, trustAD || allLoopback
}

// secureQuery asks for name/qtype with the DO bit and AD requested (RFC
// 6840 5.7) and returns the answer. NXDOMAIN and NODATA come back as a
// not-found *net.DNSError along with the message (its AD bit still says
// whether the absence is authenticated).
func (n *Net) secureQuery(ctx context.Context, name string, qtype uint16) (*dns.Msg, bool, error) {
	servers, trusted := n.servers()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	q.AuthenticatedData = true
	q.SetEdns0(1232, true)
	var lastErr error
	for _, srv := range servers {
		qctx, cancel := context.WithTimeout(ctx, secureTimeout)
		c := &dns.Client{Net: "udp"}
		r, _, err := c.ExchangeContext(qctx, q, srv)
		if err == nil && r.Truncated {
			c.Net = "tcp"
			r, _, err = c.ExchangeContext(qctx, q, srv)
		}
		cancel()
		if err != nil {
			lastErr = &net.DNSError{Err: err.Error(), Name: name, Server: srv, IsTimeout: isTimeoutErr(err), IsTemporary: true}
			continue
		}
		secure := trusted && r.AuthenticatedData
		switch r.Rcode {
		case dns.RcodeSuccess:
			return r, secure, nil
		case dns.RcodeNameError:
			return r, secure, &net.DNSError{Err: "no such host", Name: name, Server: srv, IsNotFound: true}
		default:
			lastErr = &net.DNSError{Err: "server answered " + dns.RcodeToString[r.Rcode], Name: name, Server: srv, IsTemporary: true}
		}
	}
	if lastErr == nil {
		lastErr = &net.DNSError{Err: "no DNS server", Name: name, IsTemporary: true}
	}
	return nil, false, lastErr
}

func isTimeoutErr(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// LookupTLSA implements SecureResolver. Records of other types (a CNAME
// chain's links) are skipped; a malformed answer is an error.
// Answers are cached for TXTCacheTTL (CacheNegativeTTL for none), since
// every delivery to an MX asks.
func (n *Net) LookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error) {
	key := "tlsa " + hostKey(name)
	if e, ok := n.sec.get(key); ok && len(e.vals) > 0 {
		return decodeTLSA(e.vals[1:]), e.vals[0] == "secure", e.err
	}
	recs, secure, err := n.lookupTLSA(ctx, name)
	n.sec.put(key, append([]string{secureWord(secure)}, encodeTLSA(recs)...), err)
	return recs, secure, err
}

func secureWord(secure bool) string {
	if secure {
		return "secure"
	}
	return "insecure"
}

func encodeTLSA(recs []TLSA) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string([]byte{r.Usage, r.Selector, r.MatchingType}) + string(r.Data)
	}
	return out
}

func decodeTLSA(vals []string) []TLSA {
	var out []TLSA
	for _, v := range vals {
		if len(v) >= 3 {
			out = append(out, TLSA{Usage: v[0], Selector: v[1], MatchingType: v[2], Data: []byte(v[3:])})
		}
	}
	return out
}

func (n *Net) lookupTLSA(ctx context.Context, name string) ([]TLSA, bool, error) {
	r, secure, err := n.secureQuery(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, secure, err
	}
	var out []TLSA
	for _, rr := range r.Answer {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		data, derr := decodeHex(t.Certificate)
		if derr != nil {
			return nil, secure, fmt.Errorf("TLSA record of %s: %w", name, derr)
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	if len(out) == 0 {
		return nil, secure, &net.DNSError{Err: "no TLSA records", Name: name, IsNotFound: true}
	}
	return out, secure, nil
}

// MXSecure implements SecureResolver.
func (n *Net) MXSecure(ctx context.Context, domain string) (bool, error) {
	key := "mx " + hostKey(domain)
	if e, ok := n.sec.get(key); ok && len(e.vals) == 1 {
		return e.vals[0] == "secure", nil
	}
	_, secure, err := n.secureQuery(ctx, domain, dns.TypeMX)
	if err != nil && !IsNotFound(err) {
		return false, err
	}
	n.sec.put(key, []string{secureWord(secure)}, nil)
	return secure, nil
}

func decodeHex(s string) ([]byte, error) {
	s = strings.ToLower(s)
	if len(s)%2 != 0 {
		return nil, errors.New("odd length hex data")
	}
	out := make([]byte, len(s)/2)
	for i := 0; i < len(out); i++ {
		hi, lo := unhex(s[2*i]), unhex(s[2*i+1])
		if hi < 0 || lo < 0 {
			return nil, errors.New("bad hex data")
		}
		out[i] = byte(hi<<4 | lo)
	}
	return out, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
