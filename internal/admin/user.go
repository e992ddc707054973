package admin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

// CreateOptions say how AddUser and AddAlias treat what is missing.
type CreateOptions struct {
	// CreateDomain creates the domain with default limits when it does not
	// exist, as Mailu's manage.py does for admin, user, user-import and
	// alias. The REST API and web UI leave it false: the domain must exist.
	CreateDomain bool
	// PasswordIsHash stores the password argument as the hash, unchanged,
	// Dovecot {SCHEME} prefix included (flask mailu user-import).
	PasswordIsHash bool
}

// NewUser returns a user with Mailu's defaults and this Service's
// DEFAULT_QUOTA and DEFAULT_SPAM_THRESHOLD. AddUser validates it.
func (s *Service) NewUser(localpart, domain string) store.User {
	return store.NewUser(localpart, domain, s.opt.DefaultQuota, s.opt.DefaultSpamThreshold)
}

// validateUser normalises the address parts and checks every field.
func validateUser(u *store.User) error {
	var err error
	if u.Localpart != "" || u.DomainName != "" {
		u.Email, u.Localpart, u.DomainName, err = joinEmail(u.Localpart, u.DomainName)
	} else {
		u.Email, u.Localpart, u.DomainName, err = normEmail(u.Email)
	}
	if err != nil {
		return err
	}
	if u.QuotaBytes < 0 {
		return errorf(ErrInvalid, "quota_bytes must be 0 (unlimited) or more, not %d", u.QuotaBytes)
	}
	if u.SpamThreshold < 0 || u.SpamThreshold > 100 {
		return errorf(ErrInvalid, "spam_threshold must be between 0 and 100, not %d", u.SpamThreshold)
	}
	if len(u.DisplayedName) > maxDisplayName {
		return errorf(ErrInvalid, "displayed_name is longer than %d characters", maxDisplayName)
	}
	if len(u.ReplySubject) > maxSubject {
		return errorf(ErrInvalid, "reply_subject is longer than %d characters", maxSubject)
	}
	if u.ForwardDestination, err = normDestinations(u.ForwardDestination, "forward_destination"); err != nil {
		return err
	}
	if u.ReplyStartDate.IsZero() {
		u.ReplyStartDate = store.DefaultReplyStart
	}
	if u.ReplyEndDate.IsZero() {
		u.ReplyEndDate = store.DefaultReplyEnd
	}
	u.ReplyStartDate = dateOnly(u.ReplyStartDate)
	u.ReplyEndDate = dateOnly(u.ReplyEndDate)
	return checkComment(u.Comment)
}

