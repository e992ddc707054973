// Package store holds Petrel's domain model (Mailu's data model, inventory
// section 4), the interfaces the rest of the code uses to reach it, and the
// sentinel errors every backend returns. Only internal/store/sqlstore speaks
// SQL; callers never see which database is behind these interfaces.
package store

import (
	"encoding/json"
	"time"
)

// Meta is what every Mailu table carries (models.py Base).
type Meta struct {
	CreatedAt time.Time // Mailu stores a date; Petrel keeps the full time
	UpdatedAt time.Time // zero until the first update, as in Mailu
	Comment   string    // at most 255 characters
}

// Domain is a local mail domain (Mailu: domain).
type Domain struct {
	Name          string // IDNA (punycode), lower case
	MaxUsers      int    // -1 = unlimited
	MaxAliases    int    // -1 = unlimited
	MaxQuotaBytes int64  // 0 = unlimited
	SignupEnabled bool
	Meta
}

// Alternative is a domain alias: x@alternative is x@domain (Mailu: alternative).
type Alternative struct {
	Name       string // IDNA, lower case
	DomainName string
	Meta
}

// Relay is a domain Petrel relays for without authentication (Mailu: relay).
type Relay struct {
	Name string // IDNA, lower case
	SMTP string // transport: "", "host[:port]", "[host]:port", "mx:host", "lmtp:host:port"
	Meta
}

// ScramCredentials are what a SCRAM-SHA-256 server keeps of a password
// (RFC 5802 3, RFC 7677): the salt and iteration count of
// SaltedPassword = PBKDF2-HMAC-SHA-256(password, Salt, Iterations),
// StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"). The password cannot be
// recovered from them, but they are secrets: ServerKey and StoredKey let
// anyone impersonate the server or, with one eavesdropped exchange, the
// user.
type ScramCredentials struct {
	Iterations int // 0 = none
	Salt       []byte
	StoredKey  []byte // 32 bytes
	ServerKey  []byte // 32 bytes
}

// Valid reports whether c holds usable keys.
func (c ScramCredentials) Valid() bool {
	return c.Iterations > 0 && len(c.Salt) > 0 && len(c.StoredKey) == 32 && len(c.ServerKey) == 32
}

// User is a mailbox owner (Mailu: user). Defaults are in NewUser.
type User struct {
	Email      string // localpart@domain, lower case, domain in IDNA
	Localpart  string
	DomainName string
	Password   string // hash in passlib format (bcrypt_sha256 by default)
	// Scram holds the SCRAM-SHA-256 keys of the current password (set
	// with the password, or at the first password login after it);
	// zero when unknown. Changing the password hash clears it.
	Scram ScramCredentials

	QuotaBytes     int64 // 0 = unlimited
	QuotaBytesUsed int64

	GlobalAdmin   bool
	Enabled       bool
	EnableIMAP    bool
	EnablePOP     bool
	AllowSpoofing bool

	ForwardEnabled     bool
	ForwardDestination []string // stored comma-separated, as in Mailu
	ForwardKeep        bool

	ReplyEnabled   bool
	ReplySubject   string
	ReplyBody      string
	ReplyStartDate time.Time // a date (UTC midnight); Mailu default 1900-01-01
	ReplyEndDate   time.Time // a date (UTC midnight); Mailu default 2999-12-31

	DisplayedName     string
	SpamEnabled       bool
	SpamMarkAsRead    bool
	SpamThreshold     int // percent
	ChangePwNextLogin bool
	Meta
}

// Mailu's defaults for the auto-reply window (models.py User.reply_startdate/enddate).
var (
	DefaultReplyStart = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	DefaultReplyEnd   = time.Date(2999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// NewUser returns a user with every field at Mailu's default. quota and
// spamThreshold come from DEFAULT_QUOTA and DEFAULT_SPAM_THRESHOLD.
func NewUser(localpart, domain string, quota int64, spamThreshold int) User {
	return User{
		Email:          localpart + "@" + domain,
		Localpart:      localpart,
		DomainName:     domain,
		QuotaBytes:     quota,
		Enabled:        true,
		EnableIMAP:     true,
		EnablePOP:      true,
		ForwardKeep:    true,
		ReplyStartDate: DefaultReplyStart,
		ReplyEndDate:   DefaultReplyEnd,
		SpamEnabled:    true,
		SpamMarkAsRead: true,
		SpamThreshold:  spamThreshold,
	}
}

// ReplyActive reports whether the auto-reply applies on day now (Mailu: reply_active).
func (u *User) ReplyActive(now time.Time) bool {
	if !u.ReplyEnabled {
		return false
	}
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return !day.Before(u.ReplyStartDate) && !day.After(u.ReplyEndDate)
}

// Alias maps an address (or a SQL LIKE pattern when Wildcard) to destinations
// (Mailu: alias).
type Alias struct {
	Email       string // localpart@domain; with Wildcard the localpart may hold % and _
	Localpart   string
	DomainName  string
	Wildcard    bool
	Destination []string // stored comma-separated, at most 4096 characters
	Meta
}

// Token is an application password (Mailu: token).
type Token struct {
	ID        int64
	UserEmail string
	Password  string   // hash (pbkdf2_sha256, 1 round, as Mailu)
	IP        []string // optional allow-list of CIDRs or addresses; empty = anywhere
	Meta
}

// Manager lets a user manage a domain (Mailu: manager).
type Manager struct {
	DomainName string
	UserEmail  string
}

// ConfigEntry is Mailu's generic key/value table (Mailu: config).
type ConfigEntry struct {
	Name  string
	Value json.RawMessage
}
