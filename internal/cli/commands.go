package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/diagnose"
	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

const passwordHelp = `A PASSWORD of "-" is read from standard input (one line), so that it
does not show in the process list.`

// commands is the command table (Mailu: manage.py), in help order; the
// outbound commands (queue, dns, dkim) live in their own files.
func commands() []*command {
	cmds := accountCommands()
	cmds = append(cmds, sieveCommands()...)
	cmds = append(cmds, queueCommands()...)
	cmds = append(cmds, indexCommands()...)
	cmds = append(cmds, dnsCommands()...)
	cmds = append(cmds, tlsrptCommands()...)
	cmds = append(cmds, importCommands()...)
	return append(cmds, migrateCommands()...)
}

// accountCommands are Mailu's flask mailu commands plus config-check and
// diagnose.
func accountCommands() []*command {
	return []*command{
		{name: "admin", args: "LOCALPART DOMAIN PASSWORD", min: 3, max: 3, store: true,
			summary: "Create an admin user.",
			help: passwordHelp + `
The domain is created when it does not exist.`,
			opts: []opt{{short: "-m", long: "--mode", metavar: "MODE",
				help: "create (default): error if the user exists; ifmissing: leave an existing user alone; update: create, or set the password of an existing user."}},
			run: runAdmin},
		{name: "user", args: "LOCALPART DOMAIN PASSWORD", min: 3, max: 3, store: true,
			summary: "Create a user.",
			help: passwordHelp + `
The domain is created when it does not exist.`,
			run: runUser},
		{name: "password", args: "LOCALPART DOMAIN PASSWORD", min: 3, max: 3, store: true,
			summary: "Change the password of a user.",
			help:    passwordHelp,
			run:     runPassword},
		{name: "user-import", args: "LOCALPART DOMAIN PASSWORD_HASH", min: 3, max: 3, store: true,
			summary: "Import a user along with a password hash.",
			help: `The hash is stored as given, a Dovecot {SCHEME} prefix included
(bcrypt_sha256, bcrypt, sha512-crypt, sha256-crypt, md5-crypt, pbkdf2, des-crypt).
A PASSWORD_HASH of "-" is read from standard input.
The domain is created when it does not exist.`,
			run: runUserImport},
		{name: "user-delete", args: "EMAIL", min: 1, max: 1, store: true,
			summary: "Disable a user (delete it with -r).",
			opts:    []opt{{short: "-r", long: "--really", help: "Delete the user and its tokens instead of disabling it."}},
			run:     runUserDelete},
		{name: "domain", args: "NAME", min: 1, max: 1, store: true,
			summary: "Create a domain.",
			help:    "An existing domain is left unchanged (use setlimits).",
			opts: []opt{
				{short: "-u", long: "--max-users", metavar: "MAX_USERS", help: "Maximum number of users (-1 = unlimited, the default)."},
				{short: "-a", long: "--max-aliases", metavar: "MAX_ALIASES", help: "Maximum number of aliases (-1 = unlimited, the default)."},
				{short: "-q", long: "--max-quota-bytes", metavar: "MAX_QUOTA_BYTES", help: "Largest quota of a user (0 = unlimited, the default)."},
			},
			run: runDomain},
		{name: "setlimits", args: "DOMAIN MAX_USERS MAX_ALIASES MAX_QUOTA_BYTES", min: 4, max: 4, store: true,
			summary: "Set domain limits.",
			help:    "-1 means unlimited for MAX_USERS and MAX_ALIASES, 0 for MAX_QUOTA_BYTES.",
			run:     runSetLimits},
		{name: "setmanager", args: "DOMAIN USER", min: 2, max: 2, store: true,
			summary: "Make a user manager of a domain.",
			help:    "USER is a local part of DOMAIN or a full address.",
			run:     runSetManager},
		{name: "alias", args: "LOCALPART DOMAIN DESTINATIONS", min: 3, max: 3, store: true,
			summary: "Create an alias.",
			help: `DESTINATIONS is a comma-separated list of addresses.
With --wildcard the local part is a SQL LIKE pattern (% and _); %@DOMAIN is a catch-all.
The domain is created when it does not exist.`,
			opts: []opt{{short: "-w", long: "--wildcard", help: "The local part is a pattern."}},
			run:  runAlias},
		{name: "alias-delete", args: "EMAIL", min: 1, max: 1, store: true,
			summary: "Delete an alias.",
			run:     runAliasDelete},
		{name: "config-export", args: "[FILTER]...", min: 0, max: -1, store: true,
			summary: "Export configuration as YAML or JSON to stdout or file.",
			help: `Only non-default attributes are exported unless --full. Password and
token hashes and DKIM keys are shown as <hidden> unless --secrets.
FILTER limits the export to sections (domain, user, alias, relay) or
attributes (user.spam_threshold); named attributes are always exported.
Each user's Sieve scripts come as sieve_scripts: a list of name, active
and script (Petrel's own attribute; Mailu keeps them in Dovecot's files).`,
			opts: []opt{
				{short: "-f", long: "--full", help: "Include attributes with default value."},
				{short: "-s", long: "--secrets", help: "Include secret attributes (dkim-key, passwords)."},
				{short: "-d", long: "--dns", help: "Include dns records (not supported; ignored)."},
				{short: "-c", long: "--color", help: "Force colorized output (accepted, no effect)."},
				{short: "-o", long: "--output-file", metavar: "FILENAME", help: "Save configuration to file (mode 0600)."},
				{short: "-j", long: "--json", help: "Export configuration in json format."},
			},
			run: runConfigExport},
		{name: "config-import", args: "[FILENAME|-]", min: 0, max: 1, store: true,
			summary: "Import configuration as YAML or JSON from stdin or file.",
			help: `By default the input replaces the whole configuration: domains, users,
aliases and relays it does not list are deleted. --update merges it instead;
then "- -name: x" deletes an object, "- -email: null" deletes the objects not
listed, "-key: null" resets an attribute, and list items "-x" and "-prune-"
remove one or all other items. A user's sieve_scripts list is taken whole
(scripts it leaves out are deleted); each script is checked as ManageSieve
checks it, and an error names the line.`,
			opts: []opt{
				{short: "-v", long: "--verbose", help: "Increase verbosity (show every change)."},
				{short: "-s", long: "--secrets", help: "Show secret attributes in messages."},
				{short: "-d", long: "--debug", help: "Enable debug output (accepted, no effect)."},
				{short: "-q", long: "--quiet", help: "Quiet mode - only show errors."},
				{short: "-c", long: "--color", help: "Force colorized output (accepted, no effect)."},
				{short: "-u", long: "--update", help: "Update mode - merge input with existing config."},
				{short: "-n", long: "--dry-run", help: "Perform a trial run with no changes made."},
			},
			run: runConfigImport},
		{name: "config-check", args: "", min: 0, max: 0,
			summary: "Check the configuration and list every problem.",
			help: `Exits 1 when there is an error; warnings alone do not fail.
--list prints every setting Petrel reads with its default.`,
			opts: []opt{
				{long: "--list", help: "List the settings Petrel knows."},
				{long: "--markdown", help: "With --list: print the README's Markdown table."},
			},
			run: runConfigCheck},
		{name: "diagnose", args: "[LOGIN]", min: 0, max: 1, store: true,
			summary: "Explain the SMTP ports and how a mail client must log in.",
			help: `Lists which SMTP ports are on and off and why, connects to each one on
this machine (serve must be running), and prints the mail client settings.
With LOGIN (what the user types as username), explains whether that login
can work: full address, account enabled, app tokens, allowed senders.
Exits 1 when it finds a problem.`,
			opts: []opt{{long: "--no-probe", help: "Do not connect to the ports."}},
			run:  runDiagnose},
		{name: "doctor", args: "[DOMAIN...]", min: 0, max: -1, store: true,
			summary: "Check a running install end to end and say how to fix each problem.",
			help: `Automates Mailu's troubleshooting list: the ports (which answer, which are
off and why, no AUTH on 25), the certificate served (expiry, names, chain),
DNS for each domain and alternative (or the ones named) against what 'petrel dns' suggests:
MX, SPF, DKIM (the published key must be the signing key), DMARC, the
autoconfig names, MTA-STS and TLS-RPT where published, the server's A/AAAA
and forward-confirmed reverse DNS; the queue (deferred and old entries),
the database and the free disk space against DISK_RESERVE. DNS is asked
through RESOLVER_ADDRESS when set. Exits 1 when it finds a problem
(warnings alone do not fail), for monitoring. --user LOGIN adds the
login check of 'petrel diagnose LOGIN' (full address, account enabled,
app tokens).`,
			opts: []opt{
				{long: "--json", help: "Print the findings as JSON."},
				{long: "--no-probe", help: "Do not connect to this machine's ports."},
				{long: "--no-dns", help: "Skip the DNS checks."},
				{long: "--outbound", metavar: "HOST", help: "Also check that port 25 of HOST is reachable from here."},
				{long: "--user", metavar: "LOGIN", help: "Also explain this login (what the user types as username)."},
			},
			run: runDoctor},
	}
}

