package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
)

// inFlight reports, for email, how many verifications are running and how
// many callers joined one of them.
func (g *flightGroup) inFlight(email string) (calls, dups int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, c := range g.calls {
		if k.email == email {
			calls++
			dups += c.dups
		}
	}
	return calls, dups
}

// gate makes e's (counting) verify block until release is called, so
// that a test can line every caller up behind the running checks.
func gate(e *env) (release func()) {
	ch := make(chan struct{})
	counting := e.a.verify
	e.a.verify = func(hash, pw string) (bool, error) {
		<-ch
		return counting(hash, pw)
	}
	return sync.OnceFunc(func() { close(ch) })
}

// waitInFlight waits until email has calls running verifications with
// dups callers waiting on them. The deadline only keeps a broken test
// from hanging; it asserts nothing about speed.
func waitInFlight(t *testing.T, g *flightGroup, email string, calls, dups int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, d := g.inFlight(email)
		if c == calls && d == dups {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("in flight for %s: %d calls, %d waiting; want %d, %d", email, c, d, calls, dups)
		}
		time.Sleep(time.Millisecond)
	}
}

func countLogs(e *env, level, msgPart string, t *testing.T) int {
	n := 0
	for _, r := range e.logs.records(t) {
		if r["level"] == level && strings.Contains(fmt.Sprint(r["msg"]), msgPart) {
			n++
		}
	}
	return n
}

// TestConcurrentIdenticalChecksShareOneVerify is the IMAP benchmark's
// bug: 10 simultaneous first logins of one user ran 10 bcrypt
// verifications. Now they run one, with or without the cache.
func TestConcurrentIdenticalChecksShareOneVerify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cache", 0}, {"no cache", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10
			e := newEnv(t, func(o *Options) { o.CacheSize = tc.cache })
			release := gate(e)
			defer release()
			errs := make(chan error, n)
			for i := range n {
				go func() {
					_, err := e.try("alice@example.com", alicePW, "imap", 993, fmt.Sprintf("10.0.%d.1", i))
					errs <- err
				}()
			}
			waitInFlight(t, e.a.flight, "alice@example.com", 1, n-1)
			release()
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("login: %v", err)
				}
			}
			if *e.calls != 1 {
				t.Fatalf("%d concurrent identical logins ran %d verifications, want 1", n, *e.calls)
			}
			if c, d := e.a.flight.inFlight("alice@example.com"); c != 0 || d != 0 {
				t.Fatalf("flight entries left behind: %d calls, %d waiting", c, d)
			}
			// Each login is still its own attempt in the log.
			if got := countLogs(e, "INFO", "success: password", t); got != n {
				t.Fatalf("%d success lines, want %d", got, n)
			}
			// A later login hits the cache (or, without one, verifies again).
			e.try("alice@example.com", alicePW, "imap", 993, "10.1.0.1")
			want := 1
			if tc.cache < 0 {
				want = 2
			}
			if *e.calls != want {
				t.Fatalf("after the burst: %d verifications, want %d", *e.calls, want)
			}
		})
	}
}

