package relay

import (
	"cmp"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/queue"
)

// mxHost is one candidate host of a next hop, in the order to try.
type mxHost struct {
	name string // host name, or an IP address for literals
	pref int    // MX preference; 0 for implicit MX and direct hosts
}

// hosts returns the hosts to try for h, best first.
//
// RFC 5321 5.1: the MX records sorted by preference, equal preferences in
// random order; no MX records at all means the domain itself is the only
// host (implicit MX, preference 0). RFC 7505: a single MX with the root
// "." as its host (null MX) means the domain accepts no mail.
func (c *Client) hosts(ctx context.Context, h nexthop) ([]mxHost, *queue.DeliveryError) {
	if !h.mx || isIP(h.host) {
		if c.isLocalName(h.host) && !h.lmtp {
			return nil, loopError(h.host)
		}
		return []mxHost{{name: h.host}}, nil
	}
	mxs, err := c.res.LookupMX(ctx, h.host)
	if err != nil && len(mxs) == 0 {
		if !dnsres.IsNotFound(err) {
			return nil, dnsError(h, h.host, "MX", err)
		}
		// No MX records (NODATA) or no such domain (NXDOMAIN): the
		// standard resolver reports both alike, so the address lookup of
		// the implicit MX decides (a missing domain fails there too).
		return []mxHost{{name: h.host}}, nil
	}
	// When some records were malformed, the valid ones are still used.
	var hosts []mxHost
	null := false
	for _, mx := range mxs {
		name := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if name == "" {
			null = true // RFC 7505 2: the root name as the exchange
			continue
		}
		hosts = append(hosts, mxHost{name: name, pref: int(mx.Pref)})
	}
	if len(hosts) == 0 {
		if null {
			return nil, &queue.DeliveryError{Permanent: true, Enhanced: "5.1.10",
				Message: "domain " + h.host + " does not accept mail (null MX, RFC 7505)"}
		}
		return []mxHost{{name: h.host}}, nil
	}
	// Sort by preference and shuffle ties (RFC 5321 5.1 "randomize").
	rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	slices.SortStableFunc(hosts, func(a, b mxHost) int { return cmp.Compare(a.pref, b.pref) })

	// RFC 5321 5.1: if we are one of the MX hosts (a backup MX for a relay
	// domain), only hosts preferred over us may receive the mail.
	for i, mx := range hosts {
		if c.isLocalName(mx.name) {
			keep := hosts[:i]
			for len(keep) > 0 && keep[len(keep)-1].pref >= mx.pref {
				keep = keep[:len(keep)-1]
			}
			if len(keep) == 0 {
				return nil, loopError(h.host)
			}
			return keep, nil
		}
	}
	return hosts, nil
}

// addrs looks up the addresses of one host. IP literals need no lookup.
func (c *Client) addrs(ctx context.Context, h nexthop, host string) ([]netip.Addr, *queue.DeliveryError) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := c.res.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, dnsError(h, host, "A/AAAA", err)
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.IP); ok && ip.Zone == "" {
			out = append(out, a.Unmap())
		}
	}
	if len(out) == 0 {
		return nil, dnsError(h, host, "A/AAAA", &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true})
	}
	return out, nil
}

// isLocalName reports whether host is one of our HOSTNAMES.
func (c *Client) isLocalName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return slices.Contains(c.localNames, host)
}

// loopError: the next hop is this server. Postfix answers 5.4.6 and bounces
// at once; Petrel defers (4.4.6) instead, because the usual cause is a
// setting the admin is about to fix (a relay domain whose MX points here,
// a domain removed too early) and the queue lifetime bounces it anyway.
func loopError(host string) *queue.DeliveryError {
	return &queue.DeliveryError{Enhanced: "4.4.6",
		Message: "mail for " + host + " loops back to myself"}
}

// dnsError maps a failed lookup. A name that does not exist is permanent
// for a recipient's domain (5.1.2, RFC 3463 "bad destination system
// address"), but temporary for a next hop an admin configured (RELAYHOST, a
// relay transport): a typo in a setting should defer mail, not bounce it.
func dnsError(h nexthop, name, rrtype string, err error) *queue.DeliveryError {
	if dnsres.IsNotFound(err) {
		switch {
		case h.kind != hopMX:
			return &queue.DeliveryError{Enhanced: "4.4.4",
				Message: h.kind.String() + " " + name + " has no " + rrtype + " records"}
		case name == h.host:
			return &queue.DeliveryError{Permanent: true, Enhanced: "5.1.2",
				Message: "no such domain: " + name + " has no MX or A/AAAA records"}
		default:
			// RFC 3463 X.4.4: unable to route (the MX host does not exist).
			return &queue.DeliveryError{Permanent: true, Enhanced: "5.4.4",
				Message: "MX host " + name + " of " + h.host + " has no " + rrtype + " records"}
		}
	}
	// RFC 3463 X.4.3: directory (DNS) server failure.
	return &queue.DeliveryError{Enhanced: "4.4.3",
		Message: "DNS lookup of " + name + " " + rrtype + " failed: " + err.Error()}
}
