package mailuimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
	"golang.org/x/net/idna"
)

// importAccounts copies Mailu's account model (models.py) in dependency
// order. An object Petrel already has is left as it is (a rerun changes
// nothing); one that cannot be created is listed in the report.
func (im *importer) importAccounts(ctx context.Context, db *mailuDB) error {
	steps := []struct {
		table string
		fn    func(context.Context, row)
	}{
		{"domain", im.domain},
		{"relay", im.relay},
		{"alternative", im.alternative},
		{"user", im.user},
		{"alias", im.alias},
		{"manager", im.manager},
		{"token", im.token},
		{"fetch", im.fetch},
	}
	for _, s := range steps {
		if !db.hasTable(ctx, s.table) {
			continue
		}
		rows, err := db.rows(ctx, s.table)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := ctx.Err(); err != nil {
				return err
			}
			s.fn(ctx, r)
		}
	}
	if db.hasTable(ctx, "config") {
		rows, err := db.rows(ctx, "config")
		if err != nil {
			return err
		}
		for _, r := range rows {
			im.rep.unsupported("config entry "+r.str("name"), "Petrel takes its settings from the environment")
		}
	}
	return nil
}

func meta(r row) store.Meta {
	return store.Meta{CreatedAt: r.date("created_at"), UpdatedAt: r.date("updated_at"), Comment: r.str("comment")}
}

// outcome counts one object: created, already there, or skipped.
func (im *importer) outcome(kind, name string, err error) {
	switch {
	case err == nil:
		im.rep.created(kind)
	case errors.Is(err, store.ErrExists):
		im.rep.present(kind)
	default:
		im.rep.skip(kind+" "+name, err.Error())
	}
}

func (im *importer) domainName(kind, name string) (string, bool) {
	d, err := mailaddr.NormalizeDomain(name)
	if err != nil {
		im.rep.skip(kind+" "+name, "not a valid domain name: "+err.Error())
		return "", false
	}
	return d, true
}

func (im *importer) domain(ctx context.Context, r row) {
	name, ok := im.domainName("domain", r.str("name"))
	if !ok {
		return
	}
	im.copyDKIM(ctx, name)
	if _, err := im.st.GetDomain(ctx, name); err == nil {
		im.rep.present("domain")
		return
	}
	d := store.Domain{
		Name:          name,
		MaxUsers:      int(r.int64("max_users", -1)),
		MaxAliases:    int(r.int64("max_aliases", -1)),
		MaxQuotaBytes: r.int64("max_quota_bytes", 0),
		SignupEnabled: r.boolean("signup_enabled", false),
		Meta:          meta(r),
	}
	if im.opt.DryRun {
		im.rep.created("domain")
		return
	}
	im.outcome("domain", name, im.st.CreateDomain(ctx, &d))
}

func (im *importer) relay(ctx context.Context, r row) {
	name, ok := im.domainName("relay", r.str("name"))
	if !ok {
		return
	}
	if _, err := im.st.GetRelay(ctx, name); err == nil {
		im.rep.present("relay")
		return
	}
	if im.opt.DryRun {
		im.rep.created("relay")
		return
	}
	im.outcome("relay", name, im.st.CreateRelay(ctx, &store.Relay{Name: name, SMTP: r.str("smtp"), Meta: meta(r)}))
}

func (im *importer) alternative(ctx context.Context, r row) {
	name, ok := im.domainName("alternative", r.str("name"))
	if !ok {
		return
	}
	parent, ok := im.domainName("alternative", r.str("domain_name"))
	if !ok {
		return
	}
	if _, err := im.st.GetAlternative(ctx, name); err == nil {
		im.rep.present("alternative")
		return
	}
	if im.opt.DryRun {
		im.rep.created("alternative")
		return
	}
	im.outcome("alternative", name, im.st.CreateAlternative(ctx, &store.Alternative{Name: name, DomainName: parent, Meta: meta(r)}))
}