// TestConcurrentRightAndWrongPasswords: checks with different passwords
// never share; every caller gets its own verdict, and the limiters count
// exactly what the same attempts one after another would count (Mailu:
// limiter.py, distinct wrong passwords per user, per network).
func TestConcurrentRightAndWrongPasswords(t *testing.T) {
	const n = 6                                           // callers per repeated password
	distinct := []string{"wrong 1", "wrong 2", "wrong 3"} // one caller each
	type attempt struct{ pw, ip string }
	var attempts []attempt
	for i := range n {
		attempts = append(attempts, attempt{alicePW, fmt.Sprintf("10.%d.0.1", i)})
		attempts = append(attempts, attempt{"same wrong", fmt.Sprintf("10.%d.0.2", i)})
	}
	for i, pw := range distinct {
		attempts = append(attempts, attempt{pw, fmt.Sprintf("10.%d.0.3", 100+i)}) // own networks
	}
	build := func() (*env, *MemoryLimits) {
		var lim *MemoryLimits
		e := newEnv(t, func(o *Options) {
			lim = NewMemoryLimits(LimitRates{
				Network:        ratelimit.Rate{Count: 1000, Per: time.Hour},
				Account:        ratelimit.Rate{Count: 1000, Per: 24 * time.Hour},
				AccountNetwork: ratelimit.Rate{Count: 1000, Per: 24 * time.Hour},
			}, o.Now)
			o.Limits = lim
			o.ExemptionLength = -1 // keep the IPs subject to limits throughout
		})
		return e, lim
	}
	userCount := func(l *MemoryLimits) int { n, _, _ := l.counts("alice@example.com", ""); return n }
	check := func(pw string, err error) {
		t.Helper()
		if pw == alicePW && err != nil {
			t.Errorf("right password refused: %v", err)
		}
		if pw != alicePW && !errors.Is(err, ErrBadCredentials) {
			t.Errorf("wrong password %q: %v, want ErrBadCredentials", pw, err)
		}
	}

	// The same attempts one after another: the reference counts.
	seq, seqLim := build()
	for _, at := range attempts {
		_, err := seq.try("alice@example.com", at.pw, "imap", 993, at.ip)
		check(at.pw, err)
	}

	e, lim := build()
	release := gate(e)
	defer release()
	type verdict struct {
		pw  string
		err error
	}
	out := make(chan verdict, len(attempts))
	for _, at := range attempts {
		go func() {
			_, err := e.try("alice@example.com", at.pw, "imap", 993, at.ip)
			out <- verdict{at.pw, err}
		}()
	}
	// One verification per distinct password, everyone else waiting.
	waitInFlight(t, e.a.flight, "alice@example.com", 2+len(distinct), 2*(n-1))
	release()
	for range attempts {
		v := <-out
		check(v.pw, v.err)
	}
	if want := 2 + len(distinct); *e.calls != want {
		t.Fatalf("%d verifications, want %d (one per distinct password)", *e.calls, want)
	}
	if got, want := userCount(lim), 1+len(distinct); got != want {
		t.Fatalf("user limiter counted %d distinct wrong passwords, want %d", got, want)
	}
	if got, want := userCount(lim), userCount(seqLim); got != want {
		t.Fatalf("user limiter: %d concurrent, %d sequential", got, want)
	}
	// Each network that sent alice a wrong password counts her once
	// (limiter.py rate_limit_user -> rate_limit_ip, deduplicated per
	// network and account): six networks sent "same wrong", three sent
	// one distinct password each.
	ipTotal := func(l *MemoryLimits) int {
		nets, sum := map[string]bool{}, 0
		for _, at := range attempts {
			if net := e.a.network(netip.MustParseAddr(at.ip)); !nets[net] {
				nets[net] = true
				_, _, n := l.counts("", net)
				sum += n
			}
		}
		return sum
	}
	if got, want := ipTotal(lim), ipTotal(seqLim); got != want || got != n+len(distinct) {
		t.Fatalf("IP limiter hits: %d concurrent, %d sequential, want %d", got, want, n+len(distinct))
	}
	// Every attempt logs its own line, as before.
	if got, want := countLogs(e, "WARN", "failed: badauth", t), n+len(distinct); got != want {
		t.Fatalf("%d badauth lines, want %d", got, want)
	}
	if got := countLogs(e, "INFO", "success: password", t); got != n {
		t.Fatalf("%d success lines, want %d", got, n)
	}
}

// TestConcurrentRehashOnce: a burst of logins with an outdated hash
// verifies once, re-hashes once and stores once, and every caller sees
// the new hash.
func TestConcurrentRehashOnce(t *testing.T) {
	const n = 8
	e := newEnv(t, nil)
	var old string
	for _, v := range loadVectors(t) {
		if v.Scheme == "sha512_crypt" && v.Password == "password" && strings.HasPrefix(v.Hash, "$6$rounds=1000$") {
			old = v.Hash
		}
	}
	e.users.add("bob@example.com", "{SHA512-CRYPT}"+old, nil)
	var mu sync.Mutex
	hashes := 0
	e.a.hash = func(pw string, rounds int) (string, error) {
		mu.Lock()
		hashes++
		mu.Unlock()
		return HashPassword(pw, rounds)
	}
	release := gate(e)
	defer release()
	type out struct {
		res *Result
		err error
	}
	ch := make(chan out, n)
	for i := range n {
		go func() {
			r, err := e.try("bob@example.com", "password", "imap", 993, fmt.Sprintf("10.0.%d.1", i))
			ch <- out{r, err}
		}()
	}
	waitInFlight(t, e.a.flight, "bob@example.com", 1, n-1)
	release()
	nh := ""
	for range n {
		o := <-ch
		if o.err != nil {
			t.Fatal(o.err)
		}
		if nh == "" {
			nh = e.users.hashOf("bob@example.com")
		}
		if o.res.User.Password != nh {
			t.Fatalf("caller sees hash %q, store has %q", o.res.User.Password, nh)
		}
	}
	if *e.calls != 1 || hashes != 1 || e.users.sets != 1 {
		t.Fatalf("verify %d, hash %d, SetPasswordHash %d; want 1 each", *e.calls, hashes, e.users.sets)
	}
	if !strings.HasPrefix(nh, "$bcrypt-sha256$") {
		t.Fatalf("not re-hashed: %q", nh)
	}
}

