// Package relay is Petrel's outbound SMTP client. It implements
// queue.Transport: for each recipient domain it picks the next hop (a relay
// domain's transport, else RELAYHOST, else the domain's MX), tries the
// hosts and addresses in order, and reports per-recipient results as
// *queue.DeliveryError values that the queue turns into retries and DSNs.
//
// TLS policy. To MX hosts, internal/tlspolicy decides (Options.TLSPolicy):
// DANE when the host's TLSA records are DNSSEC-authenticated, else the
// domain's MTA-STS policy, else OUTBOUND_TLS_LEVEL (Mailu's default dane:
// STARTTLS whenever offered, certificate not verified). A policy that
// requires TLS defers (4.7.x) when the host offers no STARTTLS or its
// certificate fails, with the reason in the queue entry and the log, and
// the next MX is tried. To relay transports, STARTTLS is used whenever
// offered and the certificate is not verified (Postfix's "may"). To
// RELAYHOST the certificate is verified (RootCAs, i.e. the system pool
// plus RELAYHOST_CA_FILE), unless RELAYHOST_TLS_VERIFY=false; a failed
// verification defers with a hint naming both settings. TLS is required
// when RELAYUSER is set, so that the password never travels in clear. Port 465 means implicit TLS for RELAYHOST
// and relay transports (Mailu issue #2658), other ports STARTTLS.
//
// BODY=8BITMIME is declared whenever the server offers it; a server without
// 8BITMIME gets the message as it is (no 7-bit downgrade). An MX list that
// leads back to this server (one of HOSTNAMES) defers with 4.4.6 instead of
// Postfix's 5.4.6 bounce (see loopError).
//
// Sessions are reused (Postfix's connection cache, cache.go): after a
// transaction the connection waits up to 2 s for the next message to the
// same server, address, name and TLS/AUTH policy alike, and carries at
// most 100 messages in 300 s. A cached session is checked with NOOP
// before use; one that died is replaced by a new connection without
// counting against the message.
package relay

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// Relays finds relay domains (Mailu: Relay). GetRelay returns an error
// matching store.ErrNotFound when name is not a relay domain.
type Relays interface {
	GetRelay(ctx context.Context, name string) (*store.Relay, error)
}

// Timeouts bound each step of a delivery. Zero fields take the defaults.
type Timeouts struct {
	Connect   time.Duration // TCP connect plus TLS handshake; default 30s
	Command   time.Duration // greeting and each command's reply; default 5m (RFC 5321 4.5.3.2)
	DataBlock time.Duration // each write of the body; default 3m (RFC 5321 4.5.3.2.5)
	DataEnd   time.Duration // reply to the final dot; default 10m (RFC 5321 4.5.3.2.6)
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Command, 5*time.Minute)
	def(&t.DataBlock, 3*time.Minute)
	def(&t.DataEnd, 10*time.Minute)
	return t
}

// Options configure a Client. Resolver is required.
type Options struct {
	// Hostname is the EHLO name: the first of HOSTNAMES.
	Hostname string
	// LocalNames are all of HOSTNAMES: an MX host among them is this
	// server (RFC 5321 5.1). Hostname is always included.
	LocalNames []string
	Resolver   dnsres.Resolver

	// RelayHost is RELAYHOST parsed (config.Config.Relay); Host "" = none.
	RelayHost     config.RelayTarget
	RelayUser     string // RELAYUSER
	RelayPassword string // RELAYPASSWORD, never logged
	// Relays finds relay domains; nil = none.
	Relays Relays

	// Port is the SMTP port of MX hosts and of transports without a port;
	// default 25 (tests point it at a sink).
	Port int
	// RootCAs verify RELAYHOST's certificate; nil = the system pool
	// (RELAYHOST_CA_FILE adds to it).
	RootCAs *x509.CertPool
	// RelayHostNoVerify is RELAYHOST_TLS_VERIFY=false: RELAYHOST gets
	// TLS without certificate verification (Mailu's behaviour).
	RelayHostNoVerify bool
	// MaxAddresses caps the addresses tried in one delivery; default 5
	// (Postfix smtp_mx_address_limit).
	MaxAddresses int
	// MaxSessions caps the SMTP transactions in one delivery, when
	// recipients deferred by one MX are tried at the next; default 2
	// (Postfix smtp_mx_session_limit).
	MaxSessions int
	Timeouts    Timeouts
	Logger      *slog.Logger
	// LocalAddr is the source address of outgoing connections (used for
	// destinations of the same address family); zero = the system's choice.
	LocalAddr netip.Addr
	// TLSPolicy decides DANE, MTA-STS and OUTBOUND_TLS_LEVEL for MX
	// deliveries; nil = opportunistic STARTTLS, unverified.
	TLSPolicy *tlspolicy.Checker
	// Cache keeps sessions open between messages to the same server; the
	// zero value is Postfix's behaviour (see CacheOptions).
	Cache CacheOptions
}

// Client delivers messages to other servers. It is safe for concurrent use.
type Client struct {
	hostname   string
	localNames []string
	res        dnsres.Resolver
	relayHost  config.RelayTarget
	user, pass string
	relays     Relays
	port       int
	rootCAs    *x509.CertPool
	noVerify   bool
	maxAddrs   int
	maxSess    int
	timeouts   Timeouts
	log        *slog.Logger
	localAddr  netip.Addr
	cache      *connCache
	tlsp       *tlspolicy.Checker
}

var (
	_ queue.Transport  = (*Client)(nil)
	_ queue.NextHopper = (*Client)(nil)
)

