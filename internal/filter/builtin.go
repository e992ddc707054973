package filter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Greylisting defaults: Mailu's rspamd greylist module groups clients by
// IPv4 /19 and IPv6 /64; postgrey's delay (5 minutes) and max-age (35
// days) bound the wait and how long a passed triplet stays allowed.
const (
	DefaultGreylistDelay  = 5 * time.Minute
	DefaultGreylistWindow = 35 * 24 * time.Hour
	GreylistIPv4Bits      = 19
	GreylistIPv6Bits      = 64
	// DefaultDNSBLTimeout bounds all DNSBL queries of one message.
	DefaultDNSBLTimeout = 3 * time.Second
	// DNSBLScore is added per zone that lists the client (rspamd's
	// RBL_SPAMHAUS_* scores are 4 to 7).
	DNSBLScore = 4.0
)

// HostResolver looks up A records for DNSBL queries. *dnsres.Client
// implements it.
type HostResolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// BuiltinOptions configures the built-in score (used without rspamd).
type BuiltinOptions struct {
	Store store.FilterStore // greylisting and the classifiers; nil: neither
	// Greylisting is GREYLISTING; Delay and Window default to
	// DefaultGreylistDelay and DefaultGreylistWindow.
	Greylisting bool
	Delay       time.Duration
	Window      time.Duration
	// DNSBLZones is DNSBL_ZONES (e.g. zen.spamhaus.org), queried through
	// Resolver within DNSBLTimeout.
	DNSBLZones   []string
	Resolver     HostResolver
	DNSBLTimeout time.Duration
	// Classifier turns on the users' own Bayesian classifiers.
	Classifier bool
	// Totals caches the classifiers' totals; nil: a new one over Store.
	// The Learner forgets a user in it after training them (Totals()).
	Totals *TotalsCache
	Logger *slog.Logger
	Now    func() time.Time
}

// Builtin is the score from what Petrel knows itself: the SPF, DKIM,
// DMARC and iprev results, DNSBL listings and each user's classifier,
// plus greylisting.
type Builtin struct {
	opts      BuiltinOptions
	log       *slog.Logger
	lastSweep atomic.Int64 // unix seconds of the last greylist expiry
}

