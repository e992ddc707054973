package msgauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/mailaddr"
)

// Verification defaults.
const (
	// DefaultDNSTimeout is the DNS budget of one message: SPF, DKIM,
	// DMARC and iprev together. A look-up still running then is a
	// temperror, so a slow resolver never stalls the SMTP session.
	DefaultDNSTimeout = 10 * time.Second
	// DefaultMaxSignatures caps the DKIM signatures verified per message
	// (each costs a DNS query and a public-key operation; RFC 6376 6.1
	// lets a verifier limit them). The rest are ignored.
	DefaultMaxSignatures = 10
)

// Result words of RFC 8601 2.7 (and RFC 7208 8, RFC 7489 11.2).
const (
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail"
	Neutral   = "neutral"
	None      = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	// Hostname is the authserv-id (RFC 8601 2.5): the first HOSTNAMES entry.
	Hostname string
	// Resolver answers every look-up (RESOLVER_ADDRESS); required.
	Resolver dnsres.Resolver
	// DNSTimeout bounds all look-ups of one message; 0: DefaultDNSTimeout.
	DNSTimeout time.Duration
	// MaxSignatures caps DKIM verifications; 0: DefaultMaxSignatures.
	MaxSignatures int
	// Percent returns a number in [0, 100) for DMARC's pct sampling;
	// nil: math/rand/v2.
	Percent func() int
	// KeyCacheSize bounds the parsed DKIM keys kept (keycache.go); 0:
	// DefaultKeyCacheSize, negative: none kept.
	KeyCacheSize int
	// Now is the clock of the key cache; nil: time.Now.
	Now func() time.Time
}

// Verifier checks SPF, DKIM, DMARC and iprev of inbound messages. It is
// safe for concurrent use.
type Verifier struct {
	o    VerifierOptions
	keys *keyCache
	spf  *spfCache
}

