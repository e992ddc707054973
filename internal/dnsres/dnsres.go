// Package dnsres is Petrel's DNS client: a small Resolver interface for the
// lookups mail needs (MX, A/AAAA, TXT, PTR) and an implementation over the
// standard library's pure-Go resolver that can be pointed at Mailu's
// RESOLVER_ADDRESS. It also tells permanent answers (the name or the record
// type does not exist) from temporary failures (SERVFAIL, timeouts,
// unreachable servers), which is what decides between a bounce and a retry.
// The look-ups behind an SMTP client's reverse DNS (LookupAddr, and
// LookupHost to forward-confirm) are cached for a few minutes (cache.go).
package dnsres

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Resolver is the DNS the mail code uses. The method set is that of
// *net.Resolver, so the standard resolver satisfies it as well; Net adds
// absolute names and RESOLVER_ADDRESS.
type Resolver interface {
	// LookupMX returns the MX records of name. A null MX (RFC 7505) comes
	// back as a record whose Host is ".".
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	// LookupIPAddr returns the A and AAAA addresses of host.
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	// LookupHost is LookupIPAddr as strings (forward-confirming a PTR name).
	LookupHost(ctx context.Context, host string) ([]string, error)
	// LookupTXT returns the TXT records of name, each one's strings joined.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupAddr returns the PTR names of an IP address.
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

var (
	_ Resolver = (*net.Resolver)(nil)
	_ Resolver = (*Net)(nil)
)

// Net is a Resolver over net.Resolver with PreferGo set, so that lookups
// behave the same with and without cgo and can use a given server.
type Net struct {
	r    *net.Resolver
	addr string // RESOLVER_ADDRESS, "" = resolv.conf (secure.go)
	ptr  *cache // LookupAddr answers by address
	host *cache // LookupHost answers by name
	txt  *cache // LookupTXT answers by name
	sec  *cache // LookupTLSA and MXSecure answers (secure.go)
}

// New returns a resolver that sends every query to addr (host:port, as
// RESOLVER_ADDRESS in Mailu, which runs its own resolver), or to the servers
// in /etc/resolv.conf when addr is "".
func New(addr string) *Net {
	r := &net.Resolver{PreferGo: true}
	if addr != "" {
		d := net.Dialer{Timeout: 10 * time.Second}
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			// network is "udp" or "tcp" (after a truncated answer); keep it.
			return d.DialContext(ctx, network, addr)
		}
	}
	return &Net{
		r:    r,
		addr: addr,
		ptr:  newCache(CacheSize, CacheTTL, CacheNegativeTTL, time.Now),
		host: newCache(CacheSize, CacheTTL, CacheNegativeTTL, time.Now),
		txt:  newCache(CacheSize, TXTCacheTTL, CacheNegativeTTL, time.Now),
		sec:  newCache(CacheSize, TXTCacheTTL, CacheNegativeTTL, time.Now),
	}
}

// absolute makes name fully qualified so that resolv.conf's search list is
// never applied to a mail domain (a relative lookup of "example.com" could
// otherwise end up at "example.com.corp.local").
func absolute(name string) string {
	if name == "" || strings.HasSuffix(name, ".") {
		return name
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return name // an IP literal, not a name
	}
	return name + "."
}

// trimDot removes the root label from a returned name, keeping "." itself
// (the null MX target).
func trimDot(s string) string {
	if len(s) > 1 {
		return strings.TrimSuffix(s, ".")
	}
	return s
}

// LookupMX returns name's MX records with host names without the final dot.
// When some records are malformed, the valid ones come back with an error
// (as net.Resolver does); callers may use them.
func (n *Net) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := n.r.LookupMX(ctx, absolute(name))
	for _, mx := range mxs {
		mx.Host = trimDot(mx.Host)
	}
	return mxs, err
}

// LookupIPAddr returns host's IPv4 and IPv6 addresses. An IP literal is
// returned as itself.
func (n *Net) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IPAddr{{IP: ip}}, nil
	}
	return n.r.LookupIPAddr(ctx, absolute(host))
}

// LookupHost returns host's addresses as strings. Answers and not-found
// results are cached (CacheTTL, CacheNegativeTTL).
func (n *Net) LookupHost(ctx context.Context, host string) ([]string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []string{host}, nil
	}
	key := hostKey(host)
	if e, ok := n.host.get(key); ok {
		return e.vals, e.err
	}
	addrs, err := n.r.LookupHost(ctx, absolute(host))
	n.host.put(key, addrs, err)
	return addrs, err
}

// LookupTXT returns name's TXT records. Answers and not-found results are
// cached (TXTCacheTTL, CacheNegativeTTL): every inbound message asks for
// its sender's SPF, DKIM key and DMARC records, and a busy sender's are
// the same for thousands of messages.
func (n *Net) LookupTXT(ctx context.Context, name string) ([]string, error) {
	key := hostKey(name)
	if e, ok := n.txt.get(key); ok {
		return e.vals, e.err
	}
	txts, err := n.r.LookupTXT(ctx, absolute(name))
	n.txt.put(key, txts, err)
	return txts, err
}

// LookupAddr returns the PTR names of addr without the final dot. Answers
// and not-found results are cached per address (CacheTTL,
// CacheNegativeTTL).
func (n *Net) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	key, cacheable := addrKey(addr)
	if cacheable {
		if e, ok := n.ptr.get(key); ok {
			return e.vals, e.err
		}
	}
	names, err := n.r.LookupAddr(ctx, addr)
	for i := range names {
		names[i] = trimDot(names[i])
	}
	if cacheable {
		n.ptr.put(key, names, err)
	}
	return names, err
}

// IsNotFound reports whether err is a DNS answer that the name does not
// exist (NXDOMAIN) or has no record of the asked type (NODATA). It is a
// permanent condition: asking again will not change it. (The standard
// resolver reports both as "no such host", so they are not told apart.)
func IsNotFound(err error) bool {
	de, ok := AsDNSError(err)
	return ok && de.IsNotFound
}

// AsDNSError is errors.As for a *net.DNSError, without its reflection and
// allocation when err is one itself, as the resolver's errors are.
func AsDNSError(err error) (*net.DNSError, bool) {
	if de, ok := err.(*net.DNSError); ok {
		return de, de != nil
	}
	var de *net.DNSError
	return de, errors.As(err, &de)
}

// IsTemporary reports whether err is a lookup failure that may go away:
// SERVFAIL, REFUSED, a timeout, an unreachable server, a cancelled context.
// Every error that is not IsNotFound counts as temporary, so that a broken
// resolver defers mail instead of bouncing it.
func IsTemporary(err error) bool {
	return err != nil && !IsNotFound(err)
}

// IsTimeout reports whether err is a DNS timeout.
func IsTimeout(err error) bool {
	de, ok := AsDNSError(err)
	return ok && de.IsTimeout
}
