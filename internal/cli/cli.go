// Package cli is Petrel's version of Mailu's `flask mailu` commands
// (core/admin/mailu/manage.py, docs/cli.rst): the same command names,
// arguments and options, calling internal/admin. Each command opens the
// store from the configuration, runs, and closes it. A failure prints one
// line to stderr and returns a non-zero exit code: 1 when the command
// failed, 2 for a usage or configuration error.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// opt is one option of a command. Options may come before, between or after
// the positional arguments, as Click (Mailu's CLI library) allows.
type opt struct {
	short, long string // "-m", "--mode"
	metavar     string // "" for a flag
	help        string
}

type command struct {
	name     string
	args     string // usage of the positionals, e.g. "LOCALPART DOMAIN PASSWORD"
	min, max int    // positional count; max < 0 = any
	summary  string
	help     string // more lines after the summary
	opts     []opt
	store    bool // needs the store
	run      func(c *call) error
}

// call is one run of a command.
type call struct {
	ctx   context.Context
	cmd   *command
	pos   []string
	flags map[string]int    // long name -> times given
	vals  map[string]string // long name -> value
	env   map[string]string
	cfg   *config.Config
	svc   *admin.Service
	// welcomeHook builds the WELCOME delivery; welcomeClose ends it.
	welcomeHook  WelcomeHook
	welcomeClose func() error
	st           store.Store
	tlsa         []string // TLSA data petrel dns prints
	log          *slog.Logger
	stdin        io.Reader
	stdout       io.Writer
	stderr       io.Writer
}

func (c *call) flag(long string) bool { return c.flags[long] > 0 }

// exitCode ends a command with that code and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a wrong invocation: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

var helpOpt = opt{short: "-h", long: "--help", help: "Show this message and exit."}

// CommandInfo describes one command for the top-level help.
type CommandInfo struct {
	Name    string
	Args    string
	Summary string
}

// Commands lists the commands Run knows, in the order help shows them.
func Commands() []CommandInfo {
	var out []CommandInfo
	for _, c := range commands() {
		out = append(out, CommandInfo{Name: c.name, Args: c.args, Summary: c.summary})
	}
	return out
}

// Has reports whether name is a command Run knows.
func Has(name string) bool { return findCommand(name) != nil }

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Run runs one command. args[0] is the command name, the rest its
// arguments; env is the merged environment (process environment over the
// --env-file). It returns the process exit code.
func Run(ctx context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	return RunWith(ctx, nil, args, env, stdin, stdout, stderr)
}

// WelcomeHook builds admin.Options.Welcome for a command's store and a
// function that closes it (app.WelcomeHook: the serve's local delivery).
// main passes it in, so that cli does not depend on app.
type WelcomeHook func(ctx context.Context, cfg *config.Config, st *sqlstore.Store, log *slog.Logger) (func(context.Context, *store.User), func() error)

// RunWith is Run with WELCOME wired: users the command creates get the
// welcome message through welcome (nil: no welcome message).
func RunWith(ctx context.Context, welcome WelcomeHook, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "petrel: no command given; see 'petrel help'")
		return ExitUsage
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "petrel: unknown command %q; see 'petrel help'\n", args[0])
		return ExitUsage
	}
	c := &call{ctx: ctx, cmd: cmd, env: env, stdin: stdin, stdout: stdout, stderr: stderr, welcomeHook: welcome}
	help, err := c.parse(args[1:])
	if err != nil {
		return c.fail(err)
	}
	if help {
		WriteHelp(stdout, cmd.name)
		return ExitOK
	}
	if err := c.setup(); err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := cmd.run(c); err != nil {
		return c.fail(err)
	}
	return ExitOK
}

// fail prints err as one line and returns its exit code.
func (c *call) fail(err error) int {
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec) // the command has said why
	}
	msg := err.Error()
	var ae *admin.Error
	if errors.As(err, &ae) {
		msg = ae.Msg
	}
	msg = strings.Join(strings.Fields(msg), " ")
	code := ExitFailure
	var ue *usageError
	if errors.As(err, &ue) {
		code = ExitUsage
		msg += "; see 'petrel " + c.cmd.name + " --help'"
	}
	var ce *configError
	if errors.As(err, &ce) {
		code = ExitUsage
	}
	fmt.Fprintf(c.stderr, "petrel %s: %s\n", c.cmd.name, msg)
	return code
}

// parse splits args into options and positionals. It reports whether help
// was asked for.
func (c *call) parse(args []string) (bool, error) {
	c.flags, c.vals = map[string]int{}, map[string]string{}
	find := func(name string) *opt {
		for i := range c.cmd.opts {
			o := &c.cmd.opts[i]
			if name == o.short || name == o.long {
				return o
			}
		}
		return nil
	}
	help := false
	onlyPos := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case onlyPos || a == "-" || !strings.HasPrefix(a, "-") || isNumber(a):
			c.pos = append(c.pos, a)
			continue
		case a == "--":
			onlyPos = true
			continue
		case a == "-h" || a == "--help" || a == "-?":
			help = true
			continue
		}
		if strings.HasPrefix(a, "--") {
			name, val, hasVal := strings.Cut(a, "=")
			o := find(name)
			if o == nil {
				return false, usagef("no such option: %s", name)
			}
			if o.metavar == "" {
				if hasVal {
					return false, usagef("option %s does not take a value", name)
				}
				c.flags[o.long]++
				continue
			}
			if !hasVal {
				if i+1 >= len(args) {
					return false, usagef("option %s requires an argument", name)
				}
				i++
				val = args[i]
			}
			c.vals[o.long] = val
			continue
		}
		// Short options, possibly grouped (-nv) or with a glued value (-ofile).
		for j := 1; j < len(a); j++ {
			o := find("-" + a[j:j+1])
			if o == nil {
				return false, usagef("no such option: -%s", a[j:j+1])
			}
			if o.metavar == "" {
				c.flags[o.long]++
				continue
			}
			val := a[j+1:]
			if val == "" {
				if i+1 >= len(args) {
					return false, usagef("option %s requires an argument", o.short)
				}
				i++
				val = args[i]
			}
			c.vals[o.long] = val
			break
		}
	}
	if help {
		return true, nil
	}
	n := len(c.pos)
	if n < c.cmd.min || (c.cmd.max >= 0 && n > c.cmd.max) {
		want := strconv.Itoa(c.cmd.min)
		switch {
		case c.cmd.max < 0:
			want = "at least " + want
		case c.cmd.max != c.cmd.min:
			want = fmt.Sprintf("%d to %d", c.cmd.min, c.cmd.max)
		}
		return false, usagef("expected %s argument(s) (%s), got %d", want, c.cmd.args, n)
	}
	return false, nil
}