// NewVerifier returns a Verifier.
func NewVerifier(o VerifierOptions) *Verifier {
	if o.DNSTimeout <= 0 {
		o.DNSTimeout = DefaultDNSTimeout
	}
	if o.MaxSignatures <= 0 {
		o.MaxSignatures = DefaultMaxSignatures
	}
	if o.Percent == nil {
		o.Percent = randPercent
	}
	if o.KeyCacheSize == 0 {
		o.KeyCacheSize = DefaultKeyCacheSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Verifier{o: o, keys: newKeyCache(o.KeyCacheSize, KeyCacheTTL, o.Now), spf: newSPFCache(o.Now)}
}

// Hostname is the authserv-id the Verifier writes.
func (v *Verifier) Hostname() string { return v.o.Hostname }

// Session is what the SMTP session knows about a message's origin.
type Session struct {
	RemoteIP netip.Addr
	Helo     string // the EHLO/HELO argument
	MailFrom string // normalised reverse-path; "" is the null sender
}

// Outcome is one check's result.
type Outcome struct {
	Result string // RFC 8601 result word
	Domain string // the identity checked (MAIL FROM or HELO domain, d=, From domain)
	Reason string // why, for the header comment and the log
}

// DKIMOutcome is one signature's result.
type DKIMOutcome struct {
	Outcome
	Selector   string
	Identifier string // i=
}

// DMARCOutcome is the DMARC evaluation.
type DMARCOutcome struct {
	Outcome
	// Policy is the policy the record asks for the From domain ("none",
	// "quarantine", "reject"; "" without a record), after sp= for a
	// subdomain. Applied is what the receiver should do once pct= has
	// been sampled: Policy, or one step gentler when the message fell
	// outside pct (RFC 7489 6.6.4). Both only matter when Result is fail.
	Policy  string
	Applied string
}

// Result is everything Verify found.
type Result struct {
	SPF      Outcome // MAIL FROM (HELO identity when the sender is null)
	SPFHelo  Outcome // HELO identity (Result "" when not checked)
	DKIM     []DKIMOutcome
	DMARC    DMARCOutcome
	IPRev    Outcome // Domain: the confirmed PTR name
	From     string  // RFC5322.From domain ("" when there is none usable)
	FromAll  []string
	Elapsed  time.Duration
	hostname string
	// fields are the header's when it was read whole (nil when it could
	// not be): Lacks answers from them.
	fields []field
}

// Lacks reports whether the message's header, read whole by Verify, has
// no field with one of f's names, so that a caller need not read the
// header again to know it (HeaderHas). False when the header could not
// be read whole, and when a field has one of the names, whatever f's
// Match would say of it.
func (r *Result) Lacks(f FieldFilter) bool {
	if r.fields == nil {
		return false
	}
	for _, fl := range r.fields {
		if f.named([]byte(fl.name)) {
			return false
		}
	}
	return true
}

// DKIMPassDomains are the d= of the signatures that verified.
func (r *Result) DKIMPassDomains() []string {
	var out []string
	for _, d := range r.DKIM {
		if d.Result == Pass {
			out = append(out, d.Domain)
		}
	}
	return out
}

// DKIMSummary is one word for the log: pass when any signature verified,
// else the first signature's result, or none.
func (r *Result) DKIMSummary() string {
	if len(r.DKIM) == 0 {
		return None
	}
	for _, d := range r.DKIM {
		if d.Result == Pass {
			return Pass
		}
	}
	return r.DKIM[0].Result
}

// Verify checks the message read from msg, which starts with its header.
// Look-up failures become temperror results; the error is only for a
// failure to read msg.
func (v *Verifier) Verify(ctx context.Context, s Session, msg io.Reader) (*Result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, v.o.DNSTimeout)
	defer cancel()
	res := dnsAdapter{r: v.o.Resolver}
	r := &Result{hostname: v.o.Hostname}

	// The checks run one after the other in the caller's goroutine: with
	// warm DNS caches they cost microseconds each, and a goroutine per
	// message cost more (its start, stack growth and scheduling) than the
	// latency it saved; a cold look-up waits on the resolver either way,
	// within the one DNS budget.
	r.SPF, r.SPFHelo = v.checkSPF(ctx, res, s)
	r.IPRev = checkIPRev(ctx, res, s.RemoteIP)

	br := readerPool.Get().(*bufio.Reader)
	br.Reset(msg)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	h, err := readHeader(br)
	switch {
	case errors.Is(err, ErrHeaderTooLarge), errors.Is(err, ErrBadHeader):
		// Nothing can be verified; the message is still the receiver's
		// to judge (DMARC permerror below).
		h = nil
		_, err = io.Copy(io.Discard, br)
	case err == nil:
		r.fields = h.fields
		r.FromAll, r.From = fromDomains(h)
		r.DKIM, err = v.checkDKIM(ctx, res, h, br)
	}
	if err != nil {
		return nil, fmt.Errorf("msgauth: read message: %w", err)
	}
	r.DMARC = v.checkDMARC(ctx, res, r, h != nil)
	r.Elapsed = time.Since(start)
	return r, nil
}

// checkSPF evaluates SPF (RFC 7208) for MAIL FROM and, separately, for the
// HELO identity (2.3). With a null sender the MAIL FROM check uses
// postmaster@HELO (2.4), which is then the same check.
func (v *Verifier) checkSPF(ctx context.Context, res dnsAdapter, s Session) (mailFrom, helo Outcome) {
	heloDomain := strings.TrimSuffix(s.Helo, ".")
	heloOK := heloDomain != "" && !strings.HasPrefix(heloDomain, "[") && strings.Contains(heloDomain, ".")
	if heloOK {
		if _, err := netip.ParseAddr(heloDomain); err == nil {
			heloOK = false
		}
	}
	run := func(sender, domain string) Outcome {
		key := spfKey(s.RemoteIP.Unmap().String(), heloDomain, sender)
		if o, ok := v.spf.get(key); ok {
			return o
		}
		ip := net.IP(s.RemoteIP.Unmap().AsSlice())
		r, err := spf.CheckHostWithSender(ip, heloDomain, sender,
			spf.WithContext(ctx), spf.WithResolver(res))
		o := Outcome{Result: string(r), Domain: domain}
		if err != nil && r != spf.Pass && r != spf.Fail && r != spf.SoftFail && r != spf.Neutral {
			o.Reason = err.Error()
		}
		if o.Result == "" {
			o.Result = PermError
		}
		if ctx.Err() == nil { // a result cut short by the deadline is not kept
			v.spf.put(key, o)
		}
		return o
	}
	if heloOK {
		helo = run("postmaster@"+heloDomain, heloDomain)
	}
	if s.MailFrom == "" {
		if !heloOK {
			return Outcome{Result: None, Reason: "null sender and no HELO domain"}, helo
		}
		return helo, helo
	}
	domain := s.MailFrom[strings.LastIndexByte(s.MailFrom, '@')+1:]
	return run(s.MailFrom, domain), helo
}

