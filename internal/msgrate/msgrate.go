// Package msgrate keeps MESSAGE_RATELIMIT (messages a logged-in user may
// send per window) in the store, so that several nodes sharing one
// PostgreSQL count one limit: with a counter in each process, a user
// sending through N nodes got N times the limit.
//
// It implements smtpd.RateLimiter. Each accepted message is one row of
// store.RateLimits under the user's key, living one window: the count
// of live rows is the messages sent in the last window (a sliding log,
// as the in-memory limiter's moving window).
package msgrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
)

// storeTimeout bounds one store call: a slow database must not hold an
// SMTP session longer than a reply should take.
const storeTimeout = 5 * time.Second

// pruneGap is how often expired rows are deleted.
const pruneGap = 10 * time.Minute

// Shared is MESSAGE_RATELIMIT kept in the store.
type Shared struct {
	st   store.RateLimits
	rate ratelimit.Rate
	log  *slog.Logger
	now  func() time.Time

	mu        sync.Mutex
	lastPrune time.Time
}

// New returns a limiter of rate kept in st; rate must be enabled.
func New(st store.RateLimits, rate ratelimit.Rate, log *slog.Logger) *Shared {
	return &Shared{st: st, rate: rate, log: log, now: time.Now}
}

func key(user string) string { return "msg-rate:" + strconv.Quote(user) }

// Test reports whether user may send one more message now. A store error
// lets the message through, logged: the limit is a brake on a stolen
// password, and a store that cannot answer fails the delivery itself
// with a temporary error.
func (s *Shared) Test(user string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	s.prune(ctx)
	n, err := s.st.RateCount(ctx, key(user))
	if err != nil {
		s.log.Warn("MESSAGE_RATELIMIT: store unreachable, message not limited", "user", user, "err", err)
		return true
	}
	return n < s.rate.Count
}

// Hit counts one message of user and reports whether it was within the
// limit (messages of one user accepted at the same moment on several
// nodes may each pass Test: the overshoot is at most the user's
// concurrent sessions, as with the in-memory limiter).
func (s *Shared) Hit(user string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	_, n, err := s.st.RateHit(ctx, key(user), newMember(), s.rate.Per)
	if err != nil {
		s.log.Warn("MESSAGE_RATELIMIT: message not counted, store unreachable", "user", user, "err", err)
		return true
	}
	return n <= s.rate.Count
}

func (s *Shared) prune(ctx context.Context) {
	s.mu.Lock()
	due := s.now().Sub(s.lastPrune) >= pruneGap
	if due {
		s.lastPrune = s.now()
	}
	s.mu.Unlock()
	if due {
		if _, err := s.st.PruneRates(ctx); err != nil {
			s.log.Debug("MESSAGE_RATELIMIT: pruning expired rows failed; retried later", "err", err)
		}
	}
}

// newMember names one message's row.
func newMember() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
