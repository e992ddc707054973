// Package admin holds the use cases shared by the CLI, the REST API and the
// web UI: creating domains, users, aliases and tokens, changing passwords,
// and exporting and importing the whole configuration in Mailu's format.
// All validation lives here (inventory section 4): addresses are normalised
// (lower case, IDNA), names may not collide, domain limits hold, and every
// change that takes more than one step runs in one store transaction.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// ErrInvalid marks input that does not validate (a bad address, an empty
// password, a negative limit...). Callers map it to a usage error or HTTP 400.
var ErrInvalid = errors.New("invalid input")

// Error is an admin failure with a message meant for people (the CLI prints
// it as is) and a sentinel for programs: ErrInvalid, store.ErrNotFound,
// store.ErrExists, store.ErrNameInUse or store.ErrLimit.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func errorf(kind error, format string, a ...any) error {
	return &Error{Msg: fmt.Sprintf(format, a...), Err: kind}
}

// Options configure a Service. Zero values mean Mailu's defaults.
type Options struct {
	DefaultQuota         int64 // DEFAULT_QUOTA for new users; 0 = 1000000000
	DefaultSpamThreshold int   // DEFAULT_SPAM_THRESHOLD; 0 = 80
	CredentialRounds     int   // CREDENTIAL_ROUNDS (bcrypt cost); 0 = 12
	// DKIMPath is DKIM_PATH with {domain} and {selector} placeholders. When
	// set, Export and Import carry domains' dkim_key as Mailu does.
	DKIMPath string
	// DKIMKeys, when set, are the keys (in the store: what serve and the
	// CLI use); otherwise keys are files at DKIMPath.
	DKIMKeys     *msgauth.Keys
	DKIMSelector string // DKIM_SELECTOR; "" = "dkim"
	Logger       *slog.Logger
	// Welcome, when set, is called once for every user this Service
	// creates (CLI, REST API, web admin, config-import, the initial admin),
	// synchronously after the user row has committed: WELCOME (Mailu:
	// models.py User.send_welcome on creation). Sending at creation, not
	// from a retried job, is what keeps it to one message per creation.
	// It reports its own failures; the user stays created.
	Welcome func(ctx context.Context, u *store.User)
	// FetchSealer seals fetched accounts' passwords that config-import
	// reads in clear (Mailu's export); nil: config-import leaves the
	// fetched accounts alone and warns.
	FetchSealer Sealer
}

// Service runs the admin use cases against a store. It is safe for
// concurrent use.
type Service struct {
	st   store.Store
	opt  Options
	log  *slog.Logger
	keys *msgauth.Keys // DKIM keys; nil when there are none (no DKIMKeys and no DKIMPath)
}

// New returns a Service over st.
func New(st store.Store, opt Options) *Service {
	if opt.DefaultQuota == 0 {
		opt.DefaultQuota = 1000000000
	}
	if opt.DefaultSpamThreshold == 0 {
		opt.DefaultSpamThreshold = 80
	}
	if opt.CredentialRounds == 0 {
		opt.CredentialRounds = 12
	}
	if opt.DKIMSelector == "" {
		opt.DKIMSelector = "dkim"
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, opt: opt, log: log}
	switch {
	case opt.DKIMKeys != nil:
		s.keys = opt.DKIMKeys
	case opt.DKIMPath != "":
		s.keys = msgauth.NewKeysPath(opt.DKIMPath, opt.DKIMSelector)
	}
	return s
}

// Mailu's column sizes (models.py).
const (
	maxLocalpart   = 80
	maxEmail       = 255
	maxDomain      = 80
	maxComment     = 255
	maxDisplayName = 160
	maxSubject     = 255
	maxRelaySMTP   = 80
	maxDestination = 4096 // Mailu: alias destination, comma-joined
)

// normDomain validates and normalises a domain name (IDNA, lower case).
func normDomain(name string) (string, error) {
	n, err := mailaddr.NormalizeDomain(strings.TrimSpace(name))
	if err != nil || n == "" {
		return "", errorf(ErrInvalid, "invalid domain name %q", name)
	}
	n = strings.ToLower(n)
	if len(n) > maxDomain {
		return "", errorf(ErrInvalid, "domain name %q is longer than %d characters", name, maxDomain)
	}
	return n, nil
}

