package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/ratelimit"
)

// memRates is store.RateLimits in memory; sqlstore's conformance test
// covers the SQL and tests/ two nodes on one PostgreSQL.
type memRates struct {
	mu   sync.Mutex
	rows map[[2]string]time.Time
}

func (m *memRates) RateHit(_ context.Context, key, member string, ttl time.Duration) (bool, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	k := [2]string{key, member}
	isNew := !m.rows[k].After(now)
	if isNew {
		m.rows[k] = now.Add(ttl)
	}
	return isNew, m.count(key, now), nil
}

func (m *memRates) RateTake(_ context.Context, key, member string, limit int, ttl time.Duration) (bool, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	k := [2]string{key, member}
	if m.rows[k].After(now) {
		return true, m.count(key, now), nil
	}
	if n := m.count(key, now); n >= limit {
		return false, n, nil
	}
	m.rows[k] = now.Add(ttl)
	return true, m.count(key, now), nil
}

func (m *memRates) count(key string, now time.Time) int {
	n := 0
	for k, exp := range m.rows {
		if k[0] == key && exp.After(now) {
			n++
		}
	}
	return n
}

func (m *memRates) RateCount(_ context.Context, key string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count(key, time.Now()), nil
}

func (m *memRates) RateSeen(_ context.Context, key, member string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rows[[2]string{key, member}].After(time.Now()), nil
}

func (m *memRates) RateMark(_ context.Context, key, member string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ttl <= 0 {
		delete(m.rows, [2]string{key, member})
	} else {
		m.rows[[2]string{key, member}] = time.Now().Add(ttl)
	}
	return nil
}

func (m *memRates) PruneRates(context.Context) (int64, error) { return 0, nil }

// Two nodes on one store: wrong passwords on either count against one
// AUTH_RATELIMIT_USER_NETWORK; a success on one exempts the address on the
// other; slots are released, so nothing stays pending.
func TestStoreLimitsSharedByNodes(t *testing.T) {
	ctx := context.Background()
	st := &memRates{rows: map[[2]string]time.Time{}}
	r := LimitRates{
		Network:        ratelimit.Rate{Count: 100, Per: time.Hour},
		Account:        ratelimit.Rate{Count: 100, Per: time.Hour},
		AccountNetwork: ratelimit.Rate{Count: 3, Per: time.Hour},
	}
	nodes := []*StoreLimits{NewStoreLimits(st, r), NewStoreLimits(st, r)}
	k := LimitKey{Account: "alice@example.com", Network: "203.0.113.0/24", Addr: "203.0.113.5"}
	refused := 0
	for i := range 8 {
		n := nodes[i%2]
		a, err := n.Admit(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if a.Refused != "" {
			if a.Refused != LimitAccountNetwork {
				t.Fatalf("refused by %q, want %q", a.Refused, LimitAccountNetwork)
			}
			refused++
			continue
		}
		if err := n.Done(ctx, a, Outcome{Kind: OutcomeWrong, Fingerprint: fmt.Sprint("fp", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if refused != 5 {
		t.Fatalf("%d of 8 attempts over two nodes refused, want 5 (limit 3 in all)", refused)
	}
	for _, key := range []string{pendKey(anKey(k.Account, k.Network)), pendKey(acctKey(k.Account)), pendKey(netKey(k.Network))} {
		if n, _ := st.RateCount(ctx, key); n != 0 {
			t.Fatalf("%d slots left pending under %s", n, key)
		}
	}

	// Another address of another network logs in on node A: exempt on B.
	home := LimitKey{Account: k.Account, Network: "198.51.100.0/24", Addr: "198.51.100.7"}
	a, err := nodes[0].Admit(ctx, home)
	if err != nil || a.Refused != "" {
		t.Fatalf("home login: %+v, %v", a, err)
	}
	if err := nodes[0].Done(ctx, a, Outcome{Kind: OutcomeSuccess, ExemptFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if a, err := nodes[1].Admit(ctx, home); err != nil || !a.Exempt {
		t.Fatalf("node B after a success on node A: %+v, %v; want exempt", a, err)
	}
	// A username with a NUL and invalid UTF-8 makes a key PostgreSQL
	// text accepts (valid UTF-8, no NUL).
	for _, key := range []string{anKey("x\x00\xff", k.Network), netKey("\xff"), exemptKey("a\x00", "b")} {
		if !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
			t.Fatalf("key %q is not valid PostgreSQL text", key)
		}
	}
}
