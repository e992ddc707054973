package admin

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// Users' fetched accounts in config-export and config-import: the user
// attribute fetches, as Mailu's schemas.py writes it (FetchSchema nested
// in UserSchema): id, protocol, host, port, tls, username, password,
// keep, scan, folders, comment; last_check and error only with --full.
//
// Mailu keeps the remote passwords in clear and exports them so. Petrel
// keeps them sealed (internal/fetch, a key derived from SECRET_KEY), so
// an export with --secrets writes the sealed form, which imports again
// into any server with the same SECRET_KEY; a password that is not one
// (Mailu's clear text) is sealed on import, and <hidden> keeps the
// password of the matching account already stored.

// Sealer seals remote passwords for the store and recognises sealed
// ones (internal/fetch.Sealer).
type Sealer interface {
	Seal(password string) (string, error)
	Open(sealed string) (string, error)
}

// sealedPrefix starts a sealed password (internal/fetch's sealed form).
const sealedPrefix = "v1:"

func (s *Service) fetchStore() (store.Fetches, bool) {
	fs, ok := s.st.(store.Fetches)
	return fs, ok
}

// fetchesField is the fetches attribute of an export.
func fetchesField(fs []store.Fetch, e *emitter) efield {
	l := make([]omap, 0, len(fs))
	for i := range fs {
		f := &fs[i]
		folders := strList(f.Folders)
		var last any
		if !f.LastCheck.IsZero() {
			last = f.LastCheck.UTC().Format("2006-01-02T15:04:05")
		}
		fields := []efield{
			{key: "id", val: f.ID},
			{key: "protocol", val: f.Protocol},
			{key: "host", val: f.Host},
			{key: "port", val: f.Port},
			{key: "tls", val: f.TLS},
			{key: "username", val: f.Username},
			{key: "password", val: f.Password, secret: true},
			{key: "keep", val: f.Keep},
			{key: "scan", val: f.Scan},
			{key: "folders", val: folders},
		}
		if e.full { // Mailu: include_by_context full
			fields = append(fields, efield{key: "last_check", val: last}, efield{key: "error", val: nullable(f.Error)})
		}
		fields = append(fields, metaFields(f.Meta)...)
		l = append(l, e.object(fields, "id"))
	}
	return efield{key: "fetches", val: l, def: len(l) == 0}
}

// loadFetches reads every fetched account by user, for the import to
// match the listed ones against.
func (im *importer) loadFetches(ctx context.Context) error {
	fs, ok := im.s.fetchStore()
	if !ok {
		return nil
	}
	all, err := fs.ListFetches(ctx, "")
	if err != nil {
		return err
	}
	im.oldFetches = map[string][]store.Fetch{}
	for _, f := range all {
		im.oldFetches[f.UserEmail] = append(im.oldFetches[f.UserEmail], f)
	}
	return nil
}

// setFetches reads a user's fetches attribute: the list is the user's
// whole set of fetched accounts. An item is the stored account with its
// id (of the same user), else the one with the same protocol, host, port
// and username, so that it keeps its id and what it has already fetched;
// anything else is a new account.
func (im *importer) setFetches(us *userState, v any, path string) {
	if im.s.opt.FetchSealer == nil {
		// Without the key the passwords cannot be sealed nor checked:
		// the stored accounts stay as they are.
		us.fetchSet, us.fetches = false, nil
		im.warn("%s: fetches ignored (no key to seal their passwords)", path)
		return
	}
	us.fetchSet, us.fetches = true, nil
	if v == nil {
		return
	}
	items, ok := v.([]any)
	if !ok {
		im.fail(path, "Not a valid list.")
		return
	}
	old := im.oldFetches[us.u.Email]
	taken := map[int64]bool{}
	for i, it := range items {
		ip := path + "." + strconv.Itoa(i)
		obj, ok := it.(map[string]any)
		if !ok {
			im.fail(ip, "Invalid input type.")
			continue
		}
		f, pw, good := im.fetchFields(obj, ip)
		if !good {
			continue
		}
		f.UserEmail = us.u.Email
		var match *store.Fetch
		for j := range old {
			o := &old[j]
			if taken[o.ID] {
				continue
			}
			if (f.ID != 0 && o.ID == f.ID) || (f.ID == 0 && sameRemote(o, &f)) {
				match = o
				break
			}
		}
		if match == nil && f.ID != 0 {
			for j := range old { // an id from another server: match by remote
				if !taken[old[j].ID] && sameRemote(&old[j], &f) {
					match = &old[j]
					break
				}
			}
		}
		f.ID = 0
		if match != nil {
			f.ID, f.CreatedAt, f.LastCheck, f.Error = match.ID, match.CreatedAt, match.LastCheck, match.Error
			taken[match.ID] = true
		}
		switch {
		case pw == hidden && match == nil:
			im.fail(ip+".password", "password is %s; export with --secrets to import new entries", hidden)
			continue
		case pw == hidden:
			f.Password = match.Password
		default:
			_, err := im.s.opt.FetchSealer.Open(pw)
			switch {
			case err == nil || (match != nil && pw == match.Password):
				f.Password = pw // sealed by a server with this SECRET_KEY
			case strings.HasPrefix(pw, sealedPrefix):
				im.fail(ip+".password", "Sealed with another SECRET_KEY; give the password in clear.")
				continue
			case match != nil && opensTo(im.s.opt.FetchSealer, match.Password, pw):
				f.Password = match.Password // the same password: no change
			default:
				sealed, err := im.s.opt.FetchSealer.Seal(pw)
				if err != nil {
					im.fail(ip+".password", "%s.", capital(err.Error()))
					continue
				}
				f.Password = sealed
			}
		}
		us.fetches = append(us.fetches, f)
	}
}

