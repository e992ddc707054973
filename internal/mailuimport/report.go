package mailuimport

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Skip is one thing that did not come across, and why.
type Skip struct {
	What   string
	Reason string
	// Unsupported: Petrel has no place for it (Mailu's config table:
	// Petrel takes its settings from the environment), as opposed to
	// something that failed.
	Unsupported bool
}

// Report is what an import did.
type Report struct {
	DryRun   bool
	Created  map[string]int // kind -> objects created (or that would be, dry run)
	Present  map[string]int // kind -> objects Petrel already had
	Skips    []Skip
	Notes    []string
	Messages int64 // messages stored by this run
	Already  int64 // messages a previous run stored
	Bytes    int64 // bytes of the messages stored
	Folders  int
}

func newReport(dry bool) *Report {
	return &Report{DryRun: dry, Created: map[string]int{}, Present: map[string]int{}}
}

func (r *Report) created(kind string) { r.Created[kind]++ }
func (r *Report) present(kind string) { r.Present[kind]++ }
func (r *Report) note(s string)       { r.Notes = append(r.Notes, s) }
func (r *Report) skip(what, why string) {
	r.Skips = append(r.Skips, Skip{What: what, Reason: why})
}
func (r *Report) unsupported(what, why string) {
	r.Skips = append(r.Skips, Skip{What: what, Reason: why, Unsupported: true})
}

// Complete reports whether everything came across: nothing failed and
// nothing was left out.
func (r *Report) Complete() bool { return len(r.Skips) == 0 }

// Failed reports whether something failed (beyond what Petrel has no
// place for).
func (r *Report) Failed() bool {
	for _, s := range r.Skips {
		if !s.Unsupported {
			return true
		}
	}
	return false
}

// maxListed bounds the skips printed one by one; the rest are counted by
// reason.
const maxListed = 50

// Write prints the summary.
func (r *Report) Write(w io.Writer) {
	verb := "imported"
	if r.DryRun {
		verb = "would import"
	}
	kinds := map[string]bool{}
	for k := range r.Created {
		kinds[k] = true
	}
	for k := range r.Present {
		kinds[k] = true
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "Summary (%s):\n", verb)
	for _, k := range names {
		fmt.Fprintf(w, "  %-12s %d new, %d already there\n", plural(k)+":", r.Created[k], r.Present[k])
	}
	fmt.Fprintf(w, "  %-12s %d in %d folders, %s; %d already there\n", "messages:", r.Messages, r.Folders, humanBytes(r.Bytes), r.Already)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(r.Skips) == 0 {
		fmt.Fprintln(w, "Everything came across.")
		return
	}
	fmt.Fprintf(w, "Not imported (%d):\n", len(r.Skips))
	byReason := map[string]int{}
	for i, s := range r.Skips {
		if i < maxListed {
			fmt.Fprintf(w, "  %s: %s\n", s.What, s.Reason)
			continue
		}
		byReason[s.Reason]++
	}
	if len(byReason) > 0 {
		reasons := make([]string, 0, len(byReason))
		for k := range byReason {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		for _, k := range reasons {
			fmt.Fprintf(w, "  ... %d more: %s\n", byReason[k], k)
		}
	}
	if r.Failed() {
		fmt.Fprintln(w, "Some data did not come across (see above); fix the cause and run the import again: it resumes.")
	} else {
		fmt.Fprintln(w, "Everything Petrel can hold came across; the items above have no place in Petrel.")
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(kind string) string {
	if strings.HasSuffix(kind, "s") {
		return kind + "es"
	}
	return kind + "s"
}
