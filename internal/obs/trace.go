package obs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// traceLineMax is how much of one protocol line a trace record shows; the
// rest is counted, not logged.
const traceLineMax = 512

// TraceFilter decides what a protocol trace shows of each line. It knows
// its protocol: it redacts passwords and SASL data, and summarises message
// data. It is called with the line without its line end, for the client's
// lines (fromClient) and the server's in the order each side's bytes
// pass, and it keeps whatever state it needs between calls (one filter per
// connection; calls are serialised).
type TraceFilter interface {
	// Line returns the text to log ("" to log nothing for this line) and
	// the number of raw bytes that follow the line and are opaque data (an
	// IMAP literal, a BDAT chunk): those are counted and summarised, never
	// logged. A negative opaque on a server line cancels the client's
	// pending opaque run (an announced IMAP literal the server refused,
	// which the client will not send).
	Line(fromClient bool, line string) (show string, opaque int64)
}

// Trace writes one connection's protocol dialogue to a logger at
// LevelTrace (LOG_LEVEL=TRACE), one record per line with dir=C (client)
// or dir=S (server), through a TraceFilter. It is safe for concurrent use.
type Trace struct {
	log    *slog.Logger
	filter TraceFilter

	mu           sync.Mutex
	client, srvr traceDir
}

// traceDir is one direction's line splitter.
type traceDir struct {
	fromClient bool
	line       []byte // the current line so far (at most traceLineMax bytes)
	dropped    int    // bytes of the current line beyond traceLineMax
	opaque     int64  // raw bytes still to count as opaque data
	opaqueLen  int64  // the size of the opaque run being counted
}

// NewTrace returns a Trace for log, or nil when log does not record
// LevelTrace: callers then skip tracing altogether, so it costs nothing
// below TRACE.
func NewTrace(log *slog.Logger, f TraceFilter) *Trace {
	if log == nil || f == nil || !log.Enabled(context.Background(), LevelTrace) {
		return nil
	}
	return &Trace{log: log, filter: f, client: traceDir{fromClient: true}}
}

// Client is the writer for the bytes read from the client.
func (t *Trace) Client() io.Writer { return traceWriter{t, true} }

// Server is the writer for the bytes sent to the client.
func (t *Trace) Server() io.Writer { return traceWriter{t, false} }

type traceWriter struct {
	t          *Trace
	fromClient bool
}

// Write never fails, so that a tee into it never disturbs the session.
func (w traceWriter) Write(p []byte) (int, error) {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	d := &w.t.srvr
	if w.fromClient {
		d = &w.t.client
	}
	w.t.feed(d, p)
	return len(p), nil
}

// feed splits p into lines and opaque runs. Caller holds mu.
func (t *Trace) feed(d *traceDir, p []byte) {
	for len(p) > 0 {
		if d.opaque > 0 {
			n := min(int64(len(p)), d.opaque)
			d.opaque -= n
			p = p[n:]
			if d.opaque == 0 {
				t.emit(d, fmt.Sprintf("[%d octets of data]", d.opaqueLen))
			}
			continue
		}
		i := 0
		for i < len(p) && p[i] != '\n' {
			i++
		}
		room := max(traceLineMax-len(d.line), 0)
		take := min(i, room)
		d.line = append(d.line, p[:take]...)
		d.dropped += i - take
		if i == len(p) {
			return // the line goes on in the next write
		}
		p = p[i+1:]
		line := strings.TrimSuffix(string(d.line), "\r")
		dropped := d.dropped
		d.line, d.dropped = d.line[:0], 0
		show, opaque := t.filter.Line(d.fromClient, line)
		if show != "" {
			if dropped > 0 {
				show += fmt.Sprintf(" [... %d more octets]", dropped)
			}
			t.emit(d, show)
		}
		switch {
		case opaque > 0:
			d.opaque, d.opaqueLen = opaque, opaque
		case opaque < 0 && !d.fromClient:
			t.client.opaque = 0
		}
	}
}

func (t *Trace) emit(d *traceDir, text string) {
	dir := "S"
	if d.fromClient {
		dir = "C"
	}
	t.log.Log(context.Background(), LevelTrace, "trace", "dir", dir, "line", sanitizeTrace(text))
}

// sanitizeTrace shows control characters escaped, so a trace line never
// breaks the log's own lines.
func sanitizeTrace(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			q := fmt.Sprintf("%q", s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
