package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// flightGroup lets concurrent identical password checks share one
// verification. Without it, N connections of one client logging in at
// once (a phone, a desktop and webmail reconnecting together, or one
// credential replayed in a burst) ran N bcrypt verifications, because
// the credential cache is only filled when a check finishes.
//
// Only identical questions share: the key is the user, the exact stored
// hash and an HMAC of the presented password, so a wrong password never
// rides on a right one or the other way round. The password itself is
// never a map key (a debugger or heap dump shows only the MAC) and is
// never logged. Sharing is limited to the verification: every caller
// still counts as its own attempt in the limiters and logs its own line.
type flightGroup struct {
	key   [32]byte // per process: MACs are only compared in this process
	mu    sync.Mutex
	calls map[flightKey]*flightCall
}

// flightKey names one password check.
type flightKey struct {
	email  string
	stored string
	mac    [sha256.Size]byte
}

// flightResult is what one verification found, handed to every caller
// that asked the same question while it ran.
type flightResult struct {
	ok     bool
	stored string // the hash now stored: the new one after a re-hash
	err    error  // the stored hash could not be verified
}

// flightCall is one verification in progress.
type flightCall struct {
	done     chan struct{} // closed when the leader returns
	res      flightResult
	finished bool // false if the leader panicked: followers run it themselves
	dups     int  // callers that joined (tests watch it)
}

func newFlightGroup() *flightGroup {
	g := &flightGroup{calls: make(map[flightKey]*flightCall)}
	rand.Read(g.key[:]) // never fails (crypto/rand, Go >= 1.24)
	return g
}

func (g *flightGroup) keyOf(email, stored, password string) flightKey {
	m := hmac.New(sha256.New, g.key[:])
	m.Write([]byte(email))
	m.Write([]byte{0})
	m.Write([]byte(password))
	k := flightKey{email: email, stored: stored}
	m.Sum(k.mac[:0])
	return k
}

// do runs fn once for all concurrent callers with the same email, stored
// hash and password, and gives each of them its result.
//
// A follower waits without watching its own context: the wait is never
// longer than the verification it would otherwise have run itself, and
// giving up early would have to be reported as a failure, which the
// limiter would then count.
func (g *flightGroup) do(email, stored, password string, fn func() flightResult) flightResult {
	if g == nil {
		return fn()
	}
	k := g.keyOf(email, stored, password)
	g.mu.Lock()
	if c, ok := g.calls[k]; ok {
		c.dups++
		g.mu.Unlock()
		<-c.done
		if c.finished {
			return c.res
		}
		return fn() // the leader panicked; let this caller meet the same fate on its own
	}
	c := &flightCall{done: make(chan struct{})}
	g.calls[k] = c
	g.mu.Unlock()

	defer func() {
		g.mu.Lock()
		delete(g.calls, k)
		g.mu.Unlock()
		close(c.done)
	}()
	c.res = fn()
	c.finished = true
	return c.res
}