// userOf converts a Mailu user row; missing columns get Mailu's defaults.
func userOf(r row, domain string) store.User {
	local := strings.ToLower(r.str("localpart"))
	u := store.NewUser(local, domain, r.int64("quota_bytes", 1_000_000_000), int(r.int64("spam_threshold", 80)))
	u.Password = r.str("password")
	u.GlobalAdmin = r.boolean("global_admin", false)
	u.Enabled = r.boolean("enabled", true)
	u.EnableIMAP = r.boolean("enable_imap", true)
	u.EnablePOP = r.boolean("enable_pop", true)
	u.AllowSpoofing = r.boolean("allow_spoofing", false)
	u.ForwardEnabled = r.boolean("forward_enabled", false)
	u.ForwardDestination = r.list("forward_destination")
	u.ForwardKeep = r.boolean("forward_keep", true)
	u.ReplyEnabled = r.boolean("reply_enabled", false)
	u.ReplySubject = r.str("reply_subject")
	u.ReplyBody = r.str("reply_body")
	if t := r.date("reply_startdate"); !t.IsZero() {
		u.ReplyStartDate = t
	}
	if t := r.date("reply_enddate"); !t.IsZero() {
		u.ReplyEndDate = t
	}
	u.DisplayedName = r.str("displayed_name")
	u.SpamEnabled = r.boolean("spam_enabled", true)
	u.SpamMarkAsRead = r.boolean("spam_mark_as_read", true)
	u.ChangePwNextLogin = r.boolean("change_pw_next_login", false)
	u.Meta = meta(r)
	return u
}

func (im *importer) user(ctx context.Context, r row) {
	domain, ok := im.domainName("user", r.str("domain_name"))
	if !ok {
		return
	}
	u := userOf(r, domain)
	im.users = append(im.users, u.Email)
	if _, err := im.st.GetUser(ctx, u.Email); err == nil {
		im.rep.present("user")
		return
	}
	// The hash is kept as Mailu stored it (a Dovecot {SCHEME} prefix
	// included), so that nobody needs a new password. One Petrel cannot
	// verify still comes across, with the user listed.
	if _, _, err := auth.VerifyPassword(u.Password, "\x00probe"); err != nil {
		im.rep.skip("password of "+u.Email, "hash in a scheme Petrel cannot verify ("+hashTag(u.Password)+"): set a new password with 'petrel password'")
	}
	if im.opt.DryRun {
		im.rep.created("user")
		return
	}
	im.outcome("user", u.Email, im.st.CreateUser(ctx, &u))
}

// hashTag names a hash's scheme without showing the hash.
func hashTag(h string) string {
	if strings.HasPrefix(h, "{") {
		if i := strings.IndexByte(h, '}'); i > 0 {
			return h[:i+1]
		}
	}
	if strings.HasPrefix(h, "$") {
		if i := strings.IndexByte(h[1:], '$'); i >= 0 {
			return h[:i+2]
		}
	}
	return fmt.Sprintf("%d characters", len(h))
}

func (im *importer) alias(ctx context.Context, r row) {
	domain, ok := im.domainName("alias", r.str("domain_name"))
	if !ok {
		return
	}
	local := r.str("localpart")
	a := store.Alias{
		Email:       local + "@" + domain,
		Localpart:   local,
		DomainName:  domain,
		Wildcard:    r.boolean("wildcard", false),
		Destination: r.list("destination"),
		Meta:        meta(r),
	}
	if _, err := im.st.GetAlias(ctx, a.Email); err == nil {
		im.rep.present("alias")
		return
	}
	if im.opt.DryRun {
		im.rep.created("alias")
		return
	}
	im.outcome("alias", a.Email, im.st.CreateAlias(ctx, &a))
}

func (im *importer) manager(ctx context.Context, r row) {
	domain, ok := im.domainName("manager", r.str("domain_name"))
	if !ok {
		return
	}
	user := r.str("user_email")
	have, err := im.st.ListManagers(ctx, domain)
	if err == nil && slices.Contains(have, user) {
		im.rep.present("manager")
		return
	}
	if im.opt.DryRun {
		im.rep.created("manager")
		return
	}
	im.outcome("manager", user+" of "+domain, im.st.AddManager(ctx, domain, user))
}

func (im *importer) token(ctx context.Context, r row) {
	user := r.str("user_email")
	t := store.Token{UserEmail: user, Password: r.str("password"), IP: r.list("ip"), Meta: meta(r)}
	// Token ids are Petrel's own; a token is the same when its hash is.
	have, err := im.st.ListTokens(ctx, user)
	if err == nil {
		for _, h := range have {
			if h.Password == t.Password {
				im.rep.present("token")
				return
			}
		}
	}
	if im.opt.DryRun {
		im.rep.created("token")
		return
	}
	im.outcome("token", fmt.Sprintf("%d of %s", r.int64("id", 0), user), im.st.CreateToken(ctx, &t))
}