// opensTo: sealed is password, sealed.
func opensTo(s Sealer, sealed, password string) bool {
	pw, err := s.Open(sealed)
	return err == nil && pw == password
}

// sameRemote: the two accounts read the same remote mailbox.
func sameRemote(a, b *store.Fetch) bool {
	return a.Protocol == b.Protocol && strings.EqualFold(a.Host, b.Host) && a.Port == b.Port && a.Username == b.Username
}

// fetchFields reads one fetch object; pw is its password as given.
func (im *importer) fetchFields(obj map[string]any, path string) (f store.Fetch, pw string, ok bool) {
	ok = true
	bad := func(k, format string, a ...any) {
		im.fail(path+"."+k, format, a...)
		ok = false
	}
	for _, k := range []string{"protocol", "host", "port", "username", "password"} {
		if _, has := obj[k]; !has {
			bad(k, "Missing data for required field.")
		}
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		var err error
		switch k {
		case "id":
			if v != nil {
				f.ID, err = asInt(v)
			}
		case "protocol":
			f.Protocol, err = asString(v)
			f.Protocol = strings.ToLower(f.Protocol)
			if err == nil && f.Protocol != "imap" && f.Protocol != "pop3" {
				bad(k, "Must be one of: imap, pop3.")
			}
		case "host":
			f.Host, err = asString(v)
			f.Host = strings.ToLower(strings.TrimSuffix(f.Host, "."))
			if err == nil && (f.Host == "" || len(f.Host) > 255 || strings.ContainsAny(f.Host, " /:@\\")) {
				bad(k, "Not a valid host name.")
			}
		case "port":
			var n int64
			n, err = asInt(v)
			f.Port = int(n)
			if err == nil && (n < 1 || n > 65535) {
				bad(k, "Must be from 1 to 65535.")
			}
		case "tls":
			f.TLS, err = asBool(v)
		case "username":
			f.Username, err = asString(v)
			if err == nil && (f.Username == "" || len(f.Username) > 255) {
				bad(k, "Not a valid username.")
			}
		case "password":
			pw, err = asString(v)
			if err == nil && pw == "" {
				bad(k, "Field may not be empty.")
			}
		case "keep":
			f.Keep, err = asBool(v)
		case "scan":
			f.Scan, err = asBool(v)
		case "folders":
			f.Folders, err = asList(v)
		case "comment":
			f.Comment, err = asString(v)
			if err == nil && len(f.Comment) > maxComment {
				bad(k, "Not a valid string of at most %d characters.", maxComment)
			}
		case "last_check", "error", "created_at", "updated_at", "user_email":
			// The poller's state and timestamps are the store's.
		default:
			bad(k, "Unknown field.")
		}
		if err != nil {
			bad(k, "%s.", capital(err.Error()))
		}
	}
	return f, pw, ok
}

// applyFetches makes each user's fetched accounts what the import asks
// for. They are not in store.Accounts, so this runs after the account
// transaction has committed, as the Sieve scripts do; the input was
// checked before. With write false it only lists the changes.
func (im *importer) applyFetches(ctx context.Context, want *state, write bool) error {
	fs, kept := im.s.fetchStore()
	return eachImportedUser(want, "fetched accounts", kept,
		func(us *userState) (bool, int) { return us.fetchSet, len(us.fetches) },
		func(e string) error { return im.applyUserFetches(ctx, fs, e, want.users[e].fetches, write) })
}

func (im *importer) applyUserFetches(ctx context.Context, fs store.Fetches, user string, want []store.Fetch, write bool) error {
	have := map[int64]*store.Fetch{}
	for i, f := range im.oldFetches[user] {
		have[f.ID] = &im.oldFetches[user][i]
	}
	key := func(f *store.Fetch) string {
		return displayEmail(user) + " " + f.Protocol + "://" + f.Username + "@" + f.Host + ":" + strconv.Itoa(f.Port)
	}
	kept := map[int64]bool{}
	for i := range want {
		f := want[i]
		if o := have[f.ID]; f.ID != 0 && o != nil {
			kept[f.ID] = true
			if sameFetch(o, &f) {
				continue
			}
			if write {
				if err := fs.UpdateFetch(ctx, &f); err != nil {
					return err
				}
			}
			im.change("Modified", "fetch", key(&f), "")
			continue
		}
		if write {
			if err := fs.CreateFetch(ctx, &f); err != nil {
				return err
			}
		}
		im.change("Created", "fetch", key(&f), "")
	}
	for _, f := range im.oldFetches[user] {
		if kept[f.ID] {
			continue
		}
		if write {
			if err := fs.DeleteFetch(ctx, f.ID); err != nil {
				return err
			}
		}
		im.change("Deleted", "fetch", key(&f), "")
	}
	return nil
}

// sameFetch compares the settings an import sets.
func sameFetch(a, b *store.Fetch) bool {
	return sameRemote(a, b) && a.Host == b.Host && a.TLS == b.TLS && a.Password == b.Password && a.Keep == b.Keep &&
		a.Scan == b.Scan && slices.Equal(a.Folders, b.Folders) && a.Comment == b.Comment
}