// runDiagnose prints the diagnosis; problems make the command fail.
func runDiagnose(c *call) error {
	login := ""
	if len(c.pos) > 0 {
		login = c.pos[0]
	}
	n := diagnose.Run(c.ctx, c.stdout, diagnose.Options{
		Config:   c.cfg,
		Accounts: c.st,
		Account:  login,
		Probe:    !c.flag("--no-probe"),
	})
	if n > 0 {
		return fmt.Errorf("%d problem(s) found (see above)", n)
	}
	return nil
}

// secretArg returns a password argument; "-" reads one line from stdin.
func (c *call) secretArg(i int) (string, error) {
	v := c.pos[i]
	if v != "-" {
		return v, nil
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on standard input")
		}
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password on standard input")
	}
	return line, nil
}

func runAdmin(c *call) error {
	pw, err := c.secretArg(2)
	if err != nil {
		return err
	}
	mode := c.vals["--mode"]
	if mode == "" {
		mode = admin.ModeCreate
	}
	if mode != admin.ModeCreate && mode != admin.ModeIfMissing && mode != admin.ModeUpdate {
		return usagef("invalid mode %q (want create, ifmissing or update)", mode)
	}
	res, err := c.svc.CreateAdmin(c.ctx, c.pos[0], c.pos[1], pw, mode)
	if err != nil {
		return err
	}
	if res == admin.AdminUnchanged {
		fmt.Fprintf(c.stdout, "user %s@%s exists, not updating\n", c.pos[0], c.pos[1])
		return nil
	}
	fmt.Fprintln(c.stdout, res.String())
	return nil
}

