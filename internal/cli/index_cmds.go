package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/fts"
	"github.com/petrelmail/petrel/internal/imapd"
	"github.com/petrelmail/petrel/internal/store"
)

// indexCommands is `petrel index`: the full-text index behind IMAP
// SEARCH BODY and TEXT (FULL_TEXT_SEARCH, docs/search.md).
func indexCommands() []*command {
	return []*command{
		{name: "index", args: "rebuild [USER] | status", min: 1, max: 2, store: true,
			summary: "Rebuild the full-text search index, or show how far it is.",
			help: `rebuild drops the index of every message (or of USER's) and indexes
them again now, printing a progress line (bodies, rate); a running
server keeps answering SEARCH meanwhile, reading what is not indexed
yet. status counts indexed and pending messages, the text indexed and
the index's size. \Junk and \Trash are not indexed.`,
			run: runIndex},
	}
}

func runIndex(c *call) error {
	st, ok := c.st.(fts.Store)
	if !ok {
		return errors.New("this store keeps no full-text index")
	}
	switch c.pos[0] {
	case "status":
		if len(c.pos) > 1 {
			return usagef("status takes no argument")
		}
		return indexStatus(c, st)
	case "rebuild":
	default:
		return usagef("unknown action %q (rebuild, status)", c.pos[0])
	}
	if !c.cfg.FullTextSearch {
		return errors.New("FULL_TEXT_SEARCH is off: SEARCH would not use the index")
	}
	user := ""
	if len(c.pos) > 1 {
		var err error
		if user, err = admin.NormalizeEmail(c.pos[1]); err != nil {
			return usagef("USER: %v", err)
		}
		if _, err := c.st.GetUser(c.ctx, user); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no such user: %s", user)
			}
			return err
		}
	}
	dropped, err := st.DropFullText(c.ctx, user)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "dropped %d index rows\n", dropped)
	if cp, ok := st.(store.FullTextCompactor); ok && user != "" {
		// The user's entries go from the shared lists before they come back.
		if _, err := cp.CompactFullText(c.ctx, true); err != nil {
			return err
		}
	}
	ix := fts.NewIndexer(fts.IndexerOptions{
		Store: st, Extract: imapd.FullTextExtractor(c.cfg.FullTextAttachments),
		Attachments: c.cfg.FullTextAttachments, Logger: c.log,
	})
	start := time.Now()
	rate := func(n int) float64 { return float64(n) / max(time.Since(start).Seconds(), 1e-3) }
	n, err := ix.IndexAll(c.ctx, user, func(done int) {
		fmt.Fprintf(c.stderr, "\rindexed %d messages, %.0f/s", done, rate(done))
	})
	if n > 0 {
		fmt.Fprintln(c.stderr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "indexed %d messages in %.1fs (%.0f/s)\n", n, time.Since(start).Seconds(), rate(n))
	return nil
}

func indexStatus(c *call, st fts.Store) error {
	s, err := st.FullTextStatus(c.ctx)
	if err != nil {
		return err
	}
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	w := c.stdout
	fmt.Fprintf(w, "full-text search: %s (attachments %s)\n", onOff(c.cfg.FullTextSearch), onOff(c.cfg.FullTextAttachments))
	fmt.Fprintf(w, "indexed:  %d messages\n", s.Indexed)
	fmt.Fprintf(w, "pending:  %d messages\n", s.Pending)
	fmt.Fprintf(w, "excluded: %d messages (only in \\Junk or \\Trash)\n", s.Excluded)
	fmt.Fprintf(w, "text:     %s\n", mib(s.TextBytes))
	if s.IndexBytes > 0 {
		ratio := ""
		if s.TextBytes > 0 {
			ratio = fmt.Sprintf(" (%.0f%% of the text)", 100*float64(s.IndexBytes)/float64(s.TextBytes))
		}
		fmt.Fprintf(w, "index:    %s%s\n", mib(s.IndexBytes), ratio)
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
