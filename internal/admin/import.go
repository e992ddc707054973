package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

// ImportOptions are config-import's switches.
type ImportOptions struct {
	// Update merges the input into the existing configuration (-u). Without
	// it the input replaces the whole configuration, as in Mailu: domains,
	// users, aliases and relays it does not list are deleted.
	Update bool
	// DryRun does everything in a transaction and rolls it back (-n).
	DryRun bool
	// Secrets shows password hashes and DKIM keys in change messages (-s).
	Secrets bool
}

// Change is one created, modified or deleted row.
type Change struct {
	Action string // "Created", "Modified" or "Deleted"
	Table  string // domain, alternative, relay, user, token, manager, alias
	Key    string
	Detail string // for Modified: "attribute: before -> after, ..."
}

func (c Change) String() string {
	s := c.Action + " " + c.Table + ": " + c.Key
	if c.Detail != "" {
		s += " " + c.Detail
	}
	return s
}

// ImportResult is what an import did (or, for a dry run, would have done).
type ImportResult struct {
	Changes  []Change
	Warnings []string
	DryRun   bool
}

// Summary counts the changes as Mailu's config-import prints them
// ("Created: alias(1) domain(2) / Modified: user(1)"), or "No changes.".
func (r *ImportResult) Summary() string {
	if len(r.Changes) == 0 {
		return "No changes."
	}
	counts := map[[2]string]int{}
	for _, c := range r.Changes {
		counts[[2]string{c.Action, c.Table}]++
	}
	keys := make([][2]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	var b strings.Builder
	last := ""
	for _, k := range keys {
		if k[0] != last {
			if last != "" {
				b.WriteString(" / ")
			}
			b.WriteString(k[0] + ":")
			last = k[0]
		}
		fmt.Fprintf(&b, " %s(%d)", k[1], counts[k])
	}
	return b.String()
}

// ImportError lists every problem found in the input. Nothing was changed.
type ImportError struct {
	Problems []string // "user.0.password: Missing data for required field."
}

func (e *ImportError) Error() string {
	n := len(e.Problems)
	if n == 1 {
		return "invalid input: " + e.Problems[0]
	}
	return fmt.Sprintf("%d errors in input: %s", n, strings.Join(e.Problems, "; "))
}

// Unwrap makes an ImportError an ErrInvalid.
func (e *ImportError) Unwrap() error { return ErrInvalid }

var errDryRun = errors.New("dry run")

// patch is one object of an input section.
type patch struct {
	path   string // "user.3"
	key    string // normalised primary key
	del    bool   // update mode "-email: x": delete the object
	prune  bool   // update mode "-email: null": delete objects not listed
	fields map[string]any
}

type importer struct {
	s     *Service
	opt   ImportOptions
	probs []string
	res   *ImportResult
	paths map[string]string // "user:x@y" -> "user.3", for cross-reference errors
	dkim  map[string]dkimOp // per domain; applied after commit
	// newUsers are the users the transaction created: they get the
	// welcome message once it has committed.
	newUsers []store.User
	// oldFetches are the fetched accounts stored before the import, by
	// user (nil when the store keeps none).
	oldFetches map[string][]store.Fetch
}

func (im *importer) fail(path, format string, a ...any) {
	im.probs = append(im.probs, path+": "+fmt.Sprintf(format, a...))
}

func (im *importer) failErr(path string, err error) {
	var ae *Error
	if errors.As(err, &ae) {
		im.fail(path, "%s", ae.Msg)
		return
	}
	im.fail(path, "%v", err)
}

func (im *importer) warn(format string, a ...any) {
	im.res.Warnings = append(im.res.Warnings, fmt.Sprintf(format, a...))
}

func (im *importer) change(action, table, key, detail string) {
	im.res.Changes = append(im.res.Changes, Change{Action: action, Table: table, Key: key, Detail: detail})
}

// Import reads a configuration in Mailu's config-export format (YAML or
// JSON; schemas.py MailuSchema) and applies it in one transaction: all of it
// or, on any error, none of it. Every problem in the input is reported at
// once in an *ImportError.
//
// Without Update the input replaces the configuration: what it does not
// list is deleted, and attributes it leaves out get their defaults. Rows
// that stay are updated in place, so a user that is listed keeps its
// mailbox. With Update the input is merged, and Mailu's notations work:
// "- -name: example.com" deletes an object, "- -email: null" deletes all
// objects of the section that are not listed, "-key: null" resets an
// attribute to its default, and in lists "-item" removes an item and
// "-prune-" drops the items not listed.
//
// Domain and user limits are not enforced here (Mailu's import does not
// either); names must still be unique and references must resolve.
//
// A user's sieve_scripts (Petrel's own attribute) is the user's whole set
// of Sieve scripts, each checked with sieve.Check. The scripts are not in
// store.Accounts, so they are written once the transaction has committed,
// as the DKIM key files are. A user's fetches (Mailu's fetched accounts)
// are the user's whole set of remote accounts, written after the commit
// too; see fetches.go for their passwords.
func (s *Service) Import(ctx context.Context, data []byte, opt ImportOptions) (*ImportResult, error) {
	im := &importer{s: s, opt: opt, res: &ImportResult{DryRun: opt.DryRun}, paths: map[string]string{}, dkim: map[string]dkimOp{}}
	sections := im.parse(data)
	if sections == nil {
		return nil, &ImportError{Problems: im.probs}
	}
	if err := im.loadFetches(ctx); err != nil {
		return nil, fmt.Errorf("admin: import: %w", err)
	}
	var want *state
	var created []string // domains the import creates
	err := s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := loadState(ctx, tx)
		if err != nil {
			return err
		}
		want = im.build(old, sections)
		created = created[:0]
		im.newUsers = im.newUsers[:0]
		for _, d := range sortedMapKeys(want.domains) {
			if old.domains[d] == nil {
				created = append(created, d)
			}
		}
		if len(im.probs) > 0 {
			return &ImportError{Problems: im.probs}
		}
		if err := im.apply(ctx, tx, old, want); err != nil {
			return err
		}
		if opt.DryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		im.noteDKIM(ctx, want)
		if err := im.applySieve(ctx, want, false); err != nil {
			return im.res, err
		}
		if err := im.applyFetches(ctx, want, false); err != nil {
			return im.res, err
		}
		return im.res, nil
	}
	if err != nil {
		var ie *ImportError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, fmt.Errorf("admin: import: %w", err)
	}
	for i := range im.newUsers {
		s.welcome(ctx, &im.newUsers[i])
	}
	if err := im.applySieve(ctx, want, true); err != nil {
		return im.res, err
	}
	if err := im.applyFetches(ctx, want, true); err != nil {
		return im.res, err
	}
	if err := im.writeDKIM(ctx, want); err != nil {
		return im.res, err
	}
	// New domains whose dkim_key the input did not set (or hid) get a
	// key, as every new domain does.
	var keyless []string
	for _, d := range created {
		if _, set := im.dkim[d]; !set {
			keyless = append(keyless, d)
		}
	}
	if err := s.newDomainKeys(ctx, keyless...); err != nil {
		return im.res, err
	}
	s.log.Info("configuration imported", "changes", len(im.res.Changes), "update", opt.Update)
	return im.res, nil
}