// TestConcurrentUnverifiableHash: a broken stored hash is one
// verification for the burst, but every caller is refused and logs the
// admin's error line.
func TestConcurrentUnverifiableHash(t *testing.T) {
	const n = 4
	e := newEnv(t, nil)
	e.users.add("erin@example.com", "garbage-hash", nil)
	release := gate(e)
	defer release()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := e.try("erin@example.com", "password", "imap", 993, fmt.Sprintf("10.0.%d.1", i))
			errs <- err
		}()
	}
	waitInFlight(t, e.a.flight, "erin@example.com", 1, n-1)
	release()
	for range n {
		if err := <-errs; !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("broken hash: %v", err)
		}
	}
	if *e.calls != 1 {
		t.Fatalf("%d verifications, want 1", *e.calls)
	}
	if got := countLogs(e, "ERROR", "stored password hash cannot be verified", t); got != n {
		t.Fatalf("%d error lines, want %d", got, n)
	}
}

// TestFlightKey: the key tells every part of the question apart and never
// holds the password.
func TestFlightKey(t *testing.T) {
	g := newFlightGroup()
	const pw = "Correct Horse Battery Staple"
	base := g.keyOf("a@example.com", "$hash1", pw)
	if base != g.keyOf("a@example.com", "$hash1", pw) {
		t.Fatal("same question, different keys")
	}
	for name, k := range map[string]flightKey{
		"password": g.keyOf("a@example.com", "$hash1", pw+"!"),
		"stored":   g.keyOf("a@example.com", "$hash2", pw),
		"email":    g.keyOf("b@example.com", "$hash1", pw),
		"group":    newFlightGroup().keyOf("a@example.com", "$hash1", pw),
	} {
		if k == base {
			t.Errorf("a different %s gives the same key", name)
		}
	}
	for _, s := range []string{fmt.Sprintf("%#v", base), string(base.mac[:])} {
		if strings.Contains(s, pw) || strings.Contains(s, "Horse") {
			t.Fatalf("key holds the password: %s", s)
		}
	}
}

// TestFlightLeaderPanics: followers of a leader that panicked do not hang
// and do not take its zero result; they run the check themselves.
func TestFlightLeaderPanics(t *testing.T) {
	g := newFlightGroup()
	entered, boom := make(chan struct{}), make(chan struct{})
	leaderDone := make(chan any)
	go func() {
		defer func() { leaderDone <- recover() }()
		g.do("a@example.com", "$h", "pw", func() flightResult {
			close(entered)
			<-boom
			panic("verifier bug")
		})
	}()
	<-entered
	follower := make(chan flightResult)
	go func() {
		follower <- g.do("a@example.com", "$h", "pw", func() flightResult {
			return flightResult{ok: true, stored: "$own"}
		})
	}()
	waitInFlight(t, g, "a@example.com", 1, 1)
	close(boom)
	if p := <-leaderDone; p == nil {
		t.Fatal("the leader's panic was swallowed")
	}
	if r := <-follower; !r.ok || r.stored != "$own" {
		t.Fatalf("follower result %+v, want its own run", r)
	}
	if c, d := g.inFlight("a@example.com"); c != 0 || d != 0 {
		t.Fatalf("entries left after a panic: %d, %d", c, d)
	}
}