func runUser(c *call) error {
	pw, err := c.secretArg(2)
	if err != nil {
		return err
	}
	u, err := c.svc.AddUser(c.ctx, c.svc.NewUser(c.pos[0], c.pos[1]), pw, admin.CreateOptions{CreateDomain: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created user %s\n", u.Email)
	return nil
}

func runPassword(c *call) error {
	pw, err := c.secretArg(2)
	if err != nil {
		return err
	}
	email := c.pos[0] + "@" + c.pos[1]
	if err := c.svc.SetPassword(c.ctx, email, pw); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "updated password of %s\n", email)
	return nil
}

func runUserImport(c *call) error {
	h, err := c.secretArg(2)
	if err != nil {
		return err
	}
	u, err := c.svc.ImportUser(c.ctx, c.pos[0], c.pos[1], h)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "imported user %s\n", u.Email)
	return nil
}

func runUserDelete(c *call) error {
	if c.flag("--really") {
		if err := c.svc.DeleteUser(c.ctx, c.pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "deleted user %s\n", c.pos[0])
		return nil
	}
	if err := c.svc.DisableUser(c.ctx, c.pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "disabled user %s (use -r to delete)\n", c.pos[0])
	return nil
}

// intArg parses a numeric argument or option; a bad number is a usage error.
func intArg(name, v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, usagef("%s must be an integer, not %q", name, v)
	}
	return n, nil
}

