package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
)

// StoreLimits is the LoginLimiter for several nodes sharing one database
// (PostgreSQL): the same three limits, exemptions and proven networks as
// MemoryLimits, kept as store.RateLimits rows so that failed logins spread
// over N nodes meet one limit, not N.
//
// Exactness under concurrency: Admit records its slot first and then
// counts, so two logins racing on two nodes each see the other's slot; at
// the edge of a limit both may be refused, never both admitted over it. A
// slot lives PendingTTL, so a node that dies mid-login frees it then.
type StoreLimits struct {
	st    store.RateLimits
	r     LimitRates
	prune ratelimit.PruneGate // expired rows go every 10 minutes
}

// PendingTTL bounds a login slot (the hash check takes well under this).
const PendingTTL = 2 * time.Minute

// NewStoreLimits returns limits kept in st.
func NewStoreLimits(st store.RateLimits, r LimitRates) *StoreLimits {
	if r.KnownTTL <= 0 {
		r.KnownTTL = KnownNetworkTTL
	}
	return &StoreLimits{st: st, r: r, prune: ratelimit.PruneGate{Every: 10 * time.Minute}}
}

// Row keys; the prefixes keep the kinds apart in one table. Parts are
// quoted: a client-sent username may hold a NUL or invalid UTF-8, which
// PostgreSQL text refuses, and quoting keeps a pair unambiguous.
func q(s string) string               { return strconv.Quote(s) }
func netKey(n string) string          { return "auth-net:" + q(n) }
func acctKey(a string) string         { return "auth-acct:" + q(a) }
func anKey(a, n string) string        { return "auth-an:" + q(a) + q(n) }
func exemptKey(a, addr string) string { return "auth-exempt:" + q(a) + q(addr) }
func knownKey(a, n string) string     { return "auth-known:" + q(a) + q(n) }
func pendKey(k string) string         { return "pend:" + k }

type storeTicket struct {
	id      string
	netSlot bool
}

func newTicket() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// overWith reports whether key's counted members plus the slots held by
// others (own = whether one of the pending ones is ours) reach rate.
// busy says the counted members alone are under rate: only slots in
// flight make it over.
func (l *StoreLimits) overWith(ctx context.Context, rate ratelimit.Rate, key string, own bool) (over, busy bool, err error) {
	if !rate.Enabled() {
		return false, false, nil
	}
	n, err := l.st.RateCount(ctx, key)
	if err != nil {
		return false, false, err
	}
	p, err := l.st.RateCount(ctx, pendKey(key))
	if err != nil {
		return false, false, err
	}
	if own {
		p--
	}
	return n+p >= rate.Count, n < rate.Count, nil
}

// Admit implements LoginLimiter.
func (l *StoreLimits) Admit(ctx context.Context, k LimitKey) (Admission, error) {
	if l.prune.Due(time.Now()) {
		l.st.PruneRates(ctx) //nolint:errcheck // retried at the next turn
	}
	a := Admission{Key: k}
	ex, err := l.st.RateSeen(ctx, exemptKey(k.Account, k.Addr), "")
	if err != nil || ex {
		a.Exempt = ex
		return a, err
	}
	if a.Known, err = l.st.RateSeen(ctx, knownKey(k.Account, k.Network), ""); err != nil {
		return a, err
	}
	// Reserve, then count: see the type's comment.
	t := storeTicket{id: newTicket()}
	seen, err := l.st.RateSeen(ctx, netKey(k.Network), q(k.Account))
	if err != nil {
		return a, err
	}
	t.netSlot = !seen
	keys := []string{acctKey(k.Account), anKey(k.Account, k.Network)}
	if t.netSlot {
		keys = append(keys, netKey(k.Network))
	}
	for _, key := range keys {
		if _, _, err := l.st.RateHit(ctx, pendKey(key), t.id, PendingTTL); err != nil {
			l.release(ctx, k, t)
			return a, err
		}
	}
	checks := []struct {
		skip bool
		rate ratelimit.Rate
		key  string
		own  bool
		name string
	}{
		{a.Known, l.r.Network, netKey(k.Network), t.netSlot, LimitNetwork},
		{false, l.r.AccountNetwork, anKey(k.Account, k.Network), true, LimitAccountNetwork},
		{a.Known, l.r.Account, acctKey(k.Account), true, LimitAccount},
	}
	for _, c := range checks {
		if c.skip {
			continue
		}
		over, busy, err := l.overWith(ctx, c.rate, c.key, c.own)
		if err != nil {
			l.release(ctx, k, t)
			return a, err
		}
		if over {
			a.Refused, a.Busy = c.name, busy
			return a, l.release(ctx, k, t)
		}
	}
	a.Reserved, a.Ticket = true, t
	return a, nil
}

