package mailuimport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/sieve"
	"github.com/petrelmail/petrel/internal/store"
)

// Mailu's Dovecot keeps each user's Sieve scripts as files (dovecot.conf:
// sieve = file:~/sieve;active=~/.dovecot.sieve): every <name>.sieve in
// <mail>/<user>/sieve is a script ManageSieve (or Roundcube) stored, and
// the symlink <mail>/<user>/.dovecot.sieve names the active one.
//
// Mailu's own script (spam into Junk, the auto-reply, the Delivered-To
// fix) is not among them: the admin renders it per delivery from
// default.sieve and Dovecot reads it over its dict socket (sieve_before =
// dict:proxy:/tmp/podop.socket:sieve); it never is a file in the user's
// directory. Petrel carries out those rules natively from the user's
// settings (docs/sieve.md), so there is nothing of it to import or leave
// out here; every file found is the user's own.

// origScript is the name Pigeonhole gives a .dovecot.sieve that is a
// regular file rather than a symlink when it first moves it into the
// script directory; the import does the same.
const origScript = "dovecot.orig"

// sieveFile is one of a user's scripts on disk.
type sieveFile struct {
	name, path string
}

// findSieve lists a user's scripts and names the active one ("" for
// none). The compiled .svbin files and Pigeonhole's tmp/ are not scripts.
func findSieve(root string) (files []sieveFile, active string, err error) {
	dir := filepath.Join(root, "sieve")
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".sieve")
		if !ok || name == "" || !e.Type().IsRegular() {
			continue
		}
		files = append(files, sieveFile{name: name, path: filepath.Join(dir, e.Name())})
	}
	link := filepath.Join(root, ".dovecot.sieve")
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, "", err
	case fi.Mode()&os.ModeSymlink != 0:
		// Pigeonhole writes "sieve/<name>.sieve", relative to the home;
		// an absolute link names Mailu's /mail, not where the volume is
		// mounted now, so only its last two parts count.
		target, err := os.Readlink(link)
		if err != nil {
			return nil, "", err
		}
		target = filepath.Clean(target)
		if filepath.Base(filepath.Dir(target)) == "sieve" {
			active, _ = strings.CutSuffix(filepath.Base(target), ".sieve")
		}
	case fi.Mode().IsRegular():
		active = origScript
		taken := false
		for _, f := range files {
			taken = taken || f.name == origScript
		}
		if !taken {
			files = append(files, sieveFile{name: origScript, path: link})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, active, nil
}

// validScriptName is RFC 5804 1.6, as ManageSieve checks it.
func validScriptName(name string) bool {
	if !utf8.ValidString(name) || len(name) > 512 {
		return false
	}
	for _, r := range name {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 {
			return false
		}
	}
	return true
}

// importSieve stores a user's scripts under their file names and
// activates the one .dovecot.sieve points to. A script Petrel already has
// by that name is left as it is, and the active one is set only while the
// user has no active script: a rerun after a complete import changes
// nothing, and one after an interrupted import still activates it.
func (im *importer) importSieve(ctx context.Context, user, root string) {
	files, active, err := findSieve(root)
	if err != nil {
		im.rep.skip("Sieve scripts of "+user, err.Error())
		return
	}
	// A dry run asks too, so that it reports what a rerun would find;
	// its users may not be in Petrel yet, which is no error then.
	infos, err := im.st.ListSieveScripts(ctx, user)
	if err != nil && !im.opt.DryRun {
		im.rep.skip("Sieve scripts of "+user, err.Error())
		return
	}
	have := map[string]bool{}
	hasActive := false
	for _, in := range infos {
		have[in.Name] = true
		hasActive = hasActive || in.Active
	}
	inPetrel := false // the active script is in Petrel now
	for _, f := range files {
		what := fmt.Sprintf("Sieve script %q of %s", f.name, user)
		if have[f.name] {
			im.rep.present("Sieve script")
			inPetrel = inPetrel || f.name == active
			continue
		}
		if !validScriptName(f.name) {
			im.rep.skip(what, "not a valid ManageSieve script name (RFC 5804 1.6)")
			continue
		}
		body, err := os.ReadFile(f.path)
		if err != nil {
			im.rep.skip(what, err.Error())
			continue
		}
		// Petrel runs what sieve.Check accepts (go-sieve, fewer
		// extensions than Pigeonhole): ManageSieve would refuse the
		// rest, so the import does too, with the line.
		if err := sieve.Check(body); err != nil {
			why := "Petrel cannot run it: " + err.Error()
			if f.name == active {
				why += " (it was the active script: the user has none now)"
			}
			im.rep.skip(what, why)
			continue
		}
		if im.opt.DryRun {
			im.rep.created("Sieve script")
			continue
		}
		// Dovecot had no script quota in Mailu (no sieve_quota_*): what
		// Mailu held comes across; only the size bound of sieve.Check
		// applies.
		if err := im.st.PutSieveScript(ctx, user, f.name, body, store.SieveLimits{MaxSize: sieve.MaxScriptSize}); err != nil {
			im.rep.skip(what, err.Error())
			continue
		}
		im.rep.created("Sieve script")
		inPetrel = inPetrel || f.name == active
	}
	if active == "" || im.opt.DryRun || hasActive || !inPetrel {
		return
	}
	if err := im.st.SetActiveSieveScript(ctx, user, active); err != nil {
		im.rep.skip(fmt.Sprintf("activating Sieve script %q of %s", active, user), err.Error())
	}
}