// copyDKIM copies domain's key from Mailu's /dkim (DKIM_PATH =
// /dkim/{domain}.{selector}.key, U-label file names, models.py) to
// Petrel's store (or DKIM_PATH), unless Petrel already has a key for the
// domain.
func (im *importer) copyDKIM(ctx context.Context, domain string) {
	if im.opt.DKIMDir == "" || im.opt.DKIMPath == "" && im.opt.DKIMKeys == nil {
		return
	}
	names := []string{domain}
	if u, err := idna.ToUnicode(domain); err == nil && u != domain {
		names = append(names, u)
	}
	var src string
	for _, n := range names {
		p := filepath.Join(im.opt.DKIMDir, n+"."+im.opt.MailuSelector+".key")
		if _, err := os.Stat(p); err == nil {
			src = p
			break
		}
	}
	if src == "" {
		im.rep.note("domain " + domain + " has no DKIM key in " + im.opt.DKIMDir + " (Petrel makes one when asked: petrel dkim)")
		return
	}
	if im.opt.DKIMKeys != nil {
		im.storeDKIM(ctx, domain, src)
		return
	}
	dst, err := msgauth.NewKeysPath(im.opt.DKIMPath, im.opt.Selector).Path(domain)
	if err != nil {
		im.rep.skip("DKIM key of "+domain, err.Error())
		return
	}
	if _, err := os.Stat(dst); err == nil {
		im.rep.present("DKIM key")
		return
	}
	if im.opt.DryRun {
		im.rep.created("DKIM key")
		return
	}
	if err := copyFile(src, dst); err != nil {
		im.rep.skip("DKIM key of "+domain, err.Error())
		return
	}
	im.rep.created("DKIM key")
}

// storeDKIM puts the key file src into the store as domain's key, unless
// the store (or DKIM_PATH) already has one.
func (im *importer) storeDKIM(ctx context.Context, domain, src string) {
	ok, err := im.opt.DKIMKeys.Exists(ctx, domain)
	if err != nil {
		im.rep.skip("DKIM key of "+domain, err.Error())
		return
	}
	if ok {
		im.rep.present("DKIM key")
		return
	}
	if im.opt.DryRun {
		im.rep.created("DKIM key")
		return
	}
	data, err := os.ReadFile(src)
	if err == nil {
		err = im.opt.DKIMKeys.Store(ctx, domain, data)
	}
	if err != nil {
		im.rep.skip("DKIM key of "+domain, err.Error())
		return
	}
	im.rep.created("DKIM key")
}

// copyFile writes dst (mode 0600, fsynced) from src, through a temporary
// name so that a half-written key never exists.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".import-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// fetch copies a fetched account (models.Fetch). Mailu keeps the remote
// password in clear; Petrel stores it sealed under SECRET_KEY, and it
// never goes to the report or the log. An account is the same when user,
// protocol, host, port and remote user are. LastCheck and Error are not
// carried: Petrel polls the account at once and records its own.
func (im *importer) fetch(ctx context.Context, r row) {
	f := store.Fetch{
		UserEmail: strings.ToLower(r.str("user_email")),
		Protocol:  strings.ToLower(r.str("protocol")),
		Host:      r.str("host"),
		Port:      int(r.int64("port", 0)),
		TLS:       r.boolean("tls", false),
		Username:  r.str("username"),
		Keep:      r.boolean("keep", false),
		Scan:      r.boolean("scan", false),
		Folders:   r.list("folders"),
		Meta:      meta(r),
	}
	what := "fetched account " + f.Username + "@" + f.Host + " of " + f.UserEmail
	if f.Protocol != "imap" && f.Protocol != "pop3" {
		im.rep.skip(what, fmt.Sprintf("protocol %q is neither imap nor pop3", f.Protocol))
		return
	}
	if have, err := im.st.ListFetches(ctx, f.UserEmail); err == nil {
		for _, h := range have {
			if h.Protocol == f.Protocol && strings.EqualFold(h.Host, f.Host) && h.Port == f.Port && h.Username == f.Username {
				im.rep.present("fetched account")
				return
			}
		}
	}
	if im.opt.DryRun {
		im.rep.created("fetched account")
		return
	}
	if im.opt.SealPassword == nil {
		im.rep.skip(what, "no key to seal its password with")
		return
	}
	sealed, err := im.opt.SealPassword(r.str("password"))
	if err != nil {
		im.rep.skip(what, "sealing its password: "+err.Error())
		return
	}
	f.Password = sealed
	im.outcome("fetched account", f.Username+"@"+f.Host+" of "+f.UserEmail, im.st.CreateFetch(ctx, &f))
}
