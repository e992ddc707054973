package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// scramStorer is optional: with it, SCRAM credentials are stored when a
// password is verified (store.Accounts has it).
type scramStorer interface {
	SetScram(ctx context.Context, email, passwordHash string, c store.ScramCredentials) error
}

// ScramLogin is one SCRAM login through the auth core; it implements
// sasl.Server. After the exchange, Result returns the logged-in user.
type ScramLogin struct {
	*ScramServer
	res *Result
}

// Result returns the successful login, or nil.
func (l *ScramLogin) Result() *Result {
	if l.ScramServer.step != 3 || !l.ScramServer.valid {
		return nil
	}
	return l.res
}

// ScramMechanisms lists the SCRAM mechanisms to advertise: none with
// AUTH_REQUIRE_TOKENS (app tokens are stored hashed, so SCRAM cannot use
// them, and passwords are refused), -PLUS only over TLS, as mox does.
func (a *Authenticator) ScramMechanisms(tlsOn bool) []string {
	switch {
	case a.requireTokens:
		return nil
	case tlsOn:
		return []string{ScramSHA256Plus, ScramSHA256}
	}
	return []string{ScramSHA256}
}

// NewScramLogin starts a SCRAM-SHA-256 (plus = -PLUS) login for at
// (Protocol, Port, Remote, Log; Username and Password are ignored) over a
// connection whose TLS state is cs (nil = plaintext). The login goes
// through the same checks as Authenticate, in the same order, once the
// client's proof is in: the limiter (a slot is reserved before the proof
// is checked), full address, existing user, enabled / protocol flags,
// AUTH_REQUIRE_TOKENS, then the proof. Each refusal logs the same
// fail2ban line; SCRAM exchanges never carry the password.
func (a *Authenticator) NewScramLogin(ctx context.Context, at Attempt, plus bool, cs *tls.ConnectionState) *ScramLogin {
	l := &ScramLogin{}
	var user *store.User
	var lookupReason string
	mech := ScramSHA256
	if plus {
		mech = ScramSHA256Plus
	}
	l.ScramServer = NewScramServer(ScramConfig{
		Plus:    plus,
		TLS:     cs,
		FakeKey: a.fpKey,
		Credentials: func(username string) (store.ScramCredentials, bool, error) {
			if !strings.Contains(username, "@") {
				lookupReason = ReasonNotFullAddress
				return store.ScramCredentials{}, false, nil
			}
			t := a.begin(ctx, Attempt{Username: username, Protocol: at.Protocol, Port: at.Port, Remote: at.Remote, Log: at.Log})
			if !t.normOK {
				lookupReason = ReasonUnknownUser
				user = nil
				return store.ScramCredentials{}, false, nil
			}
			u, err := a.users.GetUser(ctx, t.limitKey)
			switch {
			case errors.Is(err, store.ErrNotFound):
				lookupReason, user = ReasonUnknownUser, nil
				return store.ScramCredentials{}, false, nil
			case err != nil:
				return store.ScramCredentials{}, false, a.internal(t, err)
			}
			user = u
			if u.Scram.Valid() {
				return u.Scram, true, nil
			}
			if c, ok := ScramFromHash(u.Password); ok {
				return c, true, nil
			}
			return store.ScramCredentials{}, false, nil
		},
		Finish: func(o ScramOutcome) error {
			at := at
			at.Username, at.Password = o.Username, ""
			t := a.begin(ctx, at)
			if refused, err := a.admit(t, true); err != nil {
				return err
			} else if refused {
				return ErrRateLimited
			}
			if lookupReason != "" || user == nil {
				r := lookupReason
				if r == "" {
					r = ReasonUnknownUser
				}
				return a.fail(t, Outcome{Kind: OutcomeUnknown}, r)
			}
			wrong := Outcome{Kind: OutcomeWrong, Fingerprint: a.fingerprint(user.Email, "\x00scram\x00"+string(o.ClientKey))}
			if reason := a.gate(t, user); reason != "" {
				return a.fail(t, wrong, reason)
			}
			if a.requireTokens && t.Protocol != "web" && t.Protocol != "sso" {
				return a.fail(t, wrong, ReasonRequireTokens)
			}
			if !o.Valid {
				return a.fail(t, wrong, o.Reason)
			}
			l.res = a.succeed(t, &Result{User: user}, strings.ToLower(mech))
			return nil
		},
	})
	return l
}

// storeScram derives and stores SCRAM credentials for a password just
// verified against stored (the hash now in the store), unless the user
// has them or the store cannot keep them. Failures only log: the login
// itself has succeeded.
func (a *Authenticator) storeScram(t *attempt, email, stored, password string) {
	st, ok := a.users.(scramStorer)
	if !ok {
		return
	}
	if _, fromHash := ScramFromHash(stored); fromHash {
		return // derived from the hash itself at each SCRAM login
	}
	c, err := NewScramCredentials(password, DefaultScramIterations)
	if err == nil {
		err = st.SetScram(t.ctx, email, stored, c)
	}
	if err != nil {
		t.log.LogAttrs(t.ctx, slog.LevelError, "SCRAM credentials not stored", slog.String("user", email), slog.Any("err", err))
	}
}