// parse decodes the input and splits it into patches per section.
func (im *importer) parse(data []byte) map[string][]patch {
	var root any
	if err := yaml.Unmarshal(data, &root); err != nil {
		im.fail("input", "not valid YAML or JSON: %v", err)
		return nil
	}
	if root == nil {
		im.fail("input", "empty input")
		return nil
	}
	m, ok := root.(map[string]any)
	if !ok {
		im.fail("input", "want a mapping with the sections domain, user, alias and relay")
		return nil
	}
	out := map[string][]patch{}
	for k := range m {
		if _, ok := sectionFields[k]; !ok {
			im.fail(k, "Unknown field.")
		}
	}
	for _, sec := range sectionOrder {
		v, ok := m[sec]
		if !ok || v == nil {
			continue
		}
		items, ok := v.([]any)
		if !ok {
			im.fail(sec, "Not a valid list.")
			continue
		}
		seen := map[string]string{}
		for i, it := range items {
			path := fmt.Sprintf("%s.%d", sec, i)
			obj, ok := it.(map[string]any)
			if !ok {
				im.fail(path, "Invalid input type.")
				continue
			}
			p, ok := im.parseItem(sec, path, obj)
			if !ok || p.prune {
				if ok {
					out[sec] = append(out[sec], p)
				}
				continue
			}
			if prev, dup := seen[p.key]; dup {
				im.fail(path+"."+primaryKey[sec], "duplicate %s %s (also at %s)", sec, p.key, prev)
				continue
			}
			seen[p.key] = path
			im.paths[sec+":"+p.key] = path
			out[sec] = append(out[sec], p)
		}
	}
	return out
}

func (im *importer) parseItem(sec, path string, obj map[string]any) (patch, bool) {
	pk := primaryKey[sec]
	p := patch{path: path, fields: obj}
	raw, has := obj[pk]
	if im.opt.Update {
		if dv, ok := obj["-"+pk]; ok {
			if dv == nil {
				p.prune = true
				return p, true
			}
			p.del, raw, has = true, dv, true
		}
	}
	if !has {
		im.fail(path+"."+pk, "Missing data for required field.")
		return p, false
	}
	s, ok := raw.(string)
	if !ok {
		im.fail(path+"."+pk, "Not a valid string.")
		return p, false
	}
	var err error
	switch sec {
	case "domain", "relay":
		p.key, err = normDomain(s)
	default:
		p.key, err = NormalizeEmail(s)
	}
	if err != nil {
		im.failErr(path+"."+pk, err)
		return p, false
	}
	return p, true
}

