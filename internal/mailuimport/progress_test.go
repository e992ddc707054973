package mailuimport

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgress: a terminal gets one bar redrawn in place with counts,
// bytes and rate; a log gets plain lines, one per folder too.
func TestProgress(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var tty bytes.Buffer
	p := newProgress(&tty, true, 200, clock)
	now = now.Add(time.Second)
	p.add(100, 2<<20)
	p.finish()
	out := tty.String()
	if !strings.HasPrefix(out, "\r[###############               ] 100/200 messages (50%), 2.0 MiB, 100 msg/s") ||
		!strings.HasSuffix(out, "\n") || strings.Count(out, "\r") != 2 {
		t.Errorf("terminal: %q", out)
	}
	var log bytes.Buffer
	p = newProgress(&log, false, 10, clock)
	p.add(1, 10) // within 5 s of the start: no line yet
	now = now.Add(6 * time.Second)
	p.add(1, 10)
	p.folderDone("Work/2024", "anna@one.test", 2)
	p.finish()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 || lines[0] != "import: 2/10 messages (20%), 20 B, 0 msg/s, 3 B/s" ||
		lines[1] != "import: folder Work/2024 of anna@one.test: 2 messages" || strings.Contains(log.String(), "\r") {
		t.Errorf("log: %q", log.String())
	}
}
