package auth

import (
	"context"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
)

// Failed-login limits. Mailu (limiter.py) keeps three things in redis: a
// per-network count of distinct failed usernames (AUTH_RATELIMIT_IP), a
// per-account count of distinct wrong passwords (AUTH_RATELIMIT_USER) and
// "exempt-<ip>" after a successful login. Petrel keeps their meaning but
// changes what they key on, so that:
//
//   - a brute force from one network cannot lock the owner out from the
//     other networks they use (Mailu #2880): wrong passwords count per
//     (account, client network) against AUTH_RATELIMIT_USER_NETWORK, and
//     only that pair is refused when it is over;
//   - guessing spread over many networks stays bounded: the same wrong
//     passwords also count per account against AUTH_RATELIMIT_USER (the
//     account's budget); when it is spent, only networks that have not
//     proven themselves for the account are refused. A network proves
//     itself for an account by a successful login of that account from it
//     (remembered for KnownNetworkTTL), as Dovecot and mox reward a good
//     login;
//   - a successful login exempts the address for that account only
//     (AUTH_RATELIMIT_EXEMPTION_LENGTH), not for every account;
//   - the limits are exact under concurrency: Admit reserves a slot before
//     the password hash is checked, atomically with every other Admit, and
//     Done turns it into a counted failure or releases it. A login that
//     would be over only because of slots in flight is told Busy, and the
//     Authenticator waits for them rather than refuse an honest burst.
//
// LoginLimiter is the seam: the in-memory MemoryLimits is per process; a
// store shared by several nodes can implement the same interface.
type LoginLimiter interface {
	// Admit decides whether the credentials of a login for k.Account
	// from k.Addr may be checked now. When it may and the login is
	// subject to limits, it holds a slot that Done must release.
	Admit(ctx context.Context, k LimitKey) (Admission, error)
	// Done records the outcome of an Admit (or, for a login that skipped
	// Admit, such as an app token, of an unreserved Admission) and
	// releases its slot.
	Done(ctx context.Context, a Admission, o Outcome) error
	// HitNetwork counts one failure against network (AUTH on port 25).
	HitNetwork(ctx context.Context, network string) error
	// NetworkLimited reports whether network is over AUTH_RATELIMIT_IP.
	NetworkLimited(ctx context.Context, network string) (bool, error)
}

// LimitKey names whose login from where.
type LimitKey struct {
	Account string // the normalized address (or the lower-cased username the client sent)
	Network string // the client address masked to AUTH_RATELIMIT_IP_V4/V6_MASK
	Addr    string // the client address
}

// Limit names, in Admission.Refused and the log.
const (
	LimitNetwork        = "network"         // AUTH_RATELIMIT_IP
	LimitAccountNetwork = "account-network" // AUTH_RATELIMIT_USER_NETWORK
	LimitAccount        = "account"         // AUTH_RATELIMIT_USER, for unproven networks
)

// Admission is Admit's answer.
type Admission struct {
	Key      LimitKey
	Refused  string // "" = go ahead; else which limit refused it
	Exempt   bool   // the address logged in as this account recently: not limited, not counted
	Known    bool   // the network has proven itself for this account
	Reserved bool   // a slot is held until Done
	Ticket   any    // the implementation's record of the slot
	// Busy: refused only because of logins still in flight; without
	// their slots this one would be admitted. The caller may ask again
	// once they finish (see Authenticator.admit).
	Busy bool
}

// OutcomeKind is what became of an admitted login.
type OutcomeKind int

const (
	// OutcomeNone releases the slot and counts nothing (a store error).
	OutcomeNone OutcomeKind = iota
	// OutcomeSuccess: the account logged in; the address becomes exempt
	// for the account and the network known for it.
	OutcomeSuccess
	// OutcomeWrong: an existing account's check failed; Fingerprint
	// tells wrong passwords apart (each counts once per window).
	OutcomeWrong
	// OutcomeUnknown: no such account; the username counts once per
	// window against the network.
	OutcomeUnknown
)

// Outcome is what Done records.
type Outcome struct {
	Kind        OutcomeKind
	Fingerprint string        // OutcomeWrong: keyed hash of the password
	ExemptFor   time.Duration // OutcomeSuccess: exempt (account, address) this long; <= 0 = not at all
}

// KnownNetworkTTL is how long a successful login keeps a network proven
// for its account.
const KnownNetworkTTL = 30 * 24 * time.Hour

// LimitRates are the rates MemoryLimits enforces.
type LimitRates struct {
	Network        ratelimit.Rate // AUTH_RATELIMIT_IP: distinct failed usernames per network
	Account        ratelimit.Rate // AUTH_RATELIMIT_USER: distinct wrong passwords per account
	AccountNetwork ratelimit.Rate // AUTH_RATELIMIT_USER_NETWORK: per (account, network)
	KnownTTL       time.Duration  // 0 = KnownNetworkTTL
}

