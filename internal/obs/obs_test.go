package obs

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"", slog.LevelInfo},
		{"INFO", slog.LevelInfo},
		{"info", slog.LevelInfo},
		{" Info ", slog.LevelInfo},
		{"DEBUG", slog.LevelDebug},
		{"NOTSET", slog.LevelDebug},
		{"TRACE", LevelTrace},
		{"WARNING", slog.LevelWarn},
		{"warn", slog.LevelWarn},
		{"ERROR", slog.LevelError},
		{"CRITICAL", LevelCritical},
		{"fatal", LevelCritical},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"verbose", "10", "WARNINGS", "DEBUG,INFO"} {
		if _, err := ParseLevel(bad); err == nil {
			t.Errorf("ParseLevel(%q) succeeded, want error", bad)
		}
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"", "INFO", "warning", "CRITICAL", "x", "tRaCe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLevel(s)
		if err != nil {
			return
		}
		// Every accepted level prints under a name that parses back to it.
		name := LevelName(l)
		if name == "WARN" {
			name = "WARNING"
		}
		back, err := ParseLevel(name)
		if err != nil || back != l {
			t.Fatalf("ParseLevel(%q)=%v; LevelName=%q parses to %v, %v", s, l, name, back, err)
		}
	})
}

func TestNewLoggerThreshold(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "WARNING", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	log.Log(t.Context(), LevelCritical, "crit")
	out := buf.String()
	if strings.Contains(out, "hidden") {
		t.Errorf("INFO record logged at WARNING: %q", out)
	}
	if !strings.Contains(out, "level=WARN msg=shown") {
		t.Errorf("WARN record missing: %q", out)
	}
	if !strings.Contains(out, "level=CRITICAL msg=crit") {
		t.Errorf("CRITICAL record missing or misnamed: %q", out)
	}

	buf.Reset()
	log, err = NewLogger(&buf, "trace", "")
	if err != nil {
		t.Fatal(err)
	}
	log.Log(t.Context(), LevelTrace, "wire", "line", "EHLO x")
	if !strings.Contains(buf.String(), "level=TRACE msg=wire") {
		t.Errorf("TRACE record missing or misnamed: %q", buf.String())
	}

	if _, err := NewLogger(&buf, "INFO", "xml"); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := NewLogger(&buf, "LOUD", "json"); err == nil {
		t.Error("level LOUD accepted")
	}
}

func TestJSONConnLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	base, err := NewLogger(&buf, "DEBUG", "JSON")
	if err != nil {
		t.Fatal(err)
	}
	remote := netip.MustParseAddrPort("[2001:db8::1]:40123")
	cl := ConnLogger(base, "abc123def456", "smtp", remote)
	cl.Info("received", "msgid", "<1@x>", "rcpt", "a@b.example")

	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON object: %v: %q", err, buf.String())
	}
	want := map[string]any{
		"level": "INFO", "msg": "received", "cid": "abc123def456", "proto": "smtp",
		"remote": "[2001:db8::1]:40123", "msgid": "<1@x>", "rcpt": "a@b.example",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
	if _, ok := rec["time"]; !ok {
		t.Errorf("no time in %v", rec)
	}

	buf.Reset()
	ConnLogger(base, "c", "imap", netip.AddrPort{}).Info("x")
	if strings.Contains(buf.String(), "remote") {
		t.Errorf("invalid remote logged: %q", buf.String())
	}
}

// secretValuer resolves to a group that holds a secret.
type secretValuer struct{ user, pw string }