func runDomain(c *call) error {
	lim := admin.DefaultLimits()
	if v, ok := c.vals["--max-users"]; ok {
		n, err := intArg("MAX_USERS", v)
		if err != nil {
			return err
		}
		lim.MaxUsers = int(n)
	}
	if v, ok := c.vals["--max-aliases"]; ok {
		n, err := intArg("MAX_ALIASES", v)
		if err != nil {
			return err
		}
		lim.MaxAliases = int(n)
	}
	if v, ok := c.vals["--max-quota-bytes"]; ok {
		n, err := intArg("MAX_QUOTA_BYTES", v)
		if err != nil {
			return err
		}
		lim.MaxQuotaBytes = n
	}
	d, err := c.svc.CreateDomain(c.ctx, c.pos[0], lim)
	if errors.Is(err, store.ErrExists) {
		// Mailu: manage.py domain leaves an existing domain alone.
		fmt.Fprintf(c.stdout, "domain %s exists, not changed (use setlimits)\n", c.pos[0])
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created domain %s\n", d.Name)
	return nil
}

func runSetLimits(c *call) error {
	u, err := intArg("MAX_USERS", c.pos[1])
	if err != nil {
		return err
	}
	a, err := intArg("MAX_ALIASES", c.pos[2])
	if err != nil {
		return err
	}
	q, err := intArg("MAX_QUOTA_BYTES", c.pos[3])
	if err != nil {
		return err
	}
	if err := c.svc.SetLimits(c.ctx, c.pos[0], admin.Limits{MaxUsers: int(u), MaxAliases: int(a), MaxQuotaBytes: q}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "set limits of %s: max_users %d, max_aliases %d, max_quota_bytes %d\n", c.pos[0], u, a, q)
	return nil
}

func runSetManager(c *call) error {
	if err := c.svc.SetManager(c.ctx, c.pos[0], c.pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s now manages %s\n", c.pos[1], c.pos[0])
	return nil
}

func runAlias(c *call) error {
	dst, err := admin.ParseDestinations(c.pos[2])
	if err != nil {
		return err
	}
	a := store.Alias{Localpart: c.pos[0], DomainName: c.pos[1], Destination: dst, Wildcard: c.flag("--wildcard")}
	created, err := c.svc.AddAlias(c.ctx, a, admin.CreateOptions{CreateDomain: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created alias %s -> %s\n", created.Email, strings.Join(created.Destination, ","))
	return nil
}

func runAliasDelete(c *call) error {
	if err := c.svc.DeleteAlias(c.ctx, c.pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "deleted alias %s\n", c.pos[0])
	return nil
}

// runDoctor runs every check and prints the findings; problems fail.
func runDoctor(c *call) error {
	opt := diagnose.DoctorOptions{
		Config:   c.cfg,
		Probe:    !c.flag("--no-probe"),
		Outbound: c.vals["--outbound"],
		Accounts: c.st,
		Login:    c.vals["--user"],
	}
	if st, ok := c.st.(diagnose.Store); ok {
		opt.Store = st
	}
	if b, err := sqlstore.BucketFromConfig(c.cfg); err != nil {
		return err
	} else if b != nil {
		opt.Bodies = b
	}
	if !c.flag("--no-dns") {
		opt.Resolver = dnsres.New(c.cfg.ResolverAddress)
		names := c.pos
		if len(names) == 0 {
			doms, err := c.st.ListDomains(c.ctx)
			if err != nil {
				return err
			}
			for _, d := range doms {
				names = append(names, d.Name)
			}
			// Alternatives receive mail too and sign with their domain's key.
			alts, err := c.st.ListAlternatives(c.ctx, "")
			if err != nil {
				return err
			}
			for _, a := range alts {
				names = append(names, a.Name)
			}
		}
		for _, n := range names {
			info, err := c.svc.DKIM(c.ctx, n)
			if err != nil {
				return err
			}
			recs, err := c.records(info)
			if err != nil {
				return err
			}
			opt.Domains = append(opt.Domains, diagnose.DomainRecords{Domain: info.Domain, Records: recs, NoDKIM: info.Record == ""})
		}
	}
	fs := diagnose.Doctor(c.ctx, opt)
	if c.flag("--json") {
		if err := diagnose.WriteJSON(c.stdout, fs); err != nil {
			return err
		}
	} else {
		diagnose.WriteText(c.stdout, fs)
	}
	if n := diagnose.Problems(fs); n > 0 {
		return fmt.Errorf("%d problem(s) found (see above)", n)
	}
	return nil
}