// isNumber lets negative numbers through as positionals (setlimits d -1 -1 0).
func isNumber(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// configError is a configuration that does not parse: exit code 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// loadConfig parses the environment. Commands need a valid configuration:
// the first error is reported with a pointer to config-check.
func loadConfig(env map[string]string) (*config.Config, []config.Problem, error) {
	cfg, probs := config.Parse(env)
	if config.HasErrors(probs) {
		var errs []string
		for _, p := range probs {
			if !p.Warning {
				errs = append(errs, p.String())
			}
		}
		more := ""
		if len(errs) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(errs)-1)
		}
		return cfg, probs, &configError{msg: fmt.Sprintf("configuration: %s%s; run 'petrel config-check'", errs[0], more)}
	}
	return cfg, probs, nil
}

// setup loads the configuration and, when the command needs it, opens the
// store and builds the admin service.
func (c *call) setup() error {
	if !c.cmd.store {
		return nil
	}
	cfg, _, err := loadConfig(c.env)
	if err != nil {
		return err
	}
	c.cfg = cfg
	level := "WARNING"
	if strings.EqualFold(cfg.LogLevel, "DEBUG") || strings.EqualFold(cfg.LogLevel, "TRACE") {
		level = cfg.LogLevel
	}
	log, err := obs.NewLogger(c.stderr, level, cfg.LogFormat)
	if err != nil {
		log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c.log = log
	st, err := sqlstore.OpenConfigCommand(c.ctx, cfg, log)
	if err != nil {
		return err
	}
	c.st = st
	var welcome func(context.Context, *store.User)
	if c.welcomeHook != nil {
		welcome, c.welcomeClose = c.welcomeHook(c.ctx, cfg, st, log)
	}
	keys, err := dkimKeys(cfg, st, log)
	if err != nil {
		return err
	}
	c.svc = admin.New(st, admin.Options{
		DefaultQuota:         cfg.DefaultQuota,
		DefaultSpamThreshold: cfg.DefaultSpamThreshold,
		CredentialRounds:     cfg.CredentialRounds,
		DKIMKeys:             keys,
		DKIMSelector:         cfg.DKIMSelector,
		Logger:               log,
		Welcome:              welcome,
		FetchSealer:          &lazySealer{cfg: cfg, log: log},
	})
	return nil
}

func (c *call) close() {
	if c.welcomeClose != nil {
		// Drains the deliverer before the store closes.
		if err := c.welcomeClose(); err != nil {
			fmt.Fprintf(c.stderr, "petrel %s: close delivery: %v\n", c.cmd.name, err)
		}
	}
	if c.st != nil {
		if err := c.st.Close(); err != nil {
			fmt.Fprintf(c.stderr, "petrel %s: close store: %v\n", c.cmd.name, err)
		}
	}
}

// WriteHelp prints a command's usage, summary and options.
func WriteHelp(w io.Writer, name string) {
	cmd := findCommand(name)
	if cmd == nil {
		return
	}
	optsPart := ""
	if len(cmd.opts) > 0 {
		optsPart = " [OPTIONS]"
	}
	fmt.Fprintf(w, "Usage: petrel %s%s %s\n\n  %s\n", cmd.name, optsPart, cmd.args, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", indent(cmd.help, "  "))
	}
	fmt.Fprintf(w, "\nOptions:\n")
	all := append(append([]opt(nil), cmd.opts...), helpOpt)
	rows := make([][2]string, 0, len(all))
	width := 0
	for _, o := range all {
		left := o.short + ", " + o.long
		if o.short == "" {
			left = "    " + o.long
		}
		if o.metavar != "" {
			left += " " + o.metavar
		}
		if len(left) > width {
			width = len(left)
		}
		rows = append(rows, [2]string{left, o.help})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n")
}

// sortedKeys is for deterministic output.
func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

// dkimKeys returns the DKIM keys in the store, as serve builds them
// (internal/app newDKIMKeys): sealed under SECRET_KEY, DKIM_PATH the
// import format and, when set explicitly, the export format too.
func dkimKeys(cfg *config.Config, st store.DKIMKeys, log *slog.Logger) (*msgauth.Keys, error) {
	master, err := secret.Load(cfg, log)
	if err != nil {
		return nil, err
	}
	sealer, err := secret.NewSealer(master, msgauth.SealPurpose)
	if err != nil {
		return nil, err
	}
	return msgauth.NewStoreKeys(msgauth.KeysOptions{
		Store: st, Sealer: sealer, Path: cfg.DKIMPath, ExportFiles: cfg.DKIMPathSet,
		Selector: cfg.DKIMSelector, Logger: log,
	})
}
