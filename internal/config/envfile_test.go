package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEnvLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line    string
		key     string
		value   string
		ok      bool
		wantErr string
	}{
		{line: "", ok: false},
		{line: "   ", ok: false},
		{line: "# comment", ok: false},
		{line: "   # indented comment", ok: false},
		{line: "DOMAIN=example.com", key: "DOMAIN", value: "example.com", ok: true},
		{line: "DOMAIN = example.com ", key: "DOMAIN", value: "example.com", ok: true},
		{line: "export DOMAIN=example.com", key: "DOMAIN", value: "example.com", ok: true},
		{line: "export\tDOMAIN=example.com", key: "DOMAIN", value: "example.com", ok: true},
		{line: "exportX=1", key: "exportX", value: "1", ok: true},
		{line: "EMPTY=", key: "EMPTY", value: "", ok: true},
		{line: "EMPTY=   ", key: "EMPTY", value: "", ok: true},
		{line: "A=b=c", key: "A", value: "b=c", ok: true},
		{line: "A=value # inline comment", key: "A", value: "value", ok: true},
		{line: "A=value\t# inline comment", key: "A", value: "value", ok: true},
		{line: "A=val#ue", key: "A", value: "val#ue", ok: true},
		{line: "A=x\r", key: "A", value: "x", ok: true},
		{line: `A='single $HOME "x" \n'`, key: "A", value: `single $HOME "x" \n`, ok: true},
		{line: `A='with # hash' # comment`, key: "A", value: "with # hash", ok: true},
		{line: `A="double $HOME"`, key: "A", value: "double $HOME", ok: true},
		{line: `A="esc \" \\ \n \t \$ \q"`, key: "A", value: "esc \" \\ \n \t $ \\q", ok: true},
		{line: `A="  spaced  "`, key: "A", value: "  spaced  ", ok: true},
		{line: `A=""`, key: "A", value: "", ok: true},
		{line: `A="x" # comment`, key: "A", value: "x", ok: true},
		{line: "BARE_KEY", ok: false},
		{line: "_X1=1", key: "_X1", value: "1", ok: true},
		{line: `A="unterminated`, wantErr: "missing closing double quote"},
		{line: `A="ends in backslash\`, wantErr: "missing closing double quote"},
		{line: `A='unterminated`, wantErr: "missing closing single quote"},
		{line: `A="x"y`, wantErr: "unexpected text after the closing quote"},
		{line: `A='x'y`, wantErr: "unexpected text after the closing quote"},
		{line: "1A=x", wantErr: "no valid variable name"},
		{line: "A-B=x", wantErr: "no valid variable name"},
		{line: "=x", wantErr: "no valid variable name"},
		{line: "hunter2 secret", wantErr: "no valid variable name"},
	}
	for _, tt := range tests {
		key, value, ok, err := parseEnvLine(tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseEnvLine(%q) err = %v; want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil || ok != tt.ok || key != tt.key || value != tt.value {
			t.Errorf("parseEnvLine(%q) = %q, %q, %v, %v; want %q, %q, %v", tt.line, key, value, ok, err, tt.key, tt.value, tt.ok)
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "mailu.env")
	content := "\ufeff# Mailu main configuration file\n\n" +
		"SECRET_KEY=Zx9$notInterpolated\n" +
		"DOMAIN=example.com\r\n" +
		"export HOSTNAMES='mail.example.com,imap.example.com'\n" +
		"RELAYHOST=\n" +
		"DOMAIN=later.example  # later lines win\n" +
		"PASSTHROUGH\n"
	if err := os.WriteFile(good, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := ReadEnvFile(good)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SECRET_KEY": "Zx9$notInterpolated",
		"DOMAIN":     "later.example",
		"HOSTNAMES":  "mail.example.com,imap.example.com",
		"RELAYHOST":  "",
	}
	if len(env) != len(want) {
		t.Errorf("got %d keys %v; want %d", len(env), env, len(want))
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q; want %q", k, env[k], v)
		}
	}

	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("OK=1\nDB_PW=\"s3cretvalue\n# fine\nnot a line\nALSO_OK=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadEnvFile(bad)
	if err == nil {
		t.Fatal("bad file parsed without error")
	}
	msg := err.Error()
	for _, w := range []string{bad + ":2: DB_PW: missing closing double quote", bad + ":4: no valid variable name"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if strings.Contains(msg, "s3cretvalue") || strings.Contains(msg, "not a line") {
		t.Errorf("error repeats a value: %q", msg)
	}

	if _, err := ReadEnvFile(filepath.Join(dir, "missing.env")); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	file := map[string]string{"DOMAIN": "file.example", "PORTS": "25", "ONLY_FILE": "f"}
	environ := []string{"DOMAIN=env.example", "PORTS=", "ONLY_ENV=a=b", "NOEQUALS", "=x"}
	got := Merge(file, environ)
	want := map[string]string{"DOMAIN": "env.example", "PORTS": "", "ONLY_FILE": "f", "ONLY_ENV": "a=b"}
	if len(got) != len(want) {
		t.Errorf("Merge = %v; want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %q (set %v); want %q", k, g, ok, v)
		}
	}
	if file["DOMAIN"] != "file.example" {
		t.Error("Merge modified its input")
	}
	if got := Merge(nil, []string{"A=1"}); got["A"] != "1" {
		t.Errorf("Merge(nil, ...) = %v", got)
	}
}

func FuzzParseEnvLine(f *testing.F) {
	for _, s := range []string{
		"A=b", "export A='x'", `A="a\"b" # c`, "# c", "A=b #c", "1=2", `A="x`, "A='x'y", "\ufeffA=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		key, value, ok, err := parseEnvLine(line)
		if err != nil || !ok {
			return
		}
		if !validKey(key) {
			t.Fatalf("parseEnvLine(%q) gave invalid key %q", line, key)
		}
		// A value without ' or a line break survives single-quoting.
		if strings.ContainsAny(value, "'\n\r") {
			return
		}
		k2, v2, ok2, err := parseEnvLine(key + "='" + value + "'")
		if err != nil || !ok2 || k2 != key || v2 != value {
			t.Fatalf("round trip of %q=%q gave %q=%q ok=%v err=%v", key, value, k2, v2, ok2, err)
		}
	})
}
