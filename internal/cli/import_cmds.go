package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/mailuimport"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store"
)

// ExitPartial: import-mailu brought everything Petrel can hold, but left
// out data it has no place for (Mailu's config table entries).
const ExitPartial = 3

func importCommands() []*command {
	return []*command{
		{name: "import-mailu", args: "", min: 0, max: 0, store: true,
			summary: "Import a Mailu install: accounts, every Maildir, Sieve scripts, DKIM keys.",
			help: `Reads Mailu's admin database (--db: the path of main.db, or the
postgresql:// URL of SQLALCHEMY_DATABASE_URI), the Maildirs under --mail
(Mailu's /mail, one directory per address as Dovecot wrote it) and the keys
under --dkim (Mailu's /dkim), and writes them to the store this
configuration names (DATA_DIR or DB_FLAVOR) and to DKIM_PATH.

Domains, alternatives, relays, users (password hashes as Mailu stored them,
so nobody needs a new password), aliases, managers and app tokens come
across with auto-reply, forwarding, spam settings and quotas. Messages keep
their UIDs and each folder its UIDVALIDITY (dovecot-uidlist), so mail
clients keep their caches; flags and keywords come from the file names and
dovecot-keywords, INTERNALDATE from the file time, subscriptions from the
subscriptions file; gz, bz2 and zstd files (Mailu's COMPRESSION) are
decompressed. Each user's Sieve scripts (sieve/*.sieve in the Maildir) come
across by name, the one .dovecot.sieve points to active; a script Petrel
cannot run is listed with the line at fault. Fetched accounts come across
with their remote passwords sealed under SECRET_KEY, as serve keeps them.

Objects Petrel already has are left as they are and messages whose UID is
already in their folder are skipped, so an interrupted import resumes when
run again and a second run changes nothing. Stop serve during the import.
Exit status: 0 when everything came across, 1 when something did not (the
summary lists it), 3 when only data Petrel has no place for was left out
(Mailu's config table: Petrel takes its settings from the environment).`,
			opts: []opt{
				{long: "--db", metavar: "MAIN_DB", help: "Mailu's main.db, or a postgresql:// URL."},
				{long: "--mail", metavar: "DIR", help: "Mailu's mail directory (/mail)."},
				{long: "--dkim", metavar: "DIR", help: "Mailu's DKIM key directory (/dkim)."},
				{long: "--dkim-selector", metavar: "SELECTOR", help: "Mailu's DKIM_SELECTOR (default dkim)."},
				{short: "-n", long: "--dry-run", help: "Read everything and report what would be imported; change nothing."},
				{short: "-q", long: "--quiet", help: "No progress display."},
				{long: "--batch", metavar: "N", help: "Messages per transaction (default 1000)."},
			},
			run: runImportMailu},
	}
}

func runImportMailu(c *call) error {
	if c.vals["--db"] == "" && c.vals["--mail"] == "" {
		return usagef("give --db, --mail or both")
	}
	st, ok := c.st.(mailuimport.Store)
	if !ok {
		return errors.New("this store cannot import messages")
	}
	opt := mailuimport.Options{
		DB:            c.vals["--db"],
		MailDir:       c.vals["--mail"],
		DKIMDir:       c.vals["--dkim"],
		MailuSelector: c.vals["--dkim-selector"],
		DKIMPath:      c.cfg.DKIMPath,
		Selector:      c.cfg.DKIMSelector,
		DryRun:        c.flag("--dry-run"),
	}
	// Fetched accounts' passwords are sealed with the key serve opens
	// them with (SECRET_KEY, or the DATA_DIR/secret.key serve would
	// make); a dry run writes nothing, that file included.
	if !opt.DryRun {
		master, err := secret.Load(c.cfg, c.log)
		if err != nil {
			return err
		}
		sealer, err := fetch.NewSealerFor(master)
		if err != nil {
			return err
		}
		opt.SealPassword = sealer.Seal
		if ks, ok := c.st.(store.DKIMKeys); ok {
			if opt.DKIMKeys, err = dkimKeys(c.cfg, ks, c.log); err != nil {
				return err
			}
		}
	}
	if v := c.vals["--batch"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return usagef("--batch wants a positive number, not %q", v)
		}
		opt.BatchMessages = n
	}
	if !c.flag("--quiet") {
		opt.Progress = c.stderr
		opt.TTY = isTerminal(c.stderr)
	}
	rep, err := mailuimport.Run(c.ctx, st, opt)
	rep.Write(c.stdout)
	if err != nil {
		return fmt.Errorf("import stopped: %w (run it again to resume)", err)
	}
	switch {
	case rep.Failed():
		return exitCode(ExitFailure)
	case !rep.Complete():
		return exitCode(ExitPartial)
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
