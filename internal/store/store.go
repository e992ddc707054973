package store

import (
	"context"
	"encoding/json"
	"errors"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrNameInUse: a name is already a domain, an alternative or a relay
	// (Mailu: common.fqdn_in_use).
	ErrNameInUse = errors.New("name already used by a domain, alternative or relay")
	// ErrLimit: a domain's max_users, max_aliases or max_quota_bytes is reached.
	ErrLimit = errors.New("domain limit reached")
	// ErrQuotaExceeded: a delivery or append would exceed the user's quota.
	ErrQuotaExceeded = errors.New("mailbox quota exceeded")
	// ErrCommitUnknown: the database connection failed while COMMIT was
	// on its way, so the transaction may or may not have been committed
	// (a PostgreSQL server can commit and lose the reply). Nothing that
	// the transaction may have referenced (a body file) may be removed,
	// and the client must not be told either "stored" or "refused".
	ErrCommitUnknown = errors.New("outcome of commit unknown")
	// ErrBodyStore: the object store that keeps large bodies (BLOB_S3_*)
	// could not store or read one. A delivery that gets it stored
	// nothing: a temporary failure (SMTP 451 4.3.0).
	ErrBodyStore = errors.New("body store unavailable")
)

// Accounts is the account model: everything Mailu's admin owns. Every method
// that changes rows sets UpdatedAt (and CreatedAt on create) itself.
// Deleting a domain deletes its users, aliases, alternatives and managers.
// Deleting a user deletes its tokens and manager rows.
type Accounts interface {
	GetDomain(ctx context.Context, name string) (*Domain, error)
	ListDomains(ctx context.Context) ([]Domain, error)
	CreateDomain(ctx context.Context, d *Domain) error
	UpdateDomain(ctx context.Context, d *Domain) error
	DeleteDomain(ctx context.Context, name string) error

	GetAlternative(ctx context.Context, name string) (*Alternative, error)
	// ListAlternatives lists the alternatives of domain, or all when domain is "".
	ListAlternatives(ctx context.Context, domain string) ([]Alternative, error)
	CreateAlternative(ctx context.Context, a *Alternative) error
	DeleteAlternative(ctx context.Context, name string) error

	GetRelay(ctx context.Context, name string) (*Relay, error)
	ListRelays(ctx context.Context) ([]Relay, error)
	CreateRelay(ctx context.Context, r *Relay) error
	UpdateRelay(ctx context.Context, r *Relay) error
	DeleteRelay(ctx context.Context, name string) error

	GetUser(ctx context.Context, email string) (*User, error)
	// ListUsers lists the users of domain, or all when domain is "".
	ListUsers(ctx context.Context, domain string) ([]User, error)
	CountUsers(ctx context.Context, domain string) (int, error)
	CreateUser(ctx context.Context, u *User) error
	UpdateUser(ctx context.Context, u *User) error
	// SetPasswordHash replaces only the password hash (re-hash on login,
	// password change) so that it never races with other field updates.
	// It clears the SCRAM credentials, which belonged to the old hash.
	SetPasswordHash(ctx context.Context, email, hash string) error
	// SetScram stores SCRAM credentials for the password whose hash is
	// passwordHash; if the hash has changed meanwhile (a concurrent
	// password change), nothing is stored and no error is returned.
	SetScram(ctx context.Context, email, passwordHash string, c ScramCredentials) error
	DeleteUser(ctx context.Context, email string) error

	GetAlias(ctx context.Context, email string) (*Alias, error)
	// ListAliases lists the aliases of domain, or all when domain is "".
	ListAliases(ctx context.Context, domain string) ([]Alias, error)
	// ListWildcardAliases lists the wildcard aliases of domain.
	ListWildcardAliases(ctx context.Context, domain string) ([]Alias, error)
	CountAliases(ctx context.Context, domain string) (int, error)
	CreateAlias(ctx context.Context, a *Alias) error
	UpdateAlias(ctx context.Context, a *Alias) error
	DeleteAlias(ctx context.Context, email string) error

	GetToken(ctx context.Context, id int64) (*Token, error)
	// ListTokens lists the tokens of user, or all when user is "".
	ListTokens(ctx context.Context, user string) ([]Token, error)
	CreateToken(ctx context.Context, t *Token) error // sets t.ID
	UpdateToken(ctx context.Context, t *Token) error
	DeleteToken(ctx context.Context, id int64) error

	ListManagers(ctx context.Context, domain string) ([]string, error)
	ManagedDomains(ctx context.Context, user string) ([]string, error)
	AddManager(ctx context.Context, domain, user string) error
	RemoveManager(ctx context.Context, domain, user string) error

	GetConfig(ctx context.Context, name string) (json.RawMessage, error)
	SetConfig(ctx context.Context, name string, value json.RawMessage) error
}

// Store is a whole backend: the account model, mail storage, and
// transactions. Implementations must be safe for concurrent use.
type Store interface {
	Accounts
	Mail
	// InTx runs fn in one transaction: all of it is committed, or none of
	// it when fn returns an error. fn must use only the Accounts it is given.
	InTx(ctx context.Context, fn func(Accounts) error) error
	Close() error
}

// QuotaError is ErrQuotaExceeded for one user, so that a delivery to
// several mailboxes can leave out the full one and store the rest.
type QuotaError struct{ User string }

func (e *QuotaError) Error() string { return "mailbox quota exceeded for " + e.User }

// Is makes errors.Is(err, ErrQuotaExceeded) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuotaExceeded }
