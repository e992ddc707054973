// Command petrel is Mailu's whole mail server as one binary. main only picks
// the subcommand: serve hands over to internal/app, the Mailu-style admin
// commands to internal/cli.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/petrelmail/petrel/internal/app"
	"github.com/petrelmail/petrel/internal/cli"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/obs"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

func run(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	envFile := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "ENV_FILE="); ok {
			envFile = v
		}
	}
	// Global options come before the subcommand.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		switch {
		case a == "-h" || a == "--help" || a == "-?":
			usage(stdout)
			return cli.ExitOK
		case a == "--version":
			printVersion(stdout)
			return cli.ExitOK
		case a == "--env-file":
			if len(args) < 2 {
				fmt.Fprintln(stderr, "petrel: option --env-file requires a file name")
				return cli.ExitUsage
			}
			envFile, args = args[1], args[2:]
			continue
		case strings.HasPrefix(a, "--env-file="):
			envFile = strings.TrimPrefix(a, "--env-file=")
		default:
			fmt.Fprintf(stderr, "petrel: unknown option %s; see 'petrel help'\n", a)
			return cli.ExitUsage
		}
		args = args[1:]
	}
	if len(args) == 0 {
		usage(stderr)
		return cli.ExitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help":
		return help(rest, stdout, stderr)
	case "version":
		if wantsHelp(rest) {
			fmt.Fprintln(stdout, "Usage: petrel version\n\n  Print the version of Petrel and of Go it was built with.")
			return cli.ExitOK
		}
		printVersion(stdout)
		return cli.ExitOK
	case "serve", "quickstart":
		if wantsHelp(rest) {
			fmt.Fprint(stdout, helpFor(name))
			return cli.ExitOK
		}
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "petrel %s: unexpected argument %q; see 'petrel %s --help'\n", name, rest[0], name)
			return cli.ExitUsage
		}
	default:
		if !cli.Has(name) {
			fmt.Fprintf(stderr, "petrel: unknown command %q; see 'petrel help'\n", name)
			return cli.ExitUsage
		}
	}

	env, err := loadEnv(envFile, environ)
	if err != nil {
		// ReadEnvFile reports every bad line; keep them on one line.
		fmt.Fprintf(stderr, "petrel: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return cli.ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch name {
	case "serve":
		return serve(ctx, env, stderr)
	case "quickstart":
		err := app.Quickstart(ctx, app.QuickstartOptions{Env: env, Stdout: stdout, Stderr: stderr})
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "petrel quickstart: %v\n", err)
			return cli.ExitFailure
		}
		return cli.ExitOK
	}
	return cli.RunWith(ctx, app.WelcomeHook, args, env, stdin, stdout, stderr)
}

// loadEnv merges the --env-file (or ENV_FILE) with the process environment;
// the process environment wins.
func loadEnv(envFile string, environ []string) (map[string]string, error) {
	var file map[string]string
	if envFile != "" {
		f, err := config.ReadEnvFile(envFile)
		if err != nil {
			return nil, fmt.Errorf("env file: %w", err)
		}
		file = f
	}
	return config.Merge(file, environ), nil
}

func serve(ctx context.Context, env map[string]string, stderr io.Writer) int {
	cfg, probs := config.Parse(env)
	for _, p := range probs {
		fmt.Fprintf(stderr, "petrel serve: %s\n", p.String())
	}
	if config.HasErrors(probs) {
		return cli.ExitUsage
	}
	log, err := obs.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "petrel serve: %v\n", err)
		return cli.ExitUsage
	}
	if err := app.Run(ctx, cfg, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("petrel stopped", "err", err)
		return cli.ExitFailure
	}
	return cli.ExitOK
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-?" {
			return true
		}
	}
	return false
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "petrel %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

const quickstartHelp = `Usage: petrel [--env-file FILE] quickstart

  Try Petrel without any set-up: serve with friendly defaults for every
  setting not given (DATA_DIR=./petrel-data, DOMAIN=example.test,
  HOSTNAMES=localhost, every port on 127.0.0.1 at a high number: 2525 for
  the role of 25, 4465 for 465, ...). The first start creates
  admin@DOMAIN with a random password and prints it with the settings to
  type into a mail client. The settings used are written to
  DATA_DIR/petrel.env for later commands (petrel --env-file ... user ...).
`

func helpFor(name string) string {
	if name == "quickstart" {
		return quickstartHelp
	}
	return serveHelp
}

const serveHelp = `Usage: petrel [--env-file FILE] serve

  Run the mail server until SIGINT or SIGTERM.

  The configuration comes from the environment (Mailu's setting names),
  over the --env-file. Every problem is printed; any error stops petrel
  with exit code 2 before anything is opened.
`

func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return cli.ExitOK
	}
	if wantsHelp(args[:1]) {
		args = []string{"help"}
	}
	switch args[0] {
	case "serve", "quickstart":
		fmt.Fprint(stdout, helpFor(args[0]))
	case "version":
		fmt.Fprintln(stdout, "Usage: petrel version\n\n  Print the version of Petrel and of Go it was built with.")
	case "help":
		fmt.Fprintln(stdout, "Usage: petrel help [COMMAND]\n\n  Show the list of commands, or the help of one command.")
	default:
		if !cli.Has(args[0]) {
			fmt.Fprintf(stderr, "petrel help: unknown command %q\n", args[0])
			return cli.ExitUsage
		}
		cli.WriteHelp(stdout, args[0])
	}
	return cli.ExitOK
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: petrel [--env-file FILE] COMMAND [ARGS]...

  Petrel: Mailu's mail server as one binary.

Global options:
  --env-file FILE  Read settings from FILE (also ENV_FILE=FILE); the process
                   environment wins over the file.
  -h, --help       Show this message and exit.

Commands:
`)
	rows := [][2]string{
		{"serve", "Run the mail server."},
		{"quickstart", "Run a ready-to-try server with defaults and a first admin."},
		{"version", "Print the version."},
		{"help", "Show help for a command."},
	}
	for _, c := range cli.Commands() {
		rows = append(rows, [2]string{c.Name, c.Summary})
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
	fmt.Fprint(w, "\nRun 'petrel COMMAND --help' for the arguments of a command.\n")
}
