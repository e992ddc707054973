package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// quickstartPorts moves every role to an unprivileged loopback port, so a
// newcomer can try Petrel as any user next to an existing mail server.
func quickstartPorts() map[int]int {
	return map[int]int{25: 2525, 465: 4465, 587: 5587, 993: 9993, 143: 1143, 995: 9995, 110: 1110, 4190: 14190, 80: 8080, 443: 8443}
}

// quickstartPortList is Mailu's default PORTS without the roles this build
// does not serve yet (config.UnservedPorts), so the first start warns
// about nothing.
func quickstartPortList() string {
	unserved := config.UnservedPorts()
	var out []string
	for _, p := range strings.Split(config.DefaultPorts, ",") {
		if n, err := strconv.Atoi(p); err == nil && unserved[n] == "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// ensureSecretFile creates DATA_DIR/secret.key with a random key unless it
// exists (the file serve would otherwise create) and returns its path.
func ensureSecretFile(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "secret.key")
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return path, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("creating %s: %w", dataDir, err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go 1.24+)
	if err := secret.WriteFile(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// selfCommand is how the newcomer runs this binary again: "petrel" when
// that is on PATH and is this binary, "go run ./cmd/petrel" under go run
// (its binary is a temporary file), else the binary's absolute path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "petrel"
	}
	exe, _ = filepath.EvalSymlinks(exe)
	if p, err := exec.LookPath("petrel"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			if a, err := filepath.Abs(p); err == nil && a == exe {
				return "petrel"
			}
		}
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/petrel"
	}
	return exe
}

// QuickstartOptions is what `petrel quickstart` needs.
type QuickstartOptions struct {
	Env    map[string]string // settings from the environment and --env-file
	Stdout io.Writer         // where the welcome text goes
	Stderr io.Writer         // logs
}