func dateOnly(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// normDestinations validates a destination list: every item an address,
// sorted and without duplicates as Mailu's CommaSeparatedList stores it,
// at most 4096 characters joined.
func normDestinations(in []string, field string) ([]string, error) {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, d := range in {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		n, err := NormalizeEmail(d)
		if err != nil {
			return nil, errorf(ErrInvalid, "%s: invalid address %q", field, d)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	if l := len(strings.Join(out, ",")); l > maxDestination {
		return nil, errorf(ErrInvalid, "%s is %d characters long, the limit is %d", field, l, maxDestination)
	}
	return out, nil
}

// ParseDestinations splits Mailu's comma-separated destination list
// ("a@x,b@y") and validates it.
func ParseDestinations(s string) ([]string, error) {
	d, err := normDestinations(strings.Split(s, ","), "destination")
	if err != nil {
		return nil, err
	}
	if len(d) == 0 {
		return nil, errorf(ErrInvalid, "empty destination")
	}
	return d, nil
}

// checkUserLimits enforces max_users and max_quota_bytes of d for one more
// user u (Mailu: ui/views/users.py, api/v1/user.py).
func (s *Service) checkUserLimits(ctx context.Context, tx store.Accounts, d *store.Domain, u *store.User) error {
	if d.MaxUsers >= 0 {
		n, err := tx.CountUsers(ctx, d.Name)
		if err != nil {
			return err
		}
		if n >= d.MaxUsers {
			return errorf(store.ErrLimit, "domain %s has reached max_users (%d)", d.Name, d.MaxUsers)
		}
	}
	return s.checkQuota(d, u)
}

func (s *Service) checkQuota(d *store.Domain, u *store.User) error {
	if d.MaxQuotaBytes <= 0 {
		return nil
	}
	if u.QuotaBytes == 0 || u.QuotaBytes > d.MaxQuotaBytes {
		return errorf(store.ErrLimit, "quota_bytes %s exceeds max_quota_bytes (%d) of domain %s",
			quotaText(u.QuotaBytes), d.MaxQuotaBytes, d.Name)
	}
	return nil
}

func quotaText(q int64) string {
	if q == 0 {
		return "0 (unlimited)"
	}
	return fmt.Sprint(q)
}

// CreateUser creates localpart@domain with Mailu's defaults and the given
// clear password. The domain must exist; see AddUser for more control.
func (s *Service) CreateUser(ctx context.Context, localpart, domain, password string) (*store.User, error) {
	return s.AddUser(ctx, s.NewUser(localpart, domain), password, CreateOptions{})
}

// ImportUser creates localpart@domain with a password hash stored as given
// (flask mailu user-import). As manage.py, it creates a missing domain.
func (s *Service) ImportUser(ctx context.Context, localpart, domain, hash string) (*store.User, error) {
	return s.AddUser(ctx, s.NewUser(localpart, domain), hash, CreateOptions{CreateDomain: true, PasswordIsHash: true})
}

// AddUser creates u with every field as given (start from NewUser). password
// is hashed with CREDENTIAL_ROUNDS unless opt.PasswordIsHash. In one
// transaction it checks that the address is neither a user nor an alias and
// that the domain's max_users and max_quota_bytes allow the user. A quota
// left at DEFAULT_QUOTA that is above the domain's max_quota_bytes is
// lowered to it.
func (s *Service) AddUser(ctx context.Context, u store.User, password string, opt CreateOptions) (*store.User, error) {
	if err := validateUser(&u); err != nil {
		return nil, err
	}
	if opt.PasswordIsHash {
		if err := checkHash(password); err != nil {
			return nil, err
		}
		u.Password = password
	} else {
		h, err := s.hash(password)
		if err != nil {
			return nil, err
		}
		u.Password, u.Scram = h, s.scram(password)
	}
	u.QuotaBytesUsed = 0
	newDomain := false
	err := s.st.InTx(ctx, func(tx store.Accounts) error {
		d, created, err := ensureDomain(ctx, tx, u.DomainName, opt.CreateDomain)
		newDomain = created
		if err != nil {
			return err
		}
		if err := emailFree(ctx, tx, u.Email); err != nil {
			return err
		}
		if d.MaxQuotaBytes > 0 && u.QuotaBytes == s.opt.DefaultQuota && u.QuotaBytes > d.MaxQuotaBytes {
			u.QuotaBytes = d.MaxQuotaBytes
		}
		if err := s.checkUserLimits(ctx, tx, d, &u); err != nil {
			return err
		}
		return tx.CreateUser(ctx, &u)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("user created", "user", u.Email, "global_admin", u.GlobalAdmin)
	s.welcome(ctx, &u)
	if newDomain {
		return &u, s.newDomainKeys(ctx, u.DomainName)
	}
	return &u, nil
}

// checkHash refuses an empty or obviously broken imported hash. Which
// schemes verify is auth's business; a hash it cannot read simply never
// matches.
func checkHash(h string) error {
	if strings.TrimSpace(h) == "" {
		return errorf(ErrInvalid, "empty password hash refused")
	}
	if h == hidden {
		return errorf(ErrInvalid, "password hash is %s (export with --secrets)", hidden)
	}
	if len(h) > 255 || strings.ContainsAny(h, " \t\r\n") {
		return errorf(ErrInvalid, "invalid password hash")
	}
	return nil
}

// UpdateUser replaces an existing user's settings with u's. The password
// hash and quota_bytes_used are kept (use SetPassword for the password).
func (s *Service) UpdateUser(ctx context.Context, u store.User) error {
	if err := validateUser(&u); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := getUser(ctx, tx, u.Email)
		if err != nil {
			return err
		}
		d, err := getDomain(ctx, tx, u.DomainName)
		if err != nil {
			return err
		}
		if u.QuotaBytes != old.QuotaBytes {
			if err := s.checkQuota(d, &u); err != nil {
				return err
			}
		}
		u.Password, u.QuotaBytesUsed, u.CreatedAt = old.Password, old.QuotaBytesUsed, old.CreatedAt
		return tx.UpdateUser(ctx, &u)
	})
}

// SetPassword hashes password and stores it for user email
// (flask mailu password).
func (s *Service) SetPassword(ctx context.Context, email, password string) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	// Look first so that a typo does not cost a bcrypt round.
	if _, err := getUser(ctx, s.st, e); err != nil {
		return err
	}
	h, err := s.hash(password)
	if err != nil {
		return err
	}
	sc := s.scram(password)
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getUser(ctx, tx, e); err != nil {
			return err
		}
		if err := tx.SetPasswordHash(ctx, e, h); err != nil {
			return err
		}
		return tx.SetScram(ctx, e, h, sc)
	})
	if err == nil {
		s.log.Info("password changed", "user", e)
	}
	return err
}

