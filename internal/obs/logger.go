// Package obs holds Petrel's logging helpers: slog setup from Mailu's
// LOG_LEVEL/LOG_FORMAT, a redacting handler, connection ids and per-connection
// loggers. It depends on the standard library only.
package obs

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/netip"
	"strings"
)

// Custom levels beyond slog's four.
const (
	// LevelTrace is for wire traces (SMTP/IMAP dialogue); below DEBUG so that
	// LOG_LEVEL=DEBUG does not flood the log with protocol lines.
	LevelTrace = slog.LevelDebug - 4
	// LevelCritical mirrors Python logging's CRITICAL, which Mailu accepts in
	// LOG_LEVEL.
	LevelCritical = slog.LevelError + 4
)

// ParseLevel maps a Mailu LOG_LEVEL value to a slog level. Names are Python
// logging's (Mailu: LOG_LEVEL is passed to logging.basicConfig), in any
// case: TRACE, DEBUG, INFO, WARNING/WARN, ERROR, CRITICAL/FATAL, and NOTSET
// (treated as DEBUG). The empty string means INFO, Mailu's default.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace, nil
	case "DEBUG", "NOTSET":
		return slog.LevelDebug, nil
	case "", "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	case "CRITICAL", "FATAL":
		return LevelCritical, nil
	}
	return 0, fmt.Errorf("obs: unknown log level %q (want DEBUG, INFO, WARNING, ERROR or CRITICAL)", s)
}

// LevelName is the name Petrel prints for a level: slog's names plus TRACE
// and CRITICAL instead of "DEBUG-4" and "ERROR+4".
func LevelName(l slog.Level) string {
	switch l {
	case LevelTrace:
		return "TRACE"
	case LevelCritical:
		return "CRITICAL"
	}
	return l.String()
}

// NewLogger builds the process logger. level is a Mailu LOG_LEVEL name (see
// ParseLevel); format is LOG_FORMAT, "text" (default when empty) or "json",
// in any case. Every record passes through a RedactHandler.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: renameLevel}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("obs: unknown log format %q (want text or json)", format)
	}
	return slog.New(NewRedactHandler(h)), nil
}

// renameLevel prints TRACE and CRITICAL by name.
func renameLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(LevelName(l))
		}
	}
	return a
}

// ConnLogger returns base with the attributes every connection record
// carries: cid, proto and remote (omitted when remote is not valid, as for
// in-process pipes).
func ConnLogger(base *slog.Logger, cid, proto string, remote netip.AddrPort) *slog.Logger {
	if remote.IsValid() {
		return base.With("cid", cid, "proto", proto, "remote", remote.String())
	}
	return base.With("cid", cid, "proto", proto)
}

// NewLogLogger bridges l to a *log.Logger for libraries that only take a
// printf logger (go-smtp's Server.ErrorLog). Each line becomes one record at
// level; the trailing newline is dropped.
func NewLogLogger(l *slog.Logger, level slog.Level) *log.Logger {
	return slog.NewLogLogger(l.Handler(), level)
}
