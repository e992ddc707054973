package admin

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/petrelmail/petrel/internal/managesieve"
	"github.com/petrelmail/petrel/internal/sieve"
	"github.com/petrelmail/petrel/internal/store"
)

// Users' Sieve scripts in config-export and config-import, as the user
// attribute sieve_scripts: a list of {name, active, script}. Mailu has no
// such attribute (its scripts are files in Dovecot's volume); the name
// follows its attribute style (snake case, grouped by prefix like spam_*
// and reply_*) and says what the items are: RFC 5804's named scripts, not
// one "sieve" value.

// sieveScript is one script of a user in the configuration.
type sieveScript struct {
	name   string
	active bool
	script []byte
}

// importSieveLimits: what config-export wrote must import again, and
// scripts that came from Mailu (import-mailu) were stored without a count
// or storage bound, so only the size bound of sieve.Check applies.
var importSieveLimits = store.SieveLimits{MaxSize: sieve.MaxScriptSize}

func (s *Service) sieveStore() (store.SieveScripts, bool) {
	ss, ok := s.st.(store.SieveScripts)
	return ss, ok
}

// readSieve returns a user's scripts by name.
func readSieve(ctx context.Context, ss store.SieveScripts, user string) ([]sieveScript, error) {
	l, err := ss.ListSieveScripts(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]sieveScript, 0, len(l))
	for _, i := range l {
		b, err := ss.GetSieveScript(ctx, user, i.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, sieveScript{name: i.Name, active: i.Active, script: b})
	}
	return out, nil
}

// sieveField is the sieve_scripts attribute of an export.
func sieveField(scripts []sieveScript) efield {
	l := make([]omap, 0, len(scripts))
	for _, sc := range scripts {
		// A literal block reads back with LF line ends only; a script
		// with CR (ManageSieve clients send CRLF) is a quoted string.
		var v any = literal(sc.script)
		if bytes.IndexByte(sc.script, '\r') >= 0 {
			v = string(sc.script)
		}
		l = append(l, omap{{Key: "name", Val: sc.name}, {Key: "active", Val: sc.active}, {Key: "script", Val: v}})
	}
	return efield{key: "sieve_scripts", val: l, def: len(l) == 0}
}

// setSieve reads a user's sieve_scripts attribute: the list is the user's
// whole set of scripts, checked as ManageSieve's PUTSCRIPT checks them.
func (im *importer) setSieve(us *userState, v any, path string) {
	us.sieveSet, us.sieve = true, nil
	if v == nil {
		return
	}
	items, ok := v.([]any)
	if !ok {
		im.fail(path, "Not a valid list.")
		return
	}
	seen := map[string]bool{}
	active := ""
	for i, it := range items {
		ip := path + "." + strconv.Itoa(i)
		obj, ok := it.(map[string]any)
		if !ok {
			im.fail(ip, "Invalid input type.")
			continue
		}
		var sc sieveScript
		good := true
		for _, k := range sortedKeys(obj) {
			var err error
			switch k {
			case "name":
				sc.name, err = asString(obj[k])
				if err == nil {
					if why := managesieve.ValidName(sc.name); why != "" {
						err = fmt.Errorf("%s", why)
					}
				}
			case "active":
				sc.active, err = asBool(obj[k])
			case "script":
				var body string
				if body, err = asString(obj[k]); err == nil {
					sc.script = []byte(body)
					err = sieve.Check(sc.script)
				}
			default:
				im.fail(ip+"."+k, "Unknown field.")
				good = false
			}
			if err != nil {
				im.fail(ip+"."+k, "%s.", capital(err.Error()))
				good = false
			}
		}
		for _, k := range []string{"name", "script"} {
			if _, ok := obj[k]; !ok {
				im.fail(ip+"."+k, "Missing data for required field.")
				good = false
			}
		}
		if !good {
			continue
		}
		if seen[sc.name] {
			im.fail(ip+".name", "Script %q is listed twice.", sc.name)
			continue
		}
		seen[sc.name] = true
		if sc.active {
			if active != "" {
				im.fail(ip+".active", "Scripts %q and %q are both active; at most one may be.", active, sc.name)
				continue
			}
			active = sc.name
		}
		us.sieve = append(us.sieve, sc)
	}
}

// applySieve makes each user's scripts what the import asks for. Scripts
// are not part of the account transaction (store.Accounts), so this runs
// after it has committed, like the DKIM key files; the input was checked
// before, so only a store failure can stop it half way. With write false
// it only lists the changes (dry run).
func (im *importer) applySieve(ctx context.Context, want *state, write bool) error {
	ss, kept := im.s.sieveStore()
	return eachImportedUser(want, "Sieve scripts", kept,
		func(us *userState) (bool, int) { return us.sieveSet, len(us.sieve) },
		func(e string) error { return im.applyUserSieve(ctx, ss, e, want.users[e].sieve, write) })
}

// eachImportedUser runs apply, in order, for every user whose input set
// a part that lives outside the account transaction (Sieve scripts,
// fetched accounts): part reports whether the input set it and how many
// entries it holds. When the store does not keep the part (kept false),
// an input that carries any is an error and the rest is left alone.
func eachImportedUser(want *state, what string, kept bool, part func(*userState) (bool, int), apply func(email string) error) error {
	var users []string
	for _, e := range sortedMapKeys(want.users) {
		if set, _ := part(want.users[e]); set {
			users = append(users, e)
		}
	}
	if !kept {
		for _, e := range users {
			if _, n := part(want.users[e]); n > 0 {
				return fmt.Errorf("admin: import: this store keeps no %s", what)
			}
		}
		return nil
	}
	for _, e := range users {
		if err := apply(e); err != nil {
			return fmt.Errorf("admin: import: %s of %s: %w", what, e, err)
		}
	}
	return nil
}

func (im *importer) applyUserSieve(ctx context.Context, ss store.SieveScripts, user string, want []sieveScript, write bool) error {
	have, err := readSieve(ctx, ss, user)
	if err != nil {
		return err
	}
	cur := map[string]sieveScript{}
	wasActive := ""
	for _, sc := range have {
		cur[sc.name] = sc
		if sc.active {
			wasActive = sc.name
		}
	}
	key := func(name string) string { return displayEmail(user) + " " + strconv.Quote(name) }
	active := ""
	wanted := map[string]bool{}
	for _, sc := range want {
		wanted[sc.name] = true
		if sc.active {
			active = sc.name
		}
		o, exists := cur[sc.name]
		if exists && bytes.Equal(o.script, sc.script) {
			continue
		}
		if write {
			if err := ss.PutSieveScript(ctx, user, sc.name, sc.script, importSieveLimits); err != nil {
				return err
			}
		}
		if exists {
			im.change("Modified", "sieve_script", key(sc.name), "script")
		} else {
			im.change("Created", "sieve_script", key(sc.name), "")
		}
	}
	if active != wasActive {
		if write {
			if err := ss.SetActiveSieveScript(ctx, user, active); err != nil {
				return err
			}
		}
		im.change("Modified", "sieve_script", displayEmail(user), fmt.Sprintf("active: %q -> %q", wasActive, active))
	}
	for _, sc := range have {
		if wanted[sc.name] {
			continue
		}
		if write {
			if err := ss.DeleteSieveScript(ctx, user, sc.name); err != nil {
				return err
			}
		}
		im.change("Deleted", "sieve_script", key(sc.name), "")
	}
	return nil
}