// SetEnabled enables or disables a user; a disabled user cannot log in
// anywhere (flask mailu user-delete without -r disables).
func (s *Service) SetEnabled(ctx context.Context, email string, enabled bool) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		u, err := getUser(ctx, tx, e)
		if err != nil {
			return err
		}
		if u.Enabled == enabled {
			return nil
		}
		u.Enabled = enabled
		return tx.UpdateUser(ctx, u)
	})
}

// DisableUser disables a user (flask mailu user-delete EMAIL).
func (s *Service) DisableUser(ctx context.Context, email string) error {
	return s.SetEnabled(ctx, email, false)
}

// DeleteUser deletes a user with its tokens and manager rights
// (flask mailu user-delete -r EMAIL).
func (s *Service) DeleteUser(ctx context.Context, email string) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getUser(ctx, tx, e); err != nil {
			return err
		}
		return tx.DeleteUser(ctx, e)
	})
	if err == nil {
		s.log.Info("user deleted", "user", e)
	}
	return err
}

// Admin modes (flask mailu admin -m, INITIAL_ADMIN_MODE).
const (
	ModeCreate    = "create"    // error if the user exists
	ModeIfMissing = "ifmissing" // leave an existing user alone
	ModeUpdate    = "update"    // create, or set the password of an existing user
)

// AdminResult says what CreateAdmin did.
type AdminResult int

// What CreateAdmin did.
const (
	AdminCreated   AdminResult = iota + 1 // a new global admin
	AdminUpdated                          // an existing user's password was set
	AdminUnchanged                        // the user exists and mode was ifmissing
)

// String returns manage.py's message for r.
func (r AdminResult) String() string {
	switch r {
	case AdminCreated:
		return "created admin user"
	case AdminUpdated:
		return "updated admin password"
	case AdminUnchanged:
		return "user exists, not updating"
	}
	return "nothing done"
}

// CreateAdmin creates a global admin (flask mailu admin). mode is create
// (default), ifmissing or update. A missing domain is created, as manage.py
// does. In update mode an existing user gets the new password and is made a
// global admin.
func (s *Service) CreateAdmin(ctx context.Context, localpart, domain, password, mode string) (AdminResult, error) {
	if mode == "" {
		mode = ModeCreate
	}
	if mode != ModeCreate && mode != ModeIfMissing && mode != ModeUpdate {
		return 0, errorf(ErrInvalid, "invalid mode %q (want create, ifmissing or update)", mode)
	}
	u := s.NewUser(localpart, domain)
	u.GlobalAdmin = true
	if err := validateUser(&u); err != nil {
		return 0, err
	}
	// Look first so that ifmissing on an existing user costs no bcrypt round.
	_, err := s.st.GetUser(ctx, u.Email)
	switch {
	case err == nil && mode == ModeIfMissing:
		return AdminUnchanged, nil
	case err == nil && mode == ModeCreate:
		return 0, errorf(store.ErrExists, "user %s exists, not created", u.Email)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return 0, err
	}
	h, err := s.hash(password)
	if err != nil {
		return 0, err
	}
	sc := s.scram(password)
	res := AdminCreated
	newDomain := false
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		newDomain = false
		old, err := tx.GetUser(ctx, u.Email)
		if err == nil {
			switch mode {
			case ModeIfMissing:
				res = AdminUnchanged
				return nil
			case ModeCreate:
				return errorf(store.ErrExists, "user %s exists, not created", u.Email)
			}
			res = AdminUpdated
			if !old.GlobalAdmin {
				old.GlobalAdmin = true
				if err := tx.UpdateUser(ctx, old); err != nil {
					return err
				}
			}
			if err := tx.SetPasswordHash(ctx, u.Email, h); err != nil {
				return err
			}
			return tx.SetScram(ctx, u.Email, h, sc)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		res = AdminCreated
		d, created, err := ensureDomain(ctx, tx, u.DomainName, true)
		newDomain = created
		if err != nil {
			return err
		}
		if err := emailFree(ctx, tx, u.Email); err != nil {
			return err
		}
		if d.MaxQuotaBytes > 0 && u.QuotaBytes > d.MaxQuotaBytes {
			u.QuotaBytes = d.MaxQuotaBytes
		}
		if err := s.checkUserLimits(ctx, tx, d, &u); err != nil {
			return err
		}
		u.Password, u.Scram = h, sc
		return tx.CreateUser(ctx, &u)
	})
	if err != nil {
		return 0, err
	}
	s.log.Info("admin account", "user", u.Email, "result", res.String())
	if res == AdminCreated {
		s.welcome(ctx, &u)
	}
	if newDomain {
		return res, s.newDomainKeys(ctx, u.DomainName)
	}
	return res, nil
}

