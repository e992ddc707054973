package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
)

// TestBruteForceFromOneNetworkDoesNotLockOut (issue 17, Mailu #2880): a
// thousand wrong passwords from one address used to refuse the right
// password from every other address. Now only the attacking network is
// refused for that account, after AUTH_RATELIMIT_USER_NETWORK guesses.
func TestBruteForceFromOneNetworkDoesNotLockOut(t *testing.T) {
	e := newEnv(t, nil) // Mailu's defaults: 5/hour, 50/day; 10/day per network
	// The owner logged in from home before the attack.
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.20"); err != nil {
		t.Fatal(err)
	}
	before := *e.calls
	for i := range 1000 {
		_, err := e.try("alice@example.com", fmt.Sprintf("guess %d", i), "imap", 993, "203.0.113.5")
		if err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}
	if got := *e.calls - before; got != DefaultUserNetLimit.Count {
		t.Fatalf("%d password checks from the attacking network, want %d", got, DefaultUserNetLimit.Count)
	}
	// From a network she has never used: let in, the account's budget is
	// not spent by one network.
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.77"); err != nil {
		t.Fatalf("right password from a new network after a one-network brute force: %v", err)
	}
	// From her home network, another address: let in.
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.21"); err != nil {
		t.Fatalf("right password from her known network: %v", err)
	}
	// The attacking network itself stays refused for alice, right
	// password or not, and the log says which limit.
	e.logs.reset()
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "203.0.113.6"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("attacking network: %v, want ErrRateLimited", err)
	}
	if w := e.logs.warns(t); len(w) != 1 || w[0]["limit"] != LimitAccountNetwork {
		t.Fatalf("log: %v", w)
	}
}

// TestGuessingSpreadOverNetworksBounded: many networks together get at
// most AUTH_RATELIMIT_USER checks; then only networks proven for the
// account get in.
func TestGuessingSpreadOverNetworksBounded(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.20"); err != nil {
		t.Fatal(err)
	}
	before := *e.calls
	for i := range 300 { // 300 networks, one guess each
		e.try("alice@example.com", fmt.Sprintf("guess %d", i), "imap", 993, fmt.Sprintf("10.%d.%d.1", i/256, i%256))
	}
	if got := *e.calls - before; got != DefaultUserLimit.Count {
		t.Fatalf("%d password checks from 300 networks, want %d", got, DefaultUserLimit.Count)
	}
	e.logs.reset()
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.77"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("unproven network with the budget spent: %v, want ErrRateLimited", err)
	}
	if w := e.logs.warns(t); len(w) != 1 || w[0]["limit"] != LimitAccount {
		t.Fatalf("log: %v", w)
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.99"); err != nil {
		t.Fatalf("proven network with the budget spent: %v", err)
	}
	// Other accounts are not affected.
	e.users.add("bob@example.com", e.users.hashOf("alice@example.com"), nil)
	if _, err := e.try("bob@example.com", alicePW, "imap", 993, "192.0.2.78"); err != nil {
		t.Fatalf("bob: %v", err)
	}
	// The budget drains with its window.
	e.clock.add(24*time.Hour + time.Second)
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.77"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestExemptionIsPerAccount (issue 17): logging in as bob used to exempt
// the address for every account, so it could guess alice's password
// without limit.
func TestExemptionIsPerAccount(t *testing.T) {
	e := newEnv(t, nil)
	e.users.add("bob@example.com", e.users.hashOf("alice@example.com"), nil)
	if _, err := e.try("bob@example.com", alicePW, "smtp", 465, "203.0.113.5"); err != nil {
		t.Fatal(err)
	}
	before := *e.calls
	for i := range 200 {
		e.try("alice@example.com", fmt.Sprintf("guess %d", i), "smtp", 465, "203.0.113.5")
	}
	if got := *e.calls - before; got != DefaultUserNetLimit.Count {
		t.Fatalf("%d checks of alice's password from bob's address, want %d", got, DefaultUserNetLimit.Count)
	}
	if _, err := e.try("alice@example.com", alicePW, "smtp", 465, "203.0.113.5"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("alice from bob's address: %v, want ErrRateLimited", err)
	}
	// Bob himself stays exempt there: his mistakes are not counted.
	for i := range 100 {
		e.try("bob@example.com", fmt.Sprintf("typo %d", i), "smtp", 465, "203.0.113.5")
	}
	if _, err := e.try("bob@example.com", alicePW, "smtp", 465, "203.0.113.5"); err != nil {
		t.Fatalf("bob from his exempt address: %v", err)
	}
}