// NewBuiltin returns the built-in checks.
func NewBuiltin(opts BuiltinOptions) *Builtin {
	if opts.Delay <= 0 {
		opts.Delay = DefaultGreylistDelay
	}
	if opts.Window <= 0 {
		opts.Window = DefaultGreylistWindow
	}
	if opts.DNSBLTimeout <= 0 {
		opts.DNSBLTimeout = DefaultDNSBLTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Totals == nil && opts.Store != nil {
		opts.Totals = NewTotalsCache(opts.Store, opts.Now)
	}
	return &Builtin{opts: opts, log: log}
}

// Totals is the classifier totals cache, for LearnerOptions.Totals.
func (b *Builtin) Totals() *TotalsCache { return b.opts.Totals }

// AuthScore scores msgauth's results on rspamd's scale, with weights
// close to rspamd's symbols (R_SPF_FAIL, R_DKIM_ALLOW, DMARC_POLICY_*,
// RDNS_NONE/HFILTER_HOSTNAME_UNKNOWN, AUTH_NA), a little stronger since
// nothing else scores the message. The reasons name what counted.
func AuthScore(a AuthSummary) (float64, []string) {
	var score float64
	var why []string
	add := func(s float64, name string) {
		score += s
		why = append(why, name)
	}
	switch a.SPF {
	case "pass":
		add(-0.5, "SPF_PASS")
	case "fail":
		add(3, "SPF_FAIL")
	case "softfail":
		add(1.5, "SPF_SOFTFAIL")
	case "neutral":
		add(0.5, "SPF_NEUTRAL")
	case "permerror":
		add(1, "SPF_PERMERROR")
	case "temperror":
		add(0.5, "SPF_TEMPERROR")
	}
	aligned := false
	for _, d := range a.DKIMPassDomains {
		if a.FromDomain != "" && (strings.EqualFold(d, a.FromDomain) || strings.HasSuffix(strings.ToLower(a.FromDomain), "."+strings.ToLower(d))) {
			aligned = true
		}
	}
	switch {
	case aligned:
		add(-1, "DKIM_ALIGNED")
	case len(a.DKIMPassDomains) > 0:
		add(-0.5, "DKIM_PASS")
	}
	switch a.DMARC {
	case "pass":
		add(-1, "DMARC_PASS")
	case "fail":
		switch a.DMARCPolicy {
		case "reject":
			add(4, "DMARC_FAIL_REJECT")
		case "quarantine":
			add(3.5, "DMARC_FAIL_QUARANTINE")
		default:
			add(2, "DMARC_FAIL")
		}
	case "temperror", "permerror":
		add(0.5, "DMARC_ERROR")
	}
	if (a.SPF == "" || a.SPF == "none") && len(a.DKIMPassDomains) == 0 && (a.DMARC == "" || a.DMARC == "none") {
		add(1, "AUTH_NA")
	}
	switch a.IPRev {
	case "fail", "permerror":
		add(2.5, "IPREV_FAIL")
	case "temperror":
		add(0.5, "IPREV_TEMPERROR")
	}
	return score, why
}

// authPassed: the sender is who it says (SPF pass, or DMARC pass, which
// needs an aligned SPF or DKIM pass).
func authPassed(a AuthSummary) bool {
	return a.SPF == "pass" || a.DMARC == "pass"
}

func (b *Builtin) check(ctx context.Context, m *Message) (Verdict, error) {
	score, why := AuthScore(m.Auth)
	if m.Trusted {
		why = append(why, "RELAYNETS")
	} else if hits := b.dnsbl(ctx, m.RemoteIP); len(hits) > 0 {
		score += DNSBLScore * float64(len(hits))
		for _, z := range hits {
			why = append(why, "DNSBL:"+z)
		}
	}
	reason := "builtin " + strings.Join(why, ",")
	if score >= RejectScore {
		v := rejectSpam("")
		v.Score, v.Scored, v.Reason = score, true, reason
		return v, nil
	}
	// Greylisting: everyone but authenticated senders with a good score.
	if b.opts.Greylisting && b.opts.Store != nil && !m.Trusted && !(authPassed(m.Auth) && score < GreylistScore) {
		wait, err := b.greylist(ctx, m)
		if err != nil {
			// A database problem is a temporary failure anyway.
			v := tempFail("")
			v.Reason = "greylist: " + err.Error()
			return v, nil
		}
		if wait {
			v := tempFail("Greylisted, please try again later")
			v.Score, v.Scored, v.Reason = score, true, reason+" greylisted"
			return v, nil
		}
	}
	v := Verdict{Action: Accept, Score: score, Scored: true, Reason: reason}
	if b.opts.Classifier && b.opts.Store != nil {
		us, err := b.classify(ctx, m)
		if err != nil {
			// The classifier is an opinion; without it the base
			// score stands.
			b.log.Warn("classifier unavailable", "msgid", m.ID, "err", err)
		}
		if len(us) > 0 {
			v.UserScores = make(map[string]float64, len(us))
			for u, s := range us {
				v.UserScores[u] = score + s
			}
		}
	}
	// Headers carry the base score; a user's classifier is private to
	// that user and decides their Junk filing only.
	v.AddHeaders = spamHeaders(score, score >= AddHeaderScore)
	v.RemoveHeaders = append([]string(nil), ownSpamHeaders...)
	return v, nil
}

// greylistNet is the client's network: IPv4 /19, IPv6 /64 (Mailu's
// rspamd greylist ipv4_mask/ipv6_mask).
func greylistNet(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := GreylistIPv6Bits
	if ip.Is4() {
		bits = GreylistIPv4Bits
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

func greylistKey(network, sender, rcpt string) string {
	h := sha256.Sum256([]byte(network + "\x00" + strings.ToLower(sender) + "\x00" + strings.ToLower(rcpt)))
	return hex.EncodeToString(h[:16])
}

// greylist reports whether the message must wait. Every recipient's
// triplet must have passed; a first attempt records the triplets, a retry
// after the delay passes them all (the message as a whole is either
// accepted or deferred at the end of DATA).
func (b *Builtin) greylist(ctx context.Context, m *Message) (bool, error) {
	now := b.opts.Now()
	b.sweep(ctx, now)
	network := greylistNet(m.RemoteIP)
	keys := make([]string, 0, len(m.Rcpts))
	for _, r := range m.Rcpts {
		keys = append(keys, greylistKey(network, m.MailFrom, r))
	}
	got, err := b.opts.Store.GreylistGet(ctx, keys)
	if err != nil {
		return false, err
	}
	wait := false
	var put []store.GreylistEntry
	for _, k := range keys {
		e, ok := got[k]
		switch {
		case !ok || now.Sub(e.LastSeen) > b.opts.Window:
			// New, or expired and not yet swept.
			wait = true
			put = append(put, store.GreylistEntry{Key: k, FirstSeen: now, LastSeen: now})
		case e.Passed:
			// Refresh at most hourly: a busy sender must not cost
			// a write per message.
			if now.Sub(e.LastSeen) > time.Hour {
				e.LastSeen = now
				put = append(put, e)
			}
		case now.Sub(e.FirstSeen) >= b.opts.Delay:
			e.Passed, e.LastSeen = true, now
			put = append(put, e)
		default:
			wait = true // retried too early: still 451
		}
	}
	// Triplets that passed stay passed even when another one makes the
	// message wait; entries retried too early are not touched, so
	// retrying sooner does not restart their clock.
	if err := b.opts.Store.GreylistPut(ctx, put); err != nil {
		return false, err
	}
	return wait, nil
}

// sweep deletes expired triplets at most once an hour, in the background.
func (b *Builtin) sweep(ctx context.Context, now time.Time) {
	last := b.lastSweep.Load()
	if now.Unix()-last < 3600 || !b.lastSweep.CompareAndSwap(last, now.Unix()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		n, err := b.opts.Store.GreylistExpire(ctx, now.Add(-b.opts.Window))
		if err != nil {
			b.log.Warn("greylist expiry failed", "err", err)
			return
		}
		if n > 0 {
			b.log.Debug("greylist expired", "entries", n)
		}
	}()
}

// dnsbl returns the zones that list ip (A record under the reversed
// address, RFC 5782 2.1), querying all zones at once within the
// deadline. Errors and timeouts count as not listed.
func (b *Builtin) dnsbl(ctx context.Context, ip netip.Addr) []string {
	if len(b.opts.DNSBLZones) == 0 || b.opts.Resolver == nil || !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() {
		return nil
	}
	rev := reverseName(ip)
	ctx, cancel := context.WithTimeout(ctx, b.opts.DNSBLTimeout)
	defer cancel()
	var mu sync.Mutex
	var hits []string
	var wg sync.WaitGroup
	for _, z := range b.opts.DNSBLZones {
		wg.Add(1)
		go func(z string) {
			defer wg.Done()
			addrs, err := b.opts.Resolver.LookupHost(ctx, rev+"."+z)
			if err != nil {
				var de *net.DNSError
				if !errors.As(err, &de) || !de.IsNotFound {
					b.log.Debug("DNSBL query failed", "zone", z, "err", err)
				}
				return
			}
			for _, a := range addrs {
				// RFC 5782 2.1: listings are 127.0.0.0/8; anything
				// else (a wildcarding resolver) is not a listing.
				if p, err := netip.ParseAddr(a); err == nil && p.Is4() && p.As4()[0] == 127 {
					mu.Lock()
					hits = append(hits, z)
					mu.Unlock()
					return
				}
			}
		}(z)
	}
	wg.Wait()
	return hits
}

// reverseName is the DNSBL query label for ip: reversed octets (IPv4) or
// nibbles (IPv6), RFC 5782 2.1 and 2.4.
func reverseName(ip netip.Addr) string {
	if ip.Is4() {
		a := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d", a[3], a[2], a[1], a[0])
	}
	a := ip.As16()
	const hexd = "0123456789abcdef"
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		sb.WriteByte(hexd[a[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hexd[a[i]>>4])
		if i > 0 {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}