// sortedKeys returns a patch's attribute names in a stable order.
func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// attr resolves an attribute name: "-key" (update mode, value null) asks
// for the default. ok is false when the name is refused.
func (im *importer) attr(k string, v any, path string) (key string, reset, ok bool) {
	if !strings.HasPrefix(k, "-") {
		return k, false, true
	}
	if !im.opt.Update {
		im.fail(path, "Unknown field.")
		return "", false, false
	}
	if v != nil {
		im.fail(path, `Value must be "null" when resetting to default.`)
		return "", false, false
	}
	return k[1:], true, true
}

func defaultOf(fs []efield, key string) any {
	for _, f := range fs {
		if f.key == key {
			return f.val
		}
	}
	return nil
}

// mergeList applies a list attribute: in update mode the items are added to
// cur, "-item" removes one and "-prune-" drops cur; otherwise the list is
// replaced.
func (im *importer) mergeList(cur []string, v any, merge bool, norm func(string) (string, error), path string) []string {
	items, err := asList(v)
	if err != nil {
		im.fail(path, "%s.", strings.ToUpper(err.Error()[:1])+err.Error()[1:])
		return cur
	}
	set := map[string]bool{}
	prune := false
	var dels []string
	for _, it := range items {
		switch {
		case merge && it == "-prune-":
			prune = true
		case merge && strings.HasPrefix(it, "-"):
			dels = append(dels, it[1:])
		default:
			n, err := norm(it)
			if err != nil {
				im.failErr(path, err)
				continue
			}
			set[n] = true
		}
	}
	if merge && !prune {
		for _, c := range cur {
			set[c] = true
		}
	}
	for _, d := range dels {
		n, err := norm(d)
		if err != nil || !set[n] {
			im.fail(path, "Item to delete not found: %q.", d)
			continue
		}
		delete(set, n)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// importHash turns an imported password attribute into the stored hash.
// prev is the hash the user or token has now ("" when new).
func (im *importer) importHash(v any, hashIt bool, prev, path string, token bool) (string, bool) {
	pw, err := asString(v)
	if err != nil {
		im.fail(path, "Not a valid string.")
		return "", false
	}
	if pw == "" {
		im.fail(path, "Missing data for required field.")
		return "", false
	}
	switch {
	case pw == hidden:
		if prev == "" {
			im.fail(path, "password is %s; export with --secrets to import new entries", hidden)
			return "", false
		}
		return prev, true
	case hashIt:
		if prev != "" && im.opt.Update {
			// Mailu keeps the old hash when the plain password still matches
			// it (schemas.py _add_instance).
			if ok, _, _ := auth.VerifyPassword(prev, pw); ok {
				return prev, true
			}
		}
		if token {
			// Mailu's TokenSchema would hash with the user context
			// (bcrypt_sha256), which its own Token.check_password cannot
			// verify; Petrel hashes tokens as tokens (pbkdf2_sha256).
			h, err := auth.HashToken(pw)
			if err != nil {
				im.fail(path, "%v", err)
				return "", false
			}
			return h, true
		}
		h, err := im.s.hash(pw)
		if err != nil {
			im.failErr(path, err)
			return "", false
		}
		return h, true
	}
	h := exportHash(strings.TrimSpace(pw))
	if _, _, err := auth.VerifyPassword(h, ""); err != nil {
		im.fail(path, "invalid password hash")
		return "", false
	}
	return h, true
}

func userBool(u *store.User, key string) *bool {
	switch key {
	case "allow_spoofing":
		return &u.AllowSpoofing
	case "change_pw_next_login":
		return &u.ChangePwNextLogin
	case "enable_imap":
		return &u.EnableIMAP
	case "enable_pop":
		return &u.EnablePOP
	case "enabled":
		return &u.Enabled
	case "forward_enabled":
		return &u.ForwardEnabled
	case "forward_keep":
		return &u.ForwardKeep
	case "global_admin":
		return &u.GlobalAdmin
	case "reply_enabled":
		return &u.ReplyEnabled
	case "spam_enabled":
		return &u.SpamEnabled
	case "spam_mark_as_read":
		return &u.SpamMarkAsRead
	}
	return nil
}

func userString(u *store.User, key string) *string {
	switch key {
	case "comment":
		return &u.Comment
	case "displayed_name":
		return &u.DisplayedName
	case "reply_body":
		return &u.ReplyBody
	case "reply_subject":
		return &u.ReplySubject
	}
	return nil
}

// ignored are attributes Mailu exports (or older exports carry) that
// Petrel reads and drops: timestamps, DNS records, the DKIM public key and
// quota_bytes_used, which the mail store maintains.
var ignored = map[string]bool{
	"created_at": true, "updated_at": true, "quota_bytes_used": true,
	"dkim_publickey": true, "dns_mx": true, "dns_spf": true, "dns_dkim": true, "dns_dmarc": true,
	"dns_dmarc_report": true, "dns_autoconfig": true, "dns_tlsa": true,
}
