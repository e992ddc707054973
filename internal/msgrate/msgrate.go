// Package msgrate is MESSAGE_RATELIMIT: how many messages one login may
// submit in a moving window (Mailu: postfix_sender_rate, user
// sender_limiter). Shared keeps the count in the store, so that several
// nodes on one PostgreSQL enforce one limit (issue 16); Memory keeps it in
// the process, as a single SQLite node always did.
//
// Both implement one protocol: Take at MAIL FROM says whether one more
// message may go, and Settle after DATA says whether it went. Shared
// holds the message's place from Take on, so that sessions racing on
// several nodes never pass the limit together; Settle gives an unsent
// message's place back.
package msgrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
)

// Memory is the in-process limiter: Take tests, a sent Settle counts.
type Memory struct{ l *ratelimit.Limiter }

// NewMemory returns a limiter allowing rate; now is the clock (nil:
// time.Now).
func NewMemory(rate ratelimit.Rate, now func() time.Time) *Memory {
	return &Memory{l: ratelimit.New(rate, now)}
}

// Take reports whether key may send one more message now.
func (m *Memory) Take(_ context.Context, key string) (string, bool, error) {
	return "", m.l.Test(key), nil
}

// Settle counts a sent message.
func (m *Memory) Settle(_ context.Context, key, _ string, sent bool) error {
	if sent {
		m.l.Hit(key)
	}
	return nil
}

// Store is the part of store.RateLimits that Shared uses.
type Store interface {
	RateTake(ctx context.Context, key, member string, limit int, ttl time.Duration) (taken bool, count int, err error)
	RateMark(ctx context.Context, key, member string, ttl time.Duration) error
	PruneRates(ctx context.Context) (int64, error)
}

// Shared keeps MESSAGE_RATELIMIT as store rows: one row per message
// (member = a random ticket) that lives for the window, so the key's live
// rows are the messages of the moving window on every node.
type Shared struct {
	st    Store
	rate  ratelimit.Rate
	prune ratelimit.PruneGate // expired rows go every 10 minutes
}

// NewShared returns a limiter allowing rate, kept in st.
func NewShared(st Store, rate ratelimit.Rate) *Shared {
	return &Shared{st: st, rate: rate, prune: ratelimit.PruneGate{Every: 10 * time.Minute}}
}

// rowKey keeps the message counts apart from the other rows of the
// table; the login is quoted as auth's keys are.
func rowKey(key string) string { return "msgrate:" + strconv.Quote(key) }

// Take records one message for key if the window has room, and returns
// its ticket. The place counts from now for the window; a message that is
// then not sent gives it back through Settle. A node that dies between
// the two leaves the place taken until the window ends (erring towards
// the limit, never past it).
func (s *Shared) Take(ctx context.Context, key string) (string, bool, error) {
	if !s.rate.Enabled() {
		return "", true, nil
	}
	if s.prune.Due(time.Now()) {
		s.st.PruneRates(ctx) //nolint:errcheck // retried at the next turn
	}
	var b [12]byte
	rand.Read(b[:])
	ticket := hex.EncodeToString(b[:])
	taken, _, err := s.st.RateTake(ctx, rowKey(key), ticket, s.rate.Count, s.rate.Per)
	if err != nil || !taken {
		return "", false, err
	}
	return ticket, true, nil
}

// Settle gives the place of an unsent message back; a sent one keeps it.
func (s *Shared) Settle(ctx context.Context, key, ticket string, sent bool) error {
	if sent || ticket == "" {
		return nil
	}
	return s.st.RateMark(ctx, rowKey(key), ticket, 0)
}