// checkIPRev is RFC 8601 3's iprev: the client's PTR names, one of which
// must resolve back to its address (forward-confirmed reverse DNS).
func checkIPRev(ctx context.Context, res dnsAdapter, ip netip.Addr) Outcome {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return Outcome{Result: PermError, Reason: "no client address"}
	}
	names, err := res.LookupAddr(ctx, ip.String())
	if err != nil {
		if dnsres.IsNotFound(err) {
			return Outcome{Result: Fail, Reason: "no PTR record"}
		}
		return Outcome{Result: TempError, Reason: "PTR look-up failed"}
	}
	temp := false
	for i, n := range names {
		if i == 10 {
			break // RFC 8601 3: a bound on the names tried
		}
		addrs, err := res.LookupIPAddr(ctx, n)
		if err != nil {
			temp = temp || !dnsres.IsNotFound(err)
			continue
		}
		for _, a := range addrs {
			if pa, ok := netip.AddrFromSlice(a.IP); ok && pa.Unmap() == ip {
				return Outcome{Result: Pass, Domain: strings.TrimSuffix(n, ".")}
			}
		}
	}
	if temp {
		return Outcome{Result: TempError, Reason: "forward look-up failed"}
	}
	return Outcome{Result: Fail, Reason: "no PTR name resolves back to the address"}
}

// fromDomains returns the domains of every address in every From field and
// the single From domain DMARC applies to ("" when there is not exactly
// one, RFC 7489 6.6.1).
func fromDomains(h *header) (all []string, one string) {
	for _, f := range h.fields {
		if !strings.EqualFold(f.name, "From") {
			continue
		}
		all = append(all, addressDomains(f.value)...)
	}
	if len(all) == 0 {
		return nil, ""
	}
	for _, d := range all[1:] {
		if d != all[0] {
			return all, ""
		}
	}
	if h.count("From") != 1 {
		return all, ""
	}
	return all, all[0]
}

// dnsAdapter is the resolver the libraries get: every failure that is not
// "no such name / no record" becomes a temporary *net.DNSError, so that
// blitiri spf, go-msgauth's dkim and dmarc (which ask net.Error.Temporary)
// all report temperror for a refused, unreachable or timed-out resolver.
type dnsAdapter struct{ r dnsres.Resolver }

func tempErr(name string, err error) error {
	if err == nil {
		return nil
	}
	if de, ok := dnsres.AsDNSError(err); ok && (de.IsNotFound || de.Temporary()) {
		return de // unwrapped: spf asserts the type
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true, IsTimeout: errors.Is(err, context.DeadlineExceeded)}
}

func (a dnsAdapter) LookupTXT(ctx context.Context, name string) ([]string, error) {
	v, err := a.r.LookupTXT(ctx, name)
	return v, tempErr(name, err)
}

func (a dnsAdapter) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	v, err := a.r.LookupMX(ctx, name)
	return v, tempErr(name, err)
}

// LookupIPAddr goes through LookupHost, which dnsres caches (SPF's a and
// mx mechanisms and iprev ask for the same names message after message).
func (a dnsAdapter) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	v, err := a.r.LookupHost(ctx, host)
	if err != nil {
		return nil, tempErr(host, err)
	}
	out := make([]net.IPAddr, 0, len(v))
	for _, s := range v {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, net.IPAddr{IP: ip.AsSlice(), Zone: ip.Zone()})
		}
	}
	return out, nil
}

func (a dnsAdapter) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	v, err := a.r.LookupAddr(ctx, addr)
	return v, tempErr(addr, err)
}

// normDomain lower-cases a domain and makes it an A-label; "" when invalid.
func normDomain(d string) string {
	n, err := mailaddr.NormalizeDomain(strings.TrimSuffix(d, "."))
	if err != nil {
		return ""
	}
	return n
}
