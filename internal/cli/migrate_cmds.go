package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

func migrateCommands() []*command {
	return []*command{
		{name: "migrate-store", args: "", min: 0, max: 0,
			summary: "Copy a SQLite install's store into PostgreSQL.",
			help: `Copies every table of the SQLite store under --from (sqlite:DATA_DIR, the
directory holding main.db and blobs/) into the PostgreSQL database --to
names (a postgresql:// URL), in one transaction, from one snapshot of the
source. Both are brought to this version's migrations first and must then
have the same ones. Bodies kept as files come into the database when the
target keeps bodies of their size there, else into --blob-dir. The rows of
every table are counted on both sides before the commit; a difference
rolls everything back. A target that already holds data is refused unless
--force (which replaces it). Stop petrel serve on the source first, or
mail that arrives during the copy stays behind. Afterwards set DB_FLAVOR
(or SQLALCHEMY_DATABASE_URI) on every node.`,
			opts: []opt{
				{long: "--from", metavar: "sqlite:DATA_DIR", help: "The SQLite install to copy."},
				{long: "--to", metavar: "URL", help: "The PostgreSQL database (postgresql://user:pass@host/db)."},
				{long: "--blob-dir", metavar: "DIR", help: "The target's blob directory for bodies kept as files (default: DATA_DIR/blobs of this configuration, else of --from)."},
				{long: "--force", help: "Replace what the target holds."},
				{short: "-q", long: "--quiet", help: "No progress display."},
			},
			run: runMigrateStore},
	}
}

func runMigrateStore(c *call) error {
	from, ok := strings.CutPrefix(c.vals["--from"], "sqlite:")
	if !ok || from == "" {
		return usagef("--from wants sqlite:DATA_DIR")
	}
	to := c.vals["--to"]
	if !strings.HasPrefix(to, "postgresql://") && !strings.HasPrefix(to, "postgres://") {
		return usagef("--to wants a postgresql:// URL")
	}
	blobDir := c.vals["--blob-dir"]
	if blobDir == "" {
		dir := c.env["DATA_DIR"]
		if dir == "" {
			dir = from
		}
		blobDir = filepath.Join(dir, "blobs")
	}
	// With BLOB_S3_* set, bodies already in the bucket stay there and
	// the target names the same objects; new large bodies go there too.
	cfg, _ := config.Parse(c.env)
	objs, err := sqlstore.BucketFromConfig(cfg)
	if err != nil {
		return err
	}
	src, err := sqlstore.Open(c.ctx, sqlstore.Options{Flavor: sqlstore.FlavorSQLite,
		Path: filepath.Join(from, "main.db"), BlobDir: filepath.Join(from, "blobs"), Objects: objs})
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := sqlstore.Open(c.ctx, sqlstore.Options{Flavor: sqlstore.FlavorPostgreSQL, DSN: to, BlobDir: blobDir, NoListen: true, Objects: objs})
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	opt := sqlstore.CopyOptions{Force: c.flag("--force")}
	if !c.flag("--quiet") {
		opt.Progress = progressBar(c.stderr, isTerminal(c.stderr))
	}
	rep, err := src.CopyTo(c.ctx, dst, opt)
	if rep != nil {
		fmt.Fprintf(c.stdout, "%-24s %10s %10s\n", "TABLE", "SOURCE", "TARGET")
		for _, t := range rep.Tables {
			mark := "ok"
			if t.Source != t.Target {
				mark = "DIFFERS"
			}
			fmt.Fprintf(c.stdout, "%-24s %10d %10d  %s\n", t.Table, t.Source, t.Target, mark)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "copied %d tables; %d body files moved into the database, %d kept as files in %s\n",
		len(rep.Tables), rep.Inlined, rep.Files, blobDir)
	return nil
}

// progressBar draws one line per table: redrawn in place on a terminal,
// printed once when the table is done otherwise (logs stay short).
func progressBar(w io.Writer, tty bool) func(table string, done, total int64) {
	return func(table string, done, total int64) {
		if !tty && done < total {
			return
		}
		const width = 30
		fill := width
		if total > 0 {
			fill = int(done * width / total)
		}
		line := fmt.Sprintf("%-24s [%s%s] %d/%d rows", table, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
		switch {
		case !tty:
			fmt.Fprintln(w, line)
		case done < total:
			fmt.Fprint(w, "\r"+line)
		default:
			fmt.Fprint(w, "\r"+line+"\n")
		}
	}
}