// MemoryLimits is the per-process LoginLimiter. One mutex makes every
// Admit and Done atomic across the counters; the counters themselves are
// bounded moving windows (internal/ratelimit).
type MemoryLimits struct {
	mu       sync.Mutex
	net      *ratelimit.Limiter    // network -> distinct usernames
	acct     *ratelimit.Limiter    // account -> distinct wrong passwords
	acctNet  *ratelimit.Limiter    // account\x00network -> distinct wrong passwords
	exempt   *ratelimit.Exemptions // account\x00addr
	known    *ratelimit.Exemptions // account\x00network
	knownTTL time.Duration

	// Slots held between Admit and Done.
	pendNet     map[string]int // network, for attempts whose account is not yet counted there
	pendAcct    map[string]int
	pendAcctNet map[string]int
}

// NewMemoryLimits returns an empty in-memory limiter on clock now (nil =
// time.Now).
func NewMemoryLimits(r LimitRates, now func() time.Time, opts ...ratelimit.Option) *MemoryLimits {
	if r.KnownTTL <= 0 {
		r.KnownTTL = KnownNetworkTTL
	}
	return &MemoryLimits{
		net:         ratelimit.New(r.Network, now, opts...),
		acct:        ratelimit.New(r.Account, now, opts...),
		acctNet:     ratelimit.New(r.AccountNetwork, now, opts...),
		exempt:      ratelimit.NewExemptions(now, opts...),
		known:       ratelimit.NewExemptions(now, opts...),
		knownTTL:    r.KnownTTL,
		pendNet:     map[string]int{},
		pendAcct:    map[string]int{},
		pendAcctNet: map[string]int{},
	}
}

func pair(a, b string) string { return a + "\x00" + b }

// over reports whether one more event would exceed l's rate, counting
// pending slots.
func over(l *ratelimit.Limiter, key string, pending int) bool {
	r := l.Rate()
	return r.Enabled() && l.Count(key)+pending >= r.Count
}

// Admit implements LoginLimiter.
func (m *MemoryLimits) Admit(_ context.Context, k LimitKey) (Admission, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := Admission{Key: k}
	if m.exempt.IsExempt(pair(k.Account, k.Addr)) {
		a.Exempt = true
		return a, nil
	}
	an := pair(k.Account, k.Network)
	a.Known = m.known.IsExempt(an)
	checks := []struct {
		skip    bool
		l       *ratelimit.Limiter
		key     string
		pending int
		name    string
	}{
		{a.Known, m.net, k.Network, m.pendNet[k.Network], LimitNetwork},
		{false, m.acctNet, an, m.pendAcctNet[an], LimitAccountNetwork},
		{a.Known, m.acct, k.Account, m.pendAcct[k.Account], LimitAccount},
	}
	for _, c := range checks {
		if !c.skip && over(c.l, c.key, c.pending) {
			a.Refused, a.Busy = c.name, !over(c.l, c.key, 0)
			return a, nil
		}
	}
	a.Reserved = true
	m.pendAcct[k.Account]++
	m.pendAcctNet[an]++
	netSlot := !m.net.Seen(k.Network, k.Account)
	if netSlot {
		m.pendNet[k.Network]++
	}
	a.Ticket = netSlot
	return a, nil
}

// Done implements LoginLimiter.
func (m *MemoryLimits) Done(_ context.Context, a Admission, o Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := a.Key
	an := pair(k.Account, k.Network)
	if a.Reserved {
		dec(m.pendAcct, k.Account)
		dec(m.pendAcctNet, an)
		if netSlot, _ := a.Ticket.(bool); netSlot {
			dec(m.pendNet, k.Network)
		}
	}
	switch o.Kind {
	case OutcomeSuccess:
		if o.ExemptFor > 0 {
			m.exempt.Exempt(pair(k.Account, k.Addr), o.ExemptFor)
		}
		m.known.Exempt(an, m.knownTTL)
	case OutcomeWrong:
		if a.Exempt {
			return nil
		}
		if !a.Reserved && over(m.acctNet, an, m.pendAcctNet[an]) {
			// An unlimited attempt (a token-shaped password) from a pair
			// already over its limit: counting it would let one network
			// spend the account's budget after all.
			return nil
		}
		// A wrong password counts once per window for the pair; a new one
		// for the pair also counts for the account (once per account) and,
		// once per account, for the network (Mailu: rate_limit_user ->
		// rate_limit_ip).
		if _, isNew := m.acctNet.HitDistinct(an, o.Fingerprint); isNew {
			m.acct.HitDistinct(k.Account, o.Fingerprint)
			m.net.HitDistinct(k.Network, k.Account)
		}
	case OutcomeUnknown:
		if !a.Exempt {
			m.net.HitDistinct(k.Network, k.Account)
		}
	}
	return nil
}

// dec decrements a pending count, dropping it at zero so the maps stay as
// small as the number of logins in progress.
func dec(m map[string]int, k string) {
	if n := m[k]; n > 1 {
		m[k] = n - 1
	} else {
		delete(m, k)
	}
}

// HitNetwork implements LoginLimiter.
func (m *MemoryLimits) HitNetwork(_ context.Context, network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.net.Hit(network)
	return nil
}

// NetworkLimited implements LoginLimiter.
func (m *MemoryLimits) NetworkLimited(_ context.Context, network string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return over(m.net, network, m.pendNet[network]), nil
}

// counts is for tests: the live counts of the three windows.
func (m *MemoryLimits) counts(account, network string) (acct, acctNet, net int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acct.Count(account), m.acctNet.Count(pair(account, network)), m.net.Count(network)
}