// Quickstart fills in friendly defaults for every setting the newcomer did
// not give (DATA_DIR=./petrel-data, DOMAIN=example.test, loopback ports),
// creates admin@DOMAIN with a random password on the first start, writes the
// settings to DATA_DIR/petrel.env for later CLI calls, prints what to type
// into a mail client, and serves until ctx ends.
func Quickstart(ctx context.Context, opt QuickstartOptions) error {
	env := make(map[string]string, len(opt.Env)+16)
	for k, v := range opt.Env {
		env[k] = v
	}
	defaults := map[string]string{
		"DATA_DIR":            "./petrel-data",
		"DOMAIN":              "example.test",
		"HOSTNAMES":           "localhost",
		"POSTMASTER":          "admin",
		"RECIPIENT_DELIMITER": "+",
		"PORTS":               quickstartPortList(),
		// A trial on loopback publishes no DNS, so it serves no MTA-STS
		// policy (whose host name its self-signed certificate would not
		// cover: a warning on the first start).
		"MTA_STS_MODE": "none",
	}
	for p, q := range quickstartPorts() {
		defaults["LISTEN_"+strconv.Itoa(p)] = "127.0.0.1:" + strconv.Itoa(q)
	}
	for k, v := range defaults {
		if env[k] == "" {
			env[k] = v
		}
	}
	dataDir, err := filepath.Abs(env["DATA_DIR"])
	if err != nil {
		return err
	}
	env["DATA_DIR"] = dataDir
	// The secret key lives in DATA_DIR/secret.key (never in petrel.env);
	// naming the file makes the first start clean and every later CLI call
	// with --env-file use the same key.
	if env["SECRET_KEY"] == "" && env["SECRET_KEY_FILE"] == "" {
		file, err := ensureSecretFile(dataDir)
		if err != nil {
			return err
		}
		env["SECRET_KEY_FILE"] = file
		defaults["SECRET_KEY_FILE"] = file
	}

	cfg, problems := config.Parse(env)
	// A LISTEN_ address quickstart chose for a port that stays off (587,
	// 143 and 110 unless PORTS names them) is dropped, not warned about.
	dropped := false
	for p := range quickstartPorts() {
		k := "LISTEN_" + strconv.Itoa(p)
		if l, ok := cfg.Listeners[p]; ok && !l.Enabled && env[k] == defaults[k] && opt.Env[k] == "" {
			delete(env, k)
			delete(defaults, k)
			dropped = true
		}
	}
	if dropped {
		cfg, problems = config.Parse(env)
	}
	for _, p := range problems {
		fmt.Fprintln(opt.Stderr, p.String())
	}
	if config.HasErrors(problems) {
		return fmt.Errorf("the settings have errors (listed above)")
	}
	log, err := obs.NewLogger(opt.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	password, err := ensureQuickstartAdmin(ctx, cfg, log)
	if err != nil {
		return err
	}
	envFile := filepath.Join(dataDir, "petrel.env")
	if err := writeEnvFile(envFile, env, defaults); err != nil {
		return err
	}
	printWelcome(opt.Stdout, cfg, password, envFile, selfCommand())
	return Run(ctx, cfg, log)
}

// ensureQuickstartAdmin creates admin@DOMAIN on the first start and returns
// its password; on later starts it returns "".
func ensureQuickstartAdmin(ctx context.Context, cfg *config.Config, log *slog.Logger) (string, error) {
	st, err := sqlstore.OpenConfig(ctx, cfg, log.With("part", "store"))
	if err != nil {
		return "", err
	}
	defer st.Close()
	welcome, closeWelcome := WelcomeHook(ctx, cfg, st, log)
	defer func() {
		if err := closeWelcome(); err != nil {
			log.Error("closing the welcome delivery", "err", err)
		}
	}()
	master, err := secret.Load(cfg, log)
	if err != nil {
		return "", err
	}
	keys, err := newDKIMKeys(cfg, st, master, log.With("part", "dkim"))
	if err != nil {
		return "", err
	}
	svc := admin.New(st, admin.Options{
		Welcome:              welcome,
		DefaultQuota:         cfg.DefaultQuota,
		DefaultSpamThreshold: cfg.DefaultSpamThreshold,
		CredentialRounds:     cfg.CredentialRounds,
		DKIMKeys:             keys,
		DKIMSelector:         cfg.DKIMSelector,
		Logger:               log.With("part", "admin"),
	})
	if _, err := st.GetUser(ctx, "admin@"+cfg.Domain); err == nil {
		return "", nil
	}
	password := randomPassword()
	if _, err := svc.CreateAdmin(ctx, "admin", cfg.Domain, password, admin.ModeIfMissing); err != nil {
		if !errors.Is(err, admin.ErrDKIMKey) {
			return "", fmt.Errorf("creating admin@%s: %w", cfg.Domain, err)
		}
		log.Warn("the domain has no DKIM key; outbound mail goes unsigned", "err", err)
	}
	return password, nil
}

// randomPassword returns 16 characters from an alphabet without look-alikes.
func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// writeEnvFile records the quickstart settings (never secrets) so that
// `petrel --env-file DATA_DIR/petrel.env user ...` reaches the same data.
func writeEnvFile(path string, env, defaults map[string]string) error {
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by `petrel quickstart`: the settings it used. Use it with\n# petrel --env-file " + path + " COMMAND ...\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	return secret.WriteFile(path, []byte(b.String()), 0o600)
}

func printWelcome(w io.Writer, cfg *config.Config, password, envFile, self string) {
	host := cfg.Hostnames[0]
	port := func(p int) string {
		_, n, _ := net.SplitHostPort(cfg.Listeners[p].Addr)
		return n
	}
	user := "admin@" + cfg.Domain
	fmt.Fprintf(w, "\nPetrel quickstart: mail domain %s, data in %s\n\n", cfg.Domain, cfg.DataDir)
	fmt.Fprintf(w, "  Admin account:  %s\n", user)
	if password != "" {
		fmt.Fprintf(w, "  Password:       %s   (shown only now; change it with: %s --env-file %s password admin %s -)\n", password, self, envFile, cfg.Domain)
	} else {
		fmt.Fprintf(w, "  Password:       as printed at the first start (reset: %s --env-file %s password admin %s -)\n", self, envFile, cfg.Domain)
	}
	fmt.Fprintf(w, "\n  Mail client settings (username: always the full address, %s; normal password):\n", user)
	// The same three roles Mailu's client setup page lists (993, 995, 465).
	for _, r := range []struct {
		p    int
		what string
	}{{993, "incoming (IMAP)"}, {995, "incoming (POP3)"}, {465, "outgoing (SMTP)"}} {
		if l := cfg.Listeners[r.p]; l.Enabled {
			fmt.Fprintf(w, "    %-16s server %s, port %s, SSL/TLS, username %s\n", r.what+":", host, port(r.p), user)
		}
	}
	if l := cfg.Listeners[587]; l.Enabled {
		fmt.Fprintf(w, "    %-16s server %s, port %s, STARTTLS, username %s\n", "or outgoing:", host, port(587), user)
	}
	fmt.Fprintf(w, "  Servers deliver to you on port %s (the role of port 25: no login, no relaying).\n", port(25))
	fmt.Fprintf(w, "  The certificate is self-signed: accept it in the client, or install a real one in %s.\n", filepath.Join(cfg.DataDir, "certs"))
	fmt.Fprintf(w, "\n  More users:     %s --env-file %s user alice %s -\n", self, envFile, cfg.Domain)
	fmt.Fprintf(w, "  Check setup:    %s --env-file %s diagnose %s\n\n", self, envFile, user)
}