// normEmail validates and normalises an address, returning the address, its
// local part and its domain.
func normEmail(addr string) (email, local, domain string, err error) {
	n, nerr := mailaddr.Normalize(strings.TrimSpace(addr))
	if nerr != nil {
		return "", "", "", errorf(ErrInvalid, "invalid email address %q", addr)
	}
	n = strings.ToLower(n)
	at := strings.LastIndexByte(n, '@')
	if at <= 0 || at == len(n)-1 {
		return "", "", "", errorf(ErrInvalid, "invalid email address %q (want localpart@domain)", addr)
	}
	local, domain = n[:at], n[at+1:]
	if len(local) > maxLocalpart {
		return "", "", "", errorf(ErrInvalid, "local part of %q is longer than %d characters", addr, maxLocalpart)
	}
	if len(n) > maxEmail {
		return "", "", "", errorf(ErrInvalid, "address %q is longer than %d characters", addr, maxEmail)
	}
	if len(domain) > maxDomain {
		return "", "", "", errorf(ErrInvalid, "domain of %q is longer than %d characters", addr, maxDomain)
	}
	return n, local, domain, nil
}

// joinEmail builds and normalises localpart@domain.
func joinEmail(localpart, domain string) (email, local, dom string, err error) {
	if strings.TrimSpace(localpart) == "" {
		return "", "", "", errorf(ErrInvalid, "empty local part")
	}
	if strings.Contains(localpart, "@") {
		return "", "", "", errorf(ErrInvalid, "local part %q must not contain @", localpart)
	}
	d, err := normDomain(domain)
	if err != nil {
		return "", "", "", err
	}
	return normEmail(strings.TrimSpace(localpart) + "@" + d)
}

// NormalizeEmail validates and normalises an address (lower case, IDNA
// domain) the way every admin method does.
func NormalizeEmail(addr string) (string, error) {
	e, _, _, err := normEmail(addr)
	return e, err
}

// NormalizeDomain validates and normalises a domain name.
func NormalizeDomain(name string) (string, error) { return normDomain(name) }

func checkComment(c string) error {
	if len(c) > maxComment {
		return errorf(ErrInvalid, "comment is longer than %d characters", maxComment)
	}
	return nil
}

// hash turns a clear password into the stored hash.
func (s *Service) hash(password string) (string, error) {
	if password == "" {
		return "", errorf(ErrInvalid, "empty password refused")
	}
	h, err := auth.HashPassword(password, s.opt.CredentialRounds)
	if err != nil {
		return "", fmt.Errorf("admin: hash password: %w", err)
	}
	return h, nil
}

// scram derives the SCRAM-SHA-256 credentials stored beside a new
// password (RFC 5802 3). On failure (no randomness) it logs and returns
// none: SCRAM then waits for the user's next password login.
func (s *Service) scram(password string) store.ScramCredentials {
	c, err := auth.NewScramCredentials(password, auth.DefaultScramIterations)
	if err != nil {
		s.log.Error("SCRAM credentials not derived", "err", err)
	}
	return c
}

// nameFree reports ErrNameInUse when name is already a domain, an
// alternative or a relay (Mailu: common.fqdn_in_use).
func nameFree(ctx context.Context, tx store.Accounts, name string) error {
	if _, err := tx.GetDomain(ctx, name); err == nil {
		return errorf(store.ErrNameInUse, "%s is already a domain", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := tx.GetAlternative(ctx, name); err == nil {
		return errorf(store.ErrNameInUse, "%s is already an alternative domain", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := tx.GetRelay(ctx, name); err == nil {
		return errorf(store.ErrNameInUse, "%s is already a relayed domain", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// getDomain loads a domain, turning ErrNotFound into a clear message.
func getDomain(ctx context.Context, tx store.Accounts, name string) (*store.Domain, error) {
	d, err := tx.GetDomain(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(store.ErrNotFound, "domain %s does not exist", name)
	}
	return d, err
}

func getUser(ctx context.Context, tx store.Accounts, email string) (*store.User, error) {
	u, err := tx.GetUser(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(store.ErrNotFound, "user %s does not exist", email)
	}
	return u, err
}

// emailFree reports ErrExists when email is already a user or an alias
// (Mailu: Domain.has_email).
func emailFree(ctx context.Context, tx store.Accounts, email string) error {
	if _, err := tx.GetUser(ctx, email); err == nil {
		return errorf(store.ErrExists, "%s is already a user", email)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := tx.GetAlias(ctx, email); err == nil {
		return errorf(store.ErrExists, "%s is already an alias", email)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}