// TestLimitExactUnderConcurrency (issue 17): four parallel guessers got 53
// full checks against a limit of 50; Admit reserves before the check.
func TestLimitExactUnderConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name string
		ip   func(g int) string
		opts func(*Options)
	}{
		{"one network", func(int) string { return "203.0.113.5" }, func(o *Options) {
			o.UserNetLimit = ratelimit.Rate{Count: 50, Per: 24 * time.Hour}
			o.UserLimit = ratelimit.Rate{Count: 1000, Per: 24 * time.Hour}
		}},
		{"four networks", func(g int) string { return fmt.Sprintf("10.%d.0.1", g) }, func(o *Options) {
			o.UserNetLimit = ratelimit.Rate{Count: 1000, Per: 24 * time.Hour}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			var checks atomic.Int64
			inner := e.a.verify
			e.a.verify = func(hash, pw string) (bool, error) {
				checks.Add(1)
				time.Sleep(time.Millisecond) // widen the window a check-then-count race needs
				return inner(hash, pw)
			}
			var wg sync.WaitGroup
			var limited atomic.Int64
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 40 {
						_, err := e.try("alice@example.com", fmt.Sprintf("g%d guess %d", g, i), "imap", 993, tc.ip(g))
						if errors.Is(err, ErrRateLimited) {
							limited.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if got := checks.Load(); got != 50 {
				t.Fatalf("%d full password checks, want exactly 50", got)
			}
			if got := limited.Load(); got != 160-50 {
				t.Fatalf("%d refused as rate-limited, want %d", got, 160-50)
			}
		})
	}
}

// TestAdmitReleasesSlots: slots of logins that end in success, a store
// error or a repeated wrong password are released, not counted.
func TestAdmitReleasesSlots(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	m := NewMemoryLimits(LimitRates{
		Network:        ratelimit.Rate{Count: 5, Per: time.Hour},
		Account:        ratelimit.Rate{Count: 2, Per: time.Hour},
		AccountNetwork: ratelimit.Rate{Count: 2, Per: time.Hour},
	}, clock.now)
	ctx := context.Background()
	k := LimitKey{Account: "alice@example.com", Network: "192.0.2.0/24", Addr: "192.0.2.1"}
	a1, _ := m.Admit(ctx, k)
	a2, _ := m.Admit(ctx, k)
	if a1.Refused != "" || a2.Refused != "" {
		t.Fatal("first two refused")
	}
	if a3, _ := m.Admit(ctx, k); a3.Refused != LimitAccountNetwork {
		t.Fatalf("third while two are pending: %q", a3.Refused)
	}
	m.Done(ctx, a1, Outcome{Kind: OutcomeNone})
	m.Done(ctx, a2, Outcome{Kind: OutcomeWrong, Fingerprint: "f1"})
	a4, _ := m.Admit(ctx, k)
	if a4.Refused != "" {
		t.Fatalf("after a release: %q", a4.Refused)
	}
	m.Done(ctx, a4, Outcome{Kind: OutcomeWrong, Fingerprint: "f1"}) // repeat: not counted
	if acct, an, net := m.counts(k.Account, k.Network); acct != 1 || an != 1 || net != 1 {
		t.Fatalf("counts %d %d %d, want 1 1 1", acct, an, net)
	}
	if len(m.pendAcct)+len(m.pendAcctNet)+len(m.pendNet) != 0 {
		t.Fatal("pending slots left over")
	}
}

// TestUnknownUsersCountExactly: concurrent unknown usernames from one
// network stop at AUTH_RATELIMIT_IP exactly.
func TestUnknownUsersCountExactly(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := e.try(fmt.Sprintf("u%d-%d@example.com", g, i), "x", "imap", 993, "203.0.113.5"); errors.Is(err, ErrBadCredentials) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := bad.Load(); got != int64(DefaultIPLimit.Count) {
		t.Fatalf("%d unknown usernames tried, want %d", got, DefaultIPLimit.Count)
	}
	if !e.a.IPRateLimited(context.Background(), netip.MustParseAddr("203.0.113.9")) {
		t.Fatal("network not limited")
	}
}

// TestTokenShapedGuessesCannotSpendBudget: token-shaped passwords are not
// limited (Mailu), but one network's failures still count for the account
// at most AUTH_RATELIMIT_USER_NETWORK times.
func TestTokenShapedGuessesCannotSpendBudget(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 200 {
		e.try("alice@example.com", fmt.Sprintf("%032x", i+1), "imap", 993, "203.0.113.5")
	}
	if acct, an, _ := e.a.limits.(*MemoryLimits).counts("alice@example.com", "203.0.113.0/24"); acct != DefaultUserNetLimit.Count || an != DefaultUserNetLimit.Count {
		t.Fatalf("counted %d for the account, %d for the pair; want %d", acct, an, DefaultUserNetLimit.Count)
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.77"); err != nil {
		t.Fatalf("owner from a new network: %v", err)
	}
}

// TestConcurrentHonestLoginsWait: logins in flight hold slots, and a
// login that would be over a limit only because of them waits for them
// instead of being refused. Twelve colleagues behind one NAT logging in
// at once (AUTH_RATELIMIT_IP 5/hour), and one client opening twelve
// connections at once (AUTH_RATELIMIT_USER_NETWORK 10/day), were refused
// by imaptest's stress run.
func TestConcurrentHonestLoginsWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		user func(i int) string
	}{
		{"distinct accounts", func(i int) string { return fmt.Sprintf("user%d@example.com", i) }},
		{"one account", func(int) string { return "alice@example.com" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			h := e.users.hashOf("alice@example.com")
			for i := range 12 {
				e.users.add(fmt.Sprintf("user%d@example.com", i), h, nil)
			}
			inner := e.a.verify
			e.a.verify = func(hash, pw string) (bool, error) {
				time.Sleep(20 * time.Millisecond) // a slow hash: every login is in flight at once
				return inner(hash, pw)
			}
			var wg sync.WaitGroup
			errs := make([]error, 12)
			for i := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A distinct password each time, so the flight group
					// does not fold them into one check.
					_, errs[i] = e.try(tc.user(i), alicePW, "imap", 993, "198.51.100.7")
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("login %d: %v", i, err)
				}
			}
		})
	}
}

