package mailuimport

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress shows messages done of the total, bytes and the rate: a bar
// redrawn in place on a terminal, a plain line every few seconds
// otherwise (a log, a pipe).
type progress struct {
	w        io.Writer
	tty      bool
	every    time.Duration
	total    int64
	start    time.Time
	mu       sync.Mutex
	done     int64
	bytes    int64
	last     time.Time
	drawn    bool
	now      func() time.Time
	lastLine string
}

func newProgress(w io.Writer, tty bool, total int64, now func() time.Time) *progress {
	every := 5 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	t := now()
	return &progress{w: w, tty: tty, every: every, total: total, start: t, last: t, now: now}
}

// add counts n messages of b bytes (stored or found already there).
func (p *progress) add(n, b int64) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.bytes += b
	t := p.now()
	if t.Sub(p.last) < p.every {
		return
	}
	p.last = t
	p.draw(t, false)
}

func (p *progress) draw(t time.Time, final bool) {
	secs := t.Sub(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.done) / secs
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	text := fmt.Sprintf("%d/%d messages (%.0f%%), %s, %.0f msg/s, %s/s",
		p.done, p.total, pct, humanBytes(p.bytes), rate, humanBytes(int64(float64(p.bytes)/max(secs, 0.001))))
	if !p.tty {
		if text != p.lastLine {
			fmt.Fprintln(p.w, "import: "+text)
			p.lastLine = text
		}
		return
	}
	const width = 30
	fill := int(pct / 100 * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < fill {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %s\x1b[K", bar, text)
	p.drawn = true
	if final {
		fmt.Fprintln(p.w)
	}
}

// finish draws the last state.
func (p *progress) finish() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(p.now(), true)
}

// rate returns messages per second so far.
func (p *progress) rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	secs := p.now().Sub(p.start).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(p.done) / secs
}

// folderDone prints a line per finished folder when not on a terminal,
// so that a log shows where an interrupted import stopped.
func (p *progress) folderDone(name, user string, n int) {
	if p == nil || p.w == nil || p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "import: folder %s of %s: %d messages\n", name, user, n)
}
