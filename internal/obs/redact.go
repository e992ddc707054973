package obs

import (
	"context"
	"log/slog"
	"strings"
)

// Redacted replaces the value of every secret attribute.
const Redacted = "REDACTED"

// IsSecretKey reports whether an attribute with this key is redacted
// (case-insensitive): password, pass, secret, token, auth_payload. Typed
// secrets (LogValuer) are the first line of defence; this is the safety net
// for a stray slog.String("password", pw).
func IsSecretKey(key string) bool {
	switch strings.ToLower(key) { // no allocation when already lower case
	case "password", "pass", "secret", "token", "auth_payload":
		return true
	}
	return false
}

// RedactHandler wraps a slog.Handler and replaces the value of every
// attribute whose key IsSecretKey with Redacted, also inside groups and in
// the groups LogValuers resolve to. Keys of map or struct values logged with
// slog.Any are not inspected.
type RedactHandler struct {
	next slog.Handler
}

// NewRedactHandler wraps next.
func NewRedactHandler(next slog.Handler) *RedactHandler {
	return &RedactHandler{next: next}
}

// Enabled implements slog.Handler.
func (h *RedactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler. Records without secrets pass unchanged.
func (h *RedactHandler) Handle(ctx context.Context, r slog.Record) error {
	dirty := false
	r.Attrs(func(a slog.Attr) bool {
		_, dirty = redactAttr(a)
		return !dirty
	})
	if !dirty {
		return h.next.Handle(ctx, r)
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		a, _ = redactAttr(a)
		nr.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, nr)
}

// WithAttrs implements slog.Handler.
func (h *RedactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i], _ = redactAttr(a)
	}
	return &RedactHandler{next: h.next.WithAttrs(out)}
}

// WithGroup implements slog.Handler.
func (h *RedactHandler) WithGroup(name string) slog.Handler {
	return &RedactHandler{next: h.next.WithGroup(name)}
}

// redactAttr returns a with secrets replaced and whether anything changed.
// LogValuers are resolved first, since they may produce a group holding a
// secret.
func redactAttr(a slog.Attr) (slog.Attr, bool) {
	if IsSecretKey(a.Key) {
		return slog.String(a.Key, Redacted), true
	}
	changed := false
	if a.Value.Kind() == slog.KindLogValuer {
		a.Value = a.Value.Resolve()
		changed = true
	}
	if a.Value.Kind() != slog.KindGroup {
		return a, changed
	}
	members := a.Value.Group()
	var out []slog.Attr // allocated on the first change only
	for i, m := range members {
		rm, c := redactAttr(m)
		if c && out == nil {
			out = make([]slog.Attr, len(members))
			copy(out, members[:i])
		}
		if out != nil {
			out[i] = rm
		}
	}
	if out == nil {
		return a, changed
	}
	return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}, true
}
