// Package auth is Petrel's one authentication core, shared by SMTP
// submission, IMAP, POP3 and the web: passlib-compatible password hashes,
// app tokens, the credential cache, SASL LOGIN, and Mailu's failed-auth
// limits (limiter.py).
package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// Errors Authenticate returns. Protocols map them to their replies
// (SMTP 535 5.7.8 / 451 4.3.2, IMAP AUTHENTICATIONFAILED / LIMIT, ...).
// Every other reason (unknown user, disabled, token from a foreign IP,
// AUTH_REQUIRE_TOKENS) is reported to the client as ErrBadCredentials; the
// log line says the real reason. A username without @ gets
// ErrNotFullAddress (which is also ErrBadCredentials): it is a format
// hint, decided before any lookup, so it says nothing about which
// accounts exist.
var (
	ErrBadCredentials = errors.New("authentication failed")
	ErrRateLimited    = errors.New("temporary authentication failure (rate-limit)")
	ErrNotFullAddress = fmt.Errorf("%w: %s", ErrBadCredentials, NotFullAddressText)
)

// NotFullAddressText is what protocols tell a client that logged in with a
// bare local part (Mailu has no default domain: nginx.py looks up only
// addresses with an @).
const NotFullAddressText = "the username is the full email address (user@domain)"

// Secret is a password or token; it never prints or logs its value.
type Secret string

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String implements fmt.Stringer.
func (Secret) String() string { return "REDACTED" }

// GoString implements fmt.GoStringer, for %#v.
func (Secret) GoString() string { return `"REDACTED"` }

// MarshalText implements encoding.TextMarshaler, so that JSON (and
// slog's JSON handler, for a struct holding a Secret) never sees the value.
func (Secret) MarshalText() ([]byte, error) { return []byte("REDACTED"), nil }

// Attempt is one login attempt.
type Attempt struct {
	Username string // as the client sent it
	Password Secret
	Protocol string // Mailu Auth-Protocol: "smtp", "imap", "pop3", "sieve", "web"
	Port     int    // the role's port (465, 587, 993, ...)
	Remote   netip.Addr
	Log      *slog.Logger // the connection's logger; nil = the Authenticator's
}

// LogValue implements slog.LogValuer: an Attempt logs without its
// password and logger.
func (a Attempt) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", a.Username),
		slog.String("protocol", a.Protocol),
		slog.Int("port", a.Port),
		slog.String("remote", a.Remote.String()),
	)
}

// Result is a successful login.
type Result struct {
	User     *store.User
	ViaToken bool // authenticated with an app token
}

// AuthenticateFunc is the shape protocol servers depend on.
type AuthenticateFunc func(ctx context.Context, a Attempt) (*Result, error)

// ScramProvider starts SCRAM logins; *Authenticator implements it.
// Protocol servers check for it with a type assertion, so that test
// authenticators without SCRAM keep working (they just do not offer it).
type ScramProvider interface {
	// ScramMechanisms lists what to advertise (-PLUS only over TLS;
	// nothing when AUTH_REQUIRE_TOKENS refuses passwords).
	ScramMechanisms(tlsOn bool) []string
	// NewScramLogin starts one exchange; see Authenticator.NewScramLogin.
	NewScramLogin(ctx context.Context, at Attempt, plus bool, cs *tls.ConnectionState) *ScramLogin
}

var _ ScramProvider = (*Authenticator)(nil)

// ScramMechanismsOf lists the SCRAM mechanisms a protocol's authenticator
// offers now: none when it is not a ScramProvider.
func ScramMechanismsOf(a any, tlsOn bool) []string {
	if sp, ok := a.(ScramProvider); ok {
		return sp.ScramMechanisms(tlsOn)
	}
	return nil
}

// StartScram starts a SCRAM exchange when mech is one that a offers now,
// else returns nil. cs is the connection's TLS state (nil in plaintext),
// which -PLUS binds to.
func StartScram(ctx context.Context, a any, mech string, tlsOn bool, cs *tls.ConnectionState, at Attempt) *ScramLogin {
	sp, ok := a.(ScramProvider)
	if !ok || !slices.Contains(sp.ScramMechanisms(tlsOn), mech) {
		return nil
	}
	return sp.NewScramLogin(ctx, at, mech == ScramSHA256Plus, cs)
}
