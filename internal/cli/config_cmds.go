package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/config"
)

func runConfigExport(c *call) error {
	if c.flag("--dns") {
		fmt.Fprintf(c.stderr, "petrel config-export: warning: --dns ignored (dns records are not exported)\n")
	}
	doc, err := c.svc.Export(c.ctx, admin.ExportOptions{
		Full:    c.flag("--full"),
		Secrets: c.flag("--secrets"),
		Only:    c.pos,
	})
	if err != nil {
		return err
	}
	var out []byte
	if c.flag("--json") {
		out, err = doc.JSON()
	} else {
		out, err = doc.YAML()
	}
	if err != nil {
		return err
	}
	name, ok := c.vals["--output-file"]
	if !ok || name == "-" {
		_, err := c.stdout.Write(out)
		return err
	}
	// Mailu writes the file with umask 077: it may hold secrets.
	return writePrivate(name, out)
}

// writePrivate writes data to name with mode 0600, replacing it atomically.
func writePrivate(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".petrel-export-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func runConfigImport(c *call) error {
	var (
		data []byte
		err  error
	)
	if len(c.pos) == 0 || c.pos[0] == "-" {
		data, err = io.ReadAll(c.stdin)
	} else {
		data, err = os.ReadFile(c.pos[0])
	}
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	quiet := c.flag("--quiet")
	res, err := c.svc.Import(c.ctx, data, admin.ImportOptions{
		Update:  c.flag("--update"),
		DryRun:  c.flag("--dry-run"),
		Secrets: c.flag("--secrets"),
	})
	if res != nil {
		for _, w := range res.Warnings {
			fmt.Fprintf(c.stderr, "petrel config-import: warning: %s\n", w)
		}
		if c.flag("--verbose") && !quiet {
			for _, ch := range res.Changes {
				fmt.Fprintln(c.stdout, ch.String())
			}
		}
	}
	if err != nil {
		var ie *admin.ImportError
		if errors.As(err, &ie) {
			return fmt.Errorf("%s", ie.Error())
		}
		return err
	}
	if !quiet {
		if res.DryRun {
			fmt.Fprintf(c.stdout, "Dry run. Not committing changes. %s\n", res.Summary())
		} else {
			fmt.Fprintf(c.stdout, "Committing changes. %s\n", res.Summary())
		}
	}
	return nil
}

// roleNames names the role each Mailu port number stands for.
var roleNames = map[int]string{
	25: "smtp", 80: "http", 443: "https", 465: "submissions", 587: "submission",
	993: "imaps", 143: "imap", 995: "pop3s", 110: "pop3", 4190: "sieve",
}

// runConfigCheck prints every configuration problem, one per line, or OK
// and what Petrel would do. Only errors fail (exit 1).
func runConfigCheck(c *call) error {
	if c.flag("--list") {
		if c.flag("--markdown") {
			fmt.Fprint(c.stdout, config.MarkdownTable())
			return nil
		}
		writeSettings(c.stdout)
		return nil
	}
	cfg, probs := config.Parse(c.env)
	for _, p := range probs {
		fmt.Fprintln(c.stdout, p.String())
	}
	if config.HasErrors(probs) {
		n := 0
		for _, p := range probs {
			if !p.Warning {
				n++
			}
		}
		return fmt.Errorf("%d error(s) in the configuration", n)
	}
	fmt.Fprintln(c.stdout, "OK: "+summary(cfg))
	return nil
}

// summary says in one line what serve would run with.
func summary(cfg *config.Config) string {
	var on, off, unserved []string
	for _, port := range sortedKeys(cfg.Listeners) {
		l := cfg.Listeners[port]
		name := fmt.Sprintf("%d/%s", port, roleNames[port])
		switch why := cfg.NotServed(port); {
		case l.Enabled && why != "":
			unserved = append(unserved, name+" ("+why+")")
		case l.Enabled:
			on = append(on, name+" on "+l.Addr)
		default:
			off = append(off, strconv.Itoa(port))
		}
	}
	flavor := cfg.DBFlavor
	if flavor == "" {
		flavor = "sqlite"
	}
	s := fmt.Sprintf("domain %s, hostnames %s; data in %s (%s, tls %s); listening: %s",
		cfg.Domain, strings.Join(cfg.Hostnames, ","), cfg.DataDir, flavor, cfg.TLSFlavor, strings.Join(on, ", "))
	if len(off) > 0 {
		s += "; off (add to PORTS): " + strings.Join(off, ",")
	}
	if len(unserved) > 0 {
		s += "; enabled but not served: " + strings.Join(unserved, ", ")
	}
	return s
}

// writeSettings prints config.Known() as a table.
func writeSettings(w io.Writer) {
	docs := config.Known()
	nameW, defW := len("SETTING"), len("DEFAULT")
	for _, d := range docs {
		nameW = max(nameW, len(d.Name))
		defW = max(defW, len(displayDefault(d)))
	}
	defW = min(defW, 40)
	fmt.Fprintf(w, "%-*s  %-*s  %s\n", nameW, "SETTING", defW, "DEFAULT", "MEANING")
	for _, d := range docs {
		meaning := d.Meaning
		if d.Differs != "" {
			meaning += " [" + d.Differs + "]"
		}
		fmt.Fprintf(w, "%-*s  %-*s  %s\n", nameW, d.Name, defW, displayDefault(d), meaning)
	}
}

func displayDefault(d config.SettingDoc) string {
	switch {
	case d.Secret && d.Default != "":
		return "(secret)"
	case d.Default == "":
		return "-"
	}
	return d.Default
}