// EnsureInitialAdmin applies INITIAL_ADMIN_ACCOUNT, _DOMAIN, _PW and _MODE at
// start-up (Mailu: core/admin/start.py runs flask mailu admin; the mode
// defaults to ifmissing there). An empty account does nothing.
func (s *Service) EnsureInitialAdmin(ctx context.Context, account, domain, password, mode string) (AdminResult, error) {
	if account == "" {
		return 0, nil
	}
	if mode == "" {
		mode = ModeIfMissing
	}
	if domain == "" {
		return 0, errorf(ErrInvalid, "INITIAL_ADMIN_DOMAIN is empty")
	}
	if password == "" {
		return 0, errorf(ErrInvalid, "INITIAL_ADMIN_PW is empty")
	}
	return s.CreateAdmin(ctx, account, domain, password, mode)
}

// normIPs validates a token's allow-list: addresses or CIDR prefixes.
func normIPs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, ip := range in {
		ip = strings.TrimSpace(ip)
		if ip == "" {
			continue
		}
		if p, err := netip.ParsePrefix(ip); err == nil {
			out = append(out, p.Masked().String())
			continue
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, errorf(ErrInvalid, "invalid token ip %q (want an address or CIDR)", ip)
		}
		out = append(out, a.String())
	}
	sort.Strings(out)
	out = dedupe(out)
	if len(strings.Join(out, ",")) > 255 {
		return nil, errorf(ErrInvalid, "token ip list is longer than 255 characters")
	}
	return out, nil
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// CreateToken creates an application password for user. The clear token is
// returned once; only its hash is stored.
func (s *Service) CreateToken(ctx context.Context, user, comment string, ips []string) (string, *store.Token, error) {
	e, err := NormalizeEmail(user)
	if err != nil {
		return "", nil, err
	}
	if err := checkComment(comment); err != nil {
		return "", nil, err
	}
	ipl, err := normIPs(ips)
	if err != nil {
		return "", nil, err
	}
	clear, h, err := auth.NewToken()
	if err != nil {
		return "", nil, fmt.Errorf("admin: new token: %w", err)
	}
	t := store.Token{UserEmail: e, Password: h, IP: ipl}
	t.Comment = comment
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getUser(ctx, tx, e); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &t)
	})
	if err != nil {
		return "", nil, err
	}
	s.log.Info("token created", "user", e, "token_id", t.ID)
	return clear, &t, nil
}

// UpdateToken changes a token's comment and IP allow-list.
func (s *Service) UpdateToken(ctx context.Context, id int64, comment string, ips []string) error {
	if err := checkComment(comment); err != nil {
		return err
	}
	ipl, err := normIPs(ips)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		t, err := tx.GetToken(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "token %d does not exist", id)
		} else if err != nil {
			return err
		}
		t.Comment, t.IP = comment, ipl
		return tx.UpdateToken(ctx, t)
	})
}

// DeleteToken removes an application password.
func (s *Service) DeleteToken(ctx context.Context, id int64) error {
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := tx.GetToken(ctx, id); errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "token %d does not exist", id)
		} else if err != nil {
			return err
		}
		return tx.DeleteToken(ctx, id)
	})
}

// welcome sends the welcome message of a user just created (Options.Welcome).
func (s *Service) welcome(ctx context.Context, u *store.User) {
	if s.opt.Welcome != nil {
		s.opt.Welcome(ctx, u)
	}
}