// New returns a Client for opts.
func New(opts Options) *Client {
	c := &Client{
		hostname:  strings.ToLower(strings.TrimSuffix(opts.Hostname, ".")),
		res:       opts.Resolver,
		relayHost: opts.RelayHost,
		user:      opts.RelayUser,
		pass:      opts.RelayPassword,
		relays:    opts.Relays,
		port:      opts.Port,
		rootCAs:   opts.RootCAs,
		noVerify:  opts.RelayHostNoVerify,
		maxAddrs:  opts.MaxAddresses,
		maxSess:   opts.MaxSessions,
		timeouts:  opts.Timeouts.withDefaults(),
		log:       opts.Logger,
		localAddr: opts.LocalAddr,
		cache:     newConnCache(opts.Cache),
		tlsp:      opts.TLSPolicy,
	}
	if c.hostname == "" {
		c.hostname = "localhost"
	}
	for _, n := range append([]string{c.hostname}, opts.LocalNames...) {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n != "" && n != "localhost" && !slices.Contains(c.localNames, n) {
			c.localNames = append(c.localNames, n)
		}
	}
	if c.res == nil {
		c.res = dnsres.New("")
	}
	if c.port <= 0 {
		c.port = 25
	}
	if c.maxAddrs <= 0 {
		c.maxAddrs = 5
	}
	if c.maxSess <= 0 {
		c.maxSess = 2
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// group is the recipients of a message that share a next hop.
type group struct {
	hop   nexthop
	rcpts []string
}

// Deliver sends m to its recipients. It returns one result per recipient in
// the order of m.Recipients (accepted ones with the accepting host and its
// reply); when every recipient failed for the same
// reason before any transaction (no MX reachable, DNS failure, MAIL FROM
// refused), it returns that *queue.DeliveryError instead.
func (c *Client) Deliver(ctx context.Context, m *queue.Message) ([]queue.RecipientResult, error) {
	if len(m.Recipients) == 0 {
		return nil, nil
	}
	results := make(map[string]error, len(m.Recipients))
	var groups []*group
	byKey := map[string]*group{}
	for _, rcpt := range m.Recipients {
		if _, seen := results[rcpt]; seen {
			continue
		}
		hop, de := c.route(ctx, rcpt)
		if de != nil {
			results[rcpt] = de
			continue
		}
		results[rcpt] = nil
		g := byKey[hop.key()]
		if g == nil {
			g = &group{hop: hop}
			byKey[hop.key()] = g
			groups = append(groups, g)
		}
		g.rcpts = append(g.rcpts, rcpt)
	}

	accepted := map[string]accept{}
	for _, g := range groups {
		res, de := c.deliverGroup(ctx, m, g, accepted)
		for _, r := range g.rcpts {
			if de != nil {
				results[r] = de
			} else {
				results[r] = res[r]
			}
		}
	}
	// One error shared by every recipient is returned as such.
	if shared := results[m.Recipients[0]]; shared != nil {
		same := true
		for _, r := range m.Recipients {
			if results[r] != shared {
				same = false
				break
			}
		}
		if same {
			return nil, shared
		}
	}
	out := make([]queue.RecipientResult, 0, len(m.Recipients))
	for _, rcpt := range m.Recipients {
		rr := queue.RecipientResult{Recipient: rcpt, Err: results[rcpt]}
		if rr.Err == nil {
			rr.Remote, rr.Reply, rr.NoDSN = accepted[rcpt].remote, accepted[rcpt].reply, accepted[rcpt].noDSN
		}
		out = append(out, rr)
	}
	return out, nil
}

// NextHop names where mail for domain goes, in Postfix's notation
// (smtp:[relay.example]:587, smtp:example.com for the MX): the queue
// limits concurrency per next hop. A domain whose route fails is its own.
func (c *Client) NextHop(ctx context.Context, domain string) string {
	hop, de := c.route(ctx, "postmaster@"+domain)
	if de != nil {
		return domain
	}
	return hop.String()
}

// CloseIdleConnections ends the sessions kept open for reuse (at
// shutdown). The Client remains usable.
func (c *Client) CloseIdleConnections() { c.cache.closeIdle() }

// route picks the next hop for one recipient: the relay domain's transport,
// else RELAYHOST, else the domain's MX (Postfix: transport_maps before
// relayhost).
func (c *Client) route(ctx context.Context, rcpt string) (nexthop, *queue.DeliveryError) {
	_, domain := mailaddr.Split(rcpt)
	if hop, ok := literalHop(domain); ok {
		return hop, nil
	}
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return nexthop{}, &queue.DeliveryError{Permanent: true, Enhanced: "5.1.2",
			Message: "bad recipient domain " + quote(domain) + ": " + err.Error()}
	}
	if c.relays != nil {
		r, err := c.relays.GetRelay(ctx, d)
		switch {
		case err == nil:
			hop, perr := parseTransport(d, r.SMTP)
			if perr != nil {
				// Mailu answers 400 and Postfix defers: an admin can fix it.
				return nexthop{}, &queue.DeliveryError{Enhanced: "4.3.5", Message: perr.Error()}
			}
			return hop, nil
		case !errors.Is(err, store.ErrNotFound):
			return nexthop{}, &queue.DeliveryError{Enhanced: "4.3.0",
				Message: "relay domain lookup for " + d + " failed: " + err.Error()}
		}
	}
	if c.relayHost.Host != "" {
		return relayHostHop(c.relayHost), nil
	}
	return nexthop{kind: hopMX, host: d, mx: true}, nil
}

func quote(s string) string { return `"` + s + `"` }

// TLSPolicy returns the checker given in Options (nil if none).
func (c *Client) TLSPolicy() *tlspolicy.Checker { return c.tlsp }
