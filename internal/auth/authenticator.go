package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
)

// Users is what the Authenticator reads and writes; store.Store (and
// store.Accounts) satisfy it.
type Users interface {
	GetUser(ctx context.Context, email string) (*store.User, error)
	ListTokens(ctx context.Context, email string) ([]store.Token, error)
	SetPasswordHash(ctx context.Context, email, hash string) error
}

// tokenUpdater is optional: with it, legacy sha256_crypt tokens are
// re-hashed on use (Mailu: Token.check_password). store.Accounts has it.
type tokenUpdater interface {
	UpdateToken(ctx context.Context, t *store.Token) error
}

var _ Users = (store.Accounts)(nil)

// Mailu's defaults (configuration.py, docs/configuration.rst).
var (
	DefaultIPLimit   = ratelimit.Rate{Count: 5, Per: time.Hour}       // AUTH_RATELIMIT_IP 5/hour
	DefaultUserLimit = ratelimit.Rate{Count: 50, Per: 24 * time.Hour} // AUTH_RATELIMIT_USER 50/day
)

const (
	defaultIPv4Mask        = 24             // AUTH_RATELIMIT_IP_V4_MASK
	defaultIPv6Mask        = 48             // AUTH_RATELIMIT_IP_V6_MASK
	defaultExemptionLength = 24 * time.Hour // AUTH_RATELIMIT_EXEMPTION_LENGTH 86400
)

// Failure reasons, the last word of the fail2ban line and the "reason"
// attribute.
const (
	ReasonBadAuth          = "badauth"
	ReasonRateLimit        = "ratelimit"
	ReasonDisabled         = "disabled"
	ReasonNotFullAddress   = "not-full-address"
	ReasonTokenIP          = "token-ip"
	ReasonRequireTokens    = "require-tokens"
	ReasonUnknownUser      = "unknown-user"
	ReasonProtocolDisabled = "protocol-disabled"
	ReasonPort25           = "port25"
)

// Options configures an Authenticator. Zero values take Mailu's defaults.
type Options struct {
	Users Users

	IPLimit         ratelimit.Rate // AUTH_RATELIMIT_IP; zero = 5/hour
	UserLimit       ratelimit.Rate // AUTH_RATELIMIT_USER; zero = 50/day
	UserNetLimit    ratelimit.Rate // AUTH_RATELIMIT_USER_NETWORK; zero = 10/day
	IPv4Mask        int            // AUTH_RATELIMIT_IP_V4_MASK; 0 = 24
	IPv6Mask        int            // AUTH_RATELIMIT_IP_V6_MASK; 0 = 48
	Exemptions      []netip.Prefix // AUTH_RATELIMIT_EXEMPTION: never limited
	ExemptionLength time.Duration  // AUTH_RATELIMIT_EXEMPTION_LENGTH; 0 = 24h, < 0 = no exemption after login
	RequireTokens   bool           // AUTH_REQUIRE_TOKENS
	Rounds          int            // CREDENTIAL_ROUNDS; 0 = 12

	Logger *slog.Logger     // nil = discard
	Now    func() time.Time // nil = time.Now

	// Limits keeps the failed-login counters; nil = a MemoryLimits with
	// the rates above (per process). A store shared by several nodes
	// implements LoginLimiter instead, and then the rates above are its
	// business.
	Limits LoginLimiter
	// FingerprintKey keys the password fingerprints the limiter counts
	// distinct wrong passwords by. Nodes that share Limits must share it
	// (derive it from SECRET_KEY); nil = random per process.
	FingerprintKey []byte

	CacheSize int // credential cache entries; 0 = DefaultCacheSize, < 0 = off

	// OnFailure, when set, is called for each refused login (the status
	// page's counters).
	OnFailure func()
}

// DefaultUserNetLimit is AUTH_RATELIMIT_USER_NETWORK's default: a fifth
// of AUTH_RATELIMIT_USER's default, so one network cannot spend an
// account's whole budget.
var DefaultUserNetLimit = ratelimit.Rate{Count: 10, Per: 24 * time.Hour}