func (s secretValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", s.user), slog.String("Password", s.pw))
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "DEBUG", "json")
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("token", "tok-with", slog.Group("g", "secret", "sec-with-group", "keep", "k1"))
	log.WithGroup("sess").Info("auth",
		"user", "alice@example.com",
		"PASSWORD", "pw-top",
		"Pass", "pw-pass",
		"auth_payload", "AGFsaWNlAHB3",
		slog.Group("outer", slog.Group("inner", "token", "tok-deep", "n", 7)),
		"cred", secretValuer{user: "bob", pw: "pw-valuer"},
		"passwords", "not-a-secret-key",
	)
	out := buf.String()
	for _, s := range []string{"tok-with", "sec-with-group", "pw-top", "pw-pass", "AGFsaWNlAHB3", "tok-deep", "pw-valuer"} {
		if strings.Contains(out, s) {
			t.Errorf("secret %q leaked: %s", s, out)
		}
	}
	for _, s := range []string{"alice@example.com", `"keep":"k1"`, `"n":7`, `"user":"bob"`, "not-a-secret-key"} {
		if !strings.Contains(out, s) {
			t.Errorf("non-secret %q lost: %s", s, out)
		}
	}

	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	sess := rec["sess"].(map[string]any)
	inner := sess["outer"].(map[string]any)["inner"].(map[string]any)
	checks := map[string]any{
		"token":              rec["token"],
		"g.secret":           rec["g"].(map[string]any)["secret"],
		"sess.PASSWORD":      sess["PASSWORD"],
		"sess.Pass":          sess["Pass"],
		"sess.auth_payload":  sess["auth_payload"],
		"sess.outer.inner":   inner["token"],
		"sess.cred.Password": sess["cred"].(map[string]any)["Password"],
	}
	for k, v := range checks {
		if v != Redacted {
			t.Errorf("%s = %v, want %q", k, v, Redacted)
		}
	}
}

func TestRedactionNoSecretsUnchanged(t *testing.T) {
	t.Parallel()
	a := slog.Group("g", "a", 1, slog.Group("h", "b", "c"))
	got, changed := redactAttr(a)
	if changed || !got.Equal(a) {
		t.Errorf("clean attr changed: %v -> %v", a, got)
	}
}

func TestLogLoggerBridge(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	base, err := NewLogger(&buf, "INFO", "text")
	if err != nil {
		t.Fatal(err)
	}
	ll := NewLogLogger(base.With("component", "smtp"), slog.LevelWarn)
	ll.Printf("accept error: %v\n", "boom")
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="accept error: boom" component=smtp`) {
		t.Errorf("bridged line = %q", out)
	}
	buf.Reset()
	NewLogLogger(base, slog.LevelDebug).Print("quiet")
	if buf.Len() != 0 {
		t.Errorf("DEBUG line passed INFO threshold: %q", buf.String())
	}
}

func TestConnIDsUnique(t *testing.T) {
	t.Parallel()
	g := NewConnIDs()
	const workers, per = 4, 2500 // 10k ids, generated concurrently
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				ids[w] = append(ids[w], g.Next())
			}
		}()
	}
	wg.Wait()
	seen := make(map[string]bool, workers*per)
	for _, list := range ids {
		for _, id := range list {
			if len(id) != connIDLen {
				t.Fatalf("id %q has length %d", id, len(id))
			}
			if strings.Trim(id, connIDAlphabet) != "" {
				t.Fatalf("id %q has characters outside %q", id, connIDAlphabet)
			}
			if seen[id] {
				t.Fatalf("duplicate id %q", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != workers*per {
		t.Fatalf("got %d ids, want %d", len(seen), workers*per)
	}
}

func TestConnIDsCounterWraps(t *testing.T) {
	t.Parallel()
	// Near the counter's end the tag must stay intact and ids distinct.
	g := &ConnIDs{tag: 0xabcdef}
	g.seq.Store(connIDSeqMask - 1)
	a, b, c := g.Next(), g.Next(), g.Next()
	if a == b || b == c || a == c {
		t.Fatalf("ids repeat at wrap: %s %s %s", a, b, c)
	}
	if a[:4] != b[:4] || b[:4] != c[:4] {
		t.Fatalf("tag changed at wrap: %s %s %s", a, b, c)
	}
}