// release drops a ticket's slots.
func (l *StoreLimits) release(ctx context.Context, k LimitKey, t storeTicket) error {
	keys := []string{acctKey(k.Account), anKey(k.Account, k.Network)}
	if t.netSlot {
		keys = append(keys, netKey(k.Network))
	}
	var errs []error
	for _, key := range keys {
		errs = append(errs, l.st.RateMark(ctx, pendKey(key), t.id, 0))
	}
	return errors.Join(errs...)
}

// Done implements LoginLimiter.
func (l *StoreLimits) Done(ctx context.Context, a Admission, o Outcome) error {
	k := a.Key
	var errs []error
	if t, ok := a.Ticket.(storeTicket); ok && a.Reserved {
		errs = append(errs, l.release(ctx, k, t))
	}
	switch o.Kind {
	case OutcomeSuccess:
		if o.ExemptFor > 0 {
			errs = append(errs, l.st.RateMark(ctx, exemptKey(k.Account, k.Addr), "", o.ExemptFor))
		}
		errs = append(errs, l.st.RateMark(ctx, knownKey(k.Account, k.Network), "", l.r.KnownTTL))
	case OutcomeWrong:
		if a.Exempt {
			break
		}
		if !a.Reserved {
			// As MemoryLimits: an unlimited attempt from a pair already
			// over its limit is not counted.
			over, _, err := l.overWith(ctx, l.r.AccountNetwork, anKey(k.Account, k.Network), false)
			if err != nil || over {
				errs = append(errs, err)
				break
			}
		}
		errs = append(errs, l.wrong(ctx, k, o.Fingerprint))
	case OutcomeUnknown:
		if !a.Exempt {
			errs = append(errs, l.hit(ctx, l.r.Network.Per, netKey(k.Network), q(k.Account)))
		}
	}
	return errors.Join(errs...)
}

// wrong counts a wrong password once per window for the pair; a new one
// also for the account and, once per account, for the network (Mailu:
// rate_limit_user -> rate_limit_ip).
func (l *StoreLimits) wrong(ctx context.Context, k LimitKey, fp string) error {
	if !l.r.AccountNetwork.Enabled() {
		return nil
	}
	isNew, _, err := l.st.RateHit(ctx, anKey(k.Account, k.Network), fp, l.r.AccountNetwork.Per)
	if err != nil || !isNew {
		return err
	}
	return errors.Join(
		l.hit(ctx, l.r.Account.Per, acctKey(k.Account), fp),
		l.hit(ctx, l.r.Network.Per, netKey(k.Network), q(k.Account)))
}

func (l *StoreLimits) hit(ctx context.Context, per time.Duration, key, member string) error {
	if per <= 0 {
		return nil
	}
	_, _, err := l.st.RateHit(ctx, key, member, per)
	return err
}

// HitNetwork implements LoginLimiter: every hit is its own member.
func (l *StoreLimits) HitNetwork(ctx context.Context, network string) error {
	if !l.r.Network.Enabled() {
		return nil
	}
	return l.hit(ctx, l.r.Network.Per, netKey(network), "hit:"+newTicket())
}

// NetworkLimited implements LoginLimiter.
func (l *StoreLimits) NetworkLimited(ctx context.Context, network string) (bool, error) {
	over, _, err := l.overWith(ctx, l.r.Network, netKey(network), false)
	return over, err
}