// Authenticator is Petrel's one login check, shared by SMTP submission,
// IMAP, POP3 and the web (Mailu: internal/nginx.py check_credentials plus
// internal/views/auth.py and limiter.py). It is safe for concurrent use.
type Authenticator struct {
	users         Users
	limits        LoginLimiter
	v4, v6        int
	exemptNets    []netip.Prefix
	exemptLen     time.Duration
	requireTokens bool
	rounds        int
	log           *slog.Logger
	now           func() time.Time
	fpKey         []byte
	cache         *credCache
	flight        *flightGroup // concurrent identical password checks
	onFailure     func()

	// Seams for tests (count bcrypt runs); production uses the real ones.
	verify func(hash, password string) (bool, error)
	hash   func(password string, rounds int) (string, error)
}

// New builds an Authenticator. Options.Users is required. Out-of-range
// Rounds or masks (config.Validate rejects them first) fall back to the
// defaults, with an ERROR log line.
func New(o Options) *Authenticator {
	if o.Users == nil {
		panic("auth.New: Options.Users is nil")
	}
	a := &Authenticator{
		users: o.Users, limits: o.Limits,
		v4: o.IPv4Mask, v6: o.IPv6Mask, exemptNets: o.Exemptions, exemptLen: o.ExemptionLength,
		requireTokens: o.RequireTokens, rounds: o.Rounds, log: o.Logger, now: o.Now,
		fpKey: o.FingerprintKey, cache: newCredCache(o.CacheSize), flight: newFlightGroup(), onFailure: o.OnFailure,
		verify: verifyPassword, hash: HashPassword,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.rounds == 0 {
		a.rounds = DefaultRounds
	}
	if a.rounds < minRounds || a.rounds > maxRounds {
		a.log.Error("CREDENTIAL_ROUNDS out of range, using the default", "rounds", a.rounds, "default", DefaultRounds)
		a.rounds = DefaultRounds
	}
	if a.v4 <= 0 || a.v4 > 32 {
		a.v4 = defaultIPv4Mask
	}
	if a.v6 <= 0 || a.v6 > 128 {
		a.v6 = defaultIPv6Mask
	}
	if o.IPv4Mask != 0 && o.IPv4Mask != a.v4 || o.IPv6Mask != 0 && o.IPv6Mask != a.v6 {
		a.log.Error("rate-limit mask out of range, using the default", "v4", o.IPv4Mask, "v6", o.IPv6Mask)
	}
	if a.exemptLen == 0 {
		a.exemptLen = defaultExemptionLength
	}
	if a.limits == nil {
		r := LimitRates{Network: o.IPLimit, Account: o.UserLimit, AccountNetwork: o.UserNetLimit}
		if r.Network == (ratelimit.Rate{}) {
			r.Network = DefaultIPLimit
		}
		if r.Account == (ratelimit.Rate{}) {
			r.Account = DefaultUserLimit
		}
		if r.AccountNetwork == (ratelimit.Rate{}) {
			r.AccountNetwork = DefaultUserNetLimit
		}
		a.limits = NewMemoryLimits(r, a.now)
	}
	if len(a.fpKey) == 0 {
		a.fpKey = make([]byte, 32)
		rand.Read(a.fpKey) // never fails (crypto/rand, Go >= 1.24)
	}
	return a
}

// attempt is one Authenticate call in progress.
type attempt struct {
	Attempt
	ctx      context.Context
	log      *slog.Logger
	remote   netip.Addr // unmapped
	network  string     // the limiter key: remote masked to /24 or /48
	logUser  string     // what the log line names
	limitKey string     // the account the limiter counts on
	normOK   bool       // the username is a valid address (limitKey is it)
	subject  bool       // outside AUTH_RATELIMIT_EXEMPTION
	adm      Admission  // the limiter's answer, when subject
	limit    string     // the limit that refused it, for the log
}

// Authenticate checks one login in Mailu's order:
//  1. the limiter (see limits.go), unless the client is in
//     AUTH_RATELIMIT_EXEMPTION or the password looks like an app token
//     (auth.py nginx_authentication: tokens are not rate-limited);
//  2. the username must be a full address (nginx.py handle_authentication);
//  3. the user must exist;
//  4. enabled, enable_imap, enable_pop (check_credentials);
//  5. app tokens, with their IP allow-list; AUTH_REQUIRE_TOKENS keeps
//     real passwords to the web;
//  6. the password hash, through the credential cache; an outdated
//     scheme is re-hashed.
//
// It returns ErrRateLimited or ErrBadCredentials for a refused login, and
// another error only when a store could not answer. Every refusal logs one
// WARN line for fail2ban; the password is never logged.
func (a *Authenticator) Authenticate(ctx context.Context, at Attempt) (*Result, error) {
	t := a.begin(ctx, at)
	password := string(at.Password)
	tokenShaped := IsTokenShaped(password)
	if refused, err := a.admit(t, !tokenShaped); err != nil {
		return nil, err
	} else if refused {
		return nil, ErrRateLimited
	}
	user, err := a.lookup(t)
	if err != nil {
		return nil, err
	}
	res, how, err := a.check(t, user, password, tokenShaped)
	if err != nil {
		a.done(t, Outcome{Kind: OutcomeNone})
		return nil, a.internal(t, err)
	}
	if res == nil {
		return nil, a.fail(t, Outcome{Kind: OutcomeWrong, Fingerprint: a.fingerprint(user.Email, password)}, how)
	}
	return a.succeed(t, res, how), nil
}

// begin sets up the bookkeeping of one attempt.
func (a *Authenticator) begin(ctx context.Context, at Attempt) *attempt {
	t := &attempt{Attempt: at, ctx: ctx, log: at.Log, remote: at.Remote.Unmap()}
	if t.log == nil {
		t.log = a.log
	}
	t.network = a.network(t.remote)
	if email, err := mailaddr.Normalize(at.Username); err == nil {
		t.logUser, t.limitKey, t.normOK = email, email, true
	} else {
		t.logUser, t.limitKey = sanitizeUser(at.Username), strings.ToLower(at.Username)
	}
	t.subject = !a.exemptNet(t.remote)
	t.adm = Admission{Key: LimitKey{Account: t.limitKey, Network: t.network, Addr: remoteString(t.remote)}}
	return t
}

// admit asks the limiter for a slot (limited) or only remembers the key
// for counting the outcome (an app token). refused means the attempt
// got ErrRateLimited and its log line.
func (a *Authenticator) admit(t *attempt, limited bool) (refused bool, err error) {
	if !t.subject || !limited {
		return false, nil
	}
	adm, err := a.admitWaiting(t.ctx, t.adm.Key)
	if err != nil {
		return false, a.internal(t, err)
	}
	t.adm = adm
	if adm.Refused != "" {
		t.limit = adm.Refused
		a.logFailure(t, ReasonRateLimit)
		return true, nil
	}
	return false, nil
}

// admitBusyWait bounds how long a login waits for others in flight from
// its network or for its account. Slots are held only while a hash is
// checked (tens of milliseconds, seconds on a loaded machine).
const admitBusyWait = 10 * time.Second

// admitWaiting asks the limiter, and while the answer is "busy" (refused
// only because other logins are still being checked) waits for them and
// asks again. Ten colleagues behind one NAT opening their mail at nine,
// or one client opening eleven connections at once, were refused while
// the first logins' bcrypt ran; a burst of guesses still meets the limit
// once the first ones have counted.
func (a *Authenticator) admitWaiting(ctx context.Context, k LimitKey) (Admission, error) {
	deadline := time.Now().Add(admitBusyWait)
	pause := 5 * time.Millisecond
	for {
		adm, err := a.limits.Admit(ctx, k)
		if err != nil || !adm.Busy || time.Now().Add(pause).After(deadline) {
			return adm, err
		}
		select {
		case <-ctx.Done():
			return adm, nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// lookup finds the attempt's user; a refusal (bare local part, unknown
// user) is counted and logged and comes back as ErrBadCredentials (for a
// bare local part: ErrNotFullAddress, which says what to type instead).
func (a *Authenticator) lookup(t *attempt) (*store.User, error) {
	if !strings.Contains(t.Username, "@") {
		// Mailu: nginx.py looks up only addresses with an @; there is no
		// default domain.
		_ = a.fail(t, Outcome{Kind: OutcomeUnknown}, ReasonNotFullAddress)
		return nil, ErrNotFullAddress
	}
	if !t.normOK {
		return nil, a.fail(t, Outcome{Kind: OutcomeUnknown}, ReasonUnknownUser)
	}
	user, err := a.users.GetUser(t.ctx, t.limitKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, a.fail(t, Outcome{Kind: OutcomeUnknown}, ReasonUnknownUser)
	}
	if err != nil {
		a.done(t, Outcome{Kind: OutcomeNone})
		return nil, a.internal(t, err)
	}
	return user, nil
}

// succeed records and logs a successful login. Mailu: it exempts the
// address (here: for this account only) but not after port 25.
func (a *Authenticator) succeed(t *attempt, res *Result, how string) *Result {
	o := Outcome{Kind: OutcomeSuccess}
	if t.Port == 25 {
		o.Kind = OutcomeNone
	} else if a.exemptLen > 0 && t.remote.IsValid() {
		o.ExemptFor = a.exemptLen
	}
	a.done(t, o)
	t.log.LogAttrs(t.ctx, slog.LevelInfo, a.line(t, "success: "+how), a.attrs(t, slog.String("method", how))...)
	return res
}

// fail records a refused login with the limiter and logs its line.
func (a *Authenticator) fail(t *attempt, o Outcome, reason string) error {
	a.done(t, o)
	a.logFailure(t, reason)
	return ErrBadCredentials
}

// done reports an outcome to the limiter (for logins subject to limits).
func (a *Authenticator) done(t *attempt, o Outcome) {
	if !t.subject {
		return
	}
	if err := a.limits.Done(t.ctx, t.adm, o); err != nil {
		a.limiterError(t, err)
	}
}

// check runs Mailu's check_credentials for an existing user. It returns a
// Result on success with how ("password" or "token-<id>"), or nil and the
// failure reason.
func (a *Authenticator) check(t *attempt, user *store.User, password string, tokenShaped bool) (*Result, string, error) {
	if reason := a.gate(t, user); reason != "" {
		return nil, reason, nil
	}
	tokenIPRefused := false
	if tokenShaped {
		tokens, err := a.users.ListTokens(t.ctx, user.Email)
		if err != nil {
			return nil, "", err
		}
		for i := range tokens {
			tok := &tokens[i]
			ok, legacy := VerifyToken(tok.Password, password)
			if !ok {
				continue
			}
			if !TokenAllows(tok.IP, t.remote) {
				tokenIPRefused = true
				continue
			}
			if legacy {
				a.upgradeToken(t, tok, password)
			}
			return &Result{User: user, ViaToken: true}, "token-" + strconv.FormatInt(tok.ID, 10), nil
		}
	}
	if a.requireTokens && t.Protocol != "web" && t.Protocol != "sso" {
		if tokenIPRefused {
			return nil, ReasonTokenIP, nil
		}
		return nil, ReasonRequireTokens, nil
	}
	if a.checkPassword(t, user, password) {
		return &Result{User: user}, "password", nil
	}
	if tokenIPRefused {
		return nil, ReasonTokenIP, nil
	}
	return nil, ReasonBadAuth, nil
}

// gate returns why user may not log in over t's protocol at all, or "":
// enabled, enable_imap, enable_pop (Mailu: check_credentials).
func (a *Authenticator) gate(t *attempt, user *store.User) string {
	switch {
	case !user.Enabled:
		return ReasonDisabled
	case t.Protocol == "imap" && !user.EnableIMAP, t.Protocol == "pop3" && !user.EnablePOP:
		return ReasonProtocolDisabled
	}
	return ""
}

// checkPassword verifies password against the user's stored hash, through
// the credential cache, and re-hashes an outdated hash on success (Mailu:
// models.py User.check_password, CryptContext verify_and_update).
// Concurrent identical checks share one verification (see flightGroup);
// each caller still logs its own outcome and counts as its own attempt.
func (a *Authenticator) checkPassword(t *attempt, user *store.User, password string) bool {
	if password == "" {
		return false
	}
	if a.cache.check(user.Email, user.Password, password) {
		return true
	}
	needScram := !user.Scram.Valid()
	res := a.flight.do(user.Email, user.Password, password, func() flightResult {
		return a.verifyOnce(t, user.Email, user.Password, password, needScram)
	})
	if res.err != nil {
		// A data problem for the admin, not a client failure: no
		// fail2ban-style line here (the refusal logs one).
		t.log.LogAttrs(t.ctx, slog.LevelError, "stored password hash cannot be verified", slog.String("user", user.Email), slog.Any("err", res.err))
		return false
	}
	if res.ok {
		user.Password = res.stored
	}
	return res.ok
}

// verifyOnce is the expensive part of checkPassword, run once per
// group of identical concurrent checks: the hash, the re-hash of an
// outdated scheme (so it is stored once), and filling the cache.
//
// needScram: the user has no SCRAM credentials yet; they are derived
// and stored now (also after a re-hash, which clears them).
func (a *Authenticator) verifyOnce(t *attempt, email, stored, password string, needScram bool) flightResult {
	// An identical check that finished between our cache miss and now
	// has filled the cache: no need to verify again.
	if a.cache.check(email, stored, password) {
		return flightResult{ok: true, stored: stored}
	}
	ok, err := a.verify(stored, password)
	if err != nil || !ok {
		return flightResult{err: err}
	}
	if NeedsRehash(stored, a.rounds) {
		h, err := a.hash(password, a.rounds)
		if err == nil {
			err = a.users.SetPasswordHash(t.ctx, email, h)
		}
		if err != nil {
			t.log.LogAttrs(t.ctx, slog.LevelError, "password re-hash failed", slog.String("user", email), slog.Any("err", err))
			return flightResult{ok: true, stored: stored} // not cached, so the next login tries again
		}
		stored, needScram = h, true
	}
	if needScram {
		a.storeScram(t, email, stored, password)
	}
	a.cache.put(email, stored, password)
	return flightResult{ok: true, stored: stored}
}

func (a *Authenticator) upgradeToken(t *attempt, tok *store.Token, token string) {
	u, ok := a.users.(tokenUpdater)
	if !ok {
		return
	}
	h, err := HashToken(token)
	if err == nil {
		up := *tok
		up.Password = h
		err = u.UpdateToken(t.ctx, &up)
	}
	if err != nil {
		t.log.LogAttrs(t.ctx, slog.LevelError, "legacy token re-hash failed", slog.Int64("token", tok.ID), slog.Any("err", err))
	}
}

// fingerprint is a short keyed hash of a password, enough to tell wrong
// passwords apart in the limiter without keeping them (Mailu: the last 6
// hex of HMAC(user, pw); 16 here, under a secret key).
func (a *Authenticator) fingerprint(email, password string) string {
	m := hmac.New(sha256.New, a.fpKey)
	m.Write([]byte(email))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// exemptNet reports whether remote is in AUTH_RATELIMIT_EXEMPTION (Mailu:
// limiter.py is_subject_to_rate_limits, the configured half).
func (a *Authenticator) exemptNet(remote netip.Addr) bool {
	if !remote.IsValid() {
		return false
	}
	for _, p := range a.exemptNets {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// network is the IP limiter's key: the client address masked to /24 or
// /48 (Mailu: utils.extract_network_from_ip).
func (a *Authenticator) network(remote netip.Addr) string {
	bits := a.v6
	if remote.Is4() {
		bits = a.v4
	}
	p, err := remote.Prefix(bits)
	if err != nil {
		return "invalid"
	}
	return p.String()
}

// IPRateLimited reports whether remote's network is over AUTH_RATELIMIT_IP
// now (and not in AUTH_RATELIMIT_EXEMPTION), for protocols that want to
// refuse early. A store error counts as not limited; Authenticate checks
// again, and may still let an account whose network is proven for it in.
func (a *Authenticator) IPRateLimited(ctx context.Context, remote netip.Addr) bool {
	remote = remote.Unmap()
	if a.exemptNet(remote) {
		return false
	}
	limited, err := a.limits.NetworkLimited(ctx, a.network(remote))
	return err == nil && limited
}

// Port25Message is what Port25Auth logs: port 25 never offers AUTH.
const Port25Message = "port 25 does not accept AUTH (server-to-server only); mail clients must submit on port 465 (implicit TLS) or 587 (STARTTLS)"

// Port25Auth records an AUTH attempt on port 25: it counts against the IP
// limiter (Mailu: auth.py, the is_port_25 branch calls rate_limit_ip
// without a username, so every attempt counts) and logs one WARN line
// that tells the admin where clients should submit.
func (a *Authenticator) Port25Auth(ctx context.Context, remote netip.Addr, username string, log *slog.Logger) {
	t := &attempt{Attempt: Attempt{Username: username, Protocol: "smtp", Port: 25, Remote: remote},
		ctx: ctx, log: log, remote: remote.Unmap()}
	if t.log == nil {
		t.log = a.log
	}
	t.network = a.network(t.remote)
	t.logUser = sanitizeUser(username)
	if !a.exemptNet(t.remote) {
		if err := a.limits.HitNetwork(ctx, t.network); err != nil {
			a.limiterError(t, err)
		}
	}
	t.log.LogAttrs(ctx, slog.LevelWarn, a.line(t, "failed: "+Port25Message), a.attrs(t, slog.String("reason", ReasonPort25))...)
}

// line is Mailu's fail2ban-friendly log message (nginx.py):
// "Login attempt for: <user>/<proto>/<port> from: <ip>: <outcome>".
func (a *Authenticator) line(t *attempt, outcome string) string {
	return "Login attempt for: " + t.logUser + "/" + t.Protocol + "/" + strconv.Itoa(t.Port) + " from: " + remoteString(t.remote) + ": " + outcome
}

func (a *Authenticator) attrs(t *attempt, extra ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		slog.String("user", t.logUser),
		slog.String("protocol", t.Protocol),
		slog.Int("port", t.Port),
		slog.String("remote", remoteString(t.remote)),
	}, extra...)
}

func (a *Authenticator) logFailure(t *attempt, reason string) {
	attrs := a.attrs(t, slog.String("reason", reason))
	if t.limit != "" {
		attrs = append(attrs, slog.String("limit", t.limit))
	}
	if h := reasonHint(reason); h != "" {
		attrs = append(attrs, slog.String("hint", h))
	}
	t.log.LogAttrs(t.ctx, slog.LevelWarn, a.line(t, "failed: "+reason), attrs...)
	if a.onFailure != nil {
		a.onFailure()
	}
}

// reasonHint tells an admin, in the log, what the user must change; the
// client itself only ever sees the generic failure (no user enumeration).
func reasonHint(reason string) string {
	switch reason {
	case ReasonNotFullAddress:
		return "the username is not a full email address: the user must log in as user@domain"
	case ReasonDisabled:
		return "the account is disabled"
	case ReasonUnknownUser:
		return "no such user"
	case ReasonProtocolDisabled:
		return "this protocol is switched off for the user (enable_imap / enable_pop)"
	case ReasonTokenIP:
		return "the app token is not allowed from this IP address"
	case ReasonRequireTokens:
		return "AUTH_REQUIRE_TOKENS is on: mail clients must use an app token, not the password"
	case ReasonRateLimit:
		return "too many failed logins (see the limit attribute: network = AUTH_RATELIMIT_IP, account-network = AUTH_RATELIMIT_USER_NETWORK, account = AUTH_RATELIMIT_USER from a network never used by this account); wait, log in from a network the account has used, use an app token, or add the network to AUTH_RATELIMIT_EXEMPTION"
	}
	return ""
}

func (a *Authenticator) limiterError(t *attempt, err error) {
	t.log.LogAttrs(t.ctx, slog.LevelError, "rate-limit store error", slog.String("remote", remoteString(t.remote)), slog.Any("err", err))
}

// internal logs a store failure (not a refusal: no fail2ban line) and
// returns it wrapped; protocols answer with a temporary failure.
func (a *Authenticator) internal(t *attempt, err error) error {
	t.log.LogAttrs(t.ctx, slog.LevelError, a.line(t, "error"), a.attrs(t, slog.Any("err", err))...)
	return fmt.Errorf("auth: %w", err)
}

func remoteString(ip netip.Addr) string {
	if !ip.IsValid() {
		return "unknown"
	}
	return ip.String()
}

// sanitizeUser makes a client-supplied username safe for one log line:
// at most 320 bytes (RFC 5321 limits), quoted if it holds anything but
// printable characters.
func sanitizeUser(s string) string {
	if len(s) > 320 {
		s = s[:320]
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == ' ' {
			return strconv.QuoteToASCII(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