// TestBusyOnlyForSlotsInFlight: Admit says Busy when the pending slots
// alone push a key over, and not when the counted failures do.
func TestBusyOnlyForSlotsInFlight(t *testing.T) {
	ctx := context.Background()
	rates := LimitRates{
		Network:        ratelimit.Rate{Count: 5, Per: time.Hour},
		Account:        ratelimit.Rate{Count: 100, Per: time.Hour},
		AccountNetwork: ratelimit.Rate{Count: 1, Per: time.Hour},
	}
	limiters := map[string]LoginLimiter{
		"memory": NewMemoryLimits(rates, nil),
		"store":  NewStoreLimits(&memRates{rows: map[[2]string]time.Time{}}, rates),
	}
	for name, l := range limiters {
		t.Run(name, func(t *testing.T) {
			k := LimitKey{Account: "alice@example.com", Network: "192.0.2.0/24", Addr: "192.0.2.1"}
			a1, err := l.Admit(ctx, k)
			if err != nil || a1.Refused != "" {
				t.Fatalf("first: %+v %v", a1, err)
			}
			a2, err := l.Admit(ctx, k)
			if err != nil || a2.Refused != LimitAccountNetwork || !a2.Busy {
				t.Fatalf("second while the first is in flight: %+v %v, want busy", a2, err)
			}
			if err := l.Done(ctx, a1, Outcome{Kind: OutcomeWrong, Fingerprint: "f1"}); err != nil {
				t.Fatal(err)
			}
			a3, err := l.Admit(ctx, k)
			if err != nil || a3.Refused != LimitAccountNetwork || a3.Busy {
				t.Fatalf("after a counted failure: %+v %v, want refused, not busy", a3, err)
			}
		})
	}
}
