package cli

import (
	"errors"
	"strings"
	"testing"
)

func parseFor(name string, args ...string) (*call, bool, error) {
	c := &call{cmd: findCommand(name)}
	help, err := c.parse(args)
	return c, help, err
}

func TestParse(t *testing.T) {
	tests := []struct {
		cmd   string
		args  []string
		pos   string
		flags string // long names given, sorted
		vals  string // long=value
		err   string
	}{
		{cmd: "admin", args: []string{"-m", "update", "root", "example.com", "pw"}, pos: "root example.com pw", vals: "--mode=update"},
		{cmd: "admin", args: []string{"root", "example.com", "pw", "-m", "create"}, pos: "root example.com pw", vals: "--mode=create"},
		{cmd: "admin", args: []string{"root", "--mode=ifmissing", "example.com", "pw"}, pos: "root example.com pw", vals: "--mode=ifmissing"},
		{cmd: "admin", args: []string{"root", "example.com", "-mupdate", "-"}, pos: "root example.com -", vals: "--mode=update"},
		{cmd: "setlimits", args: []string{"example.com", "-1", "-1", "0"}, pos: "example.com -1 -1 0"},
		{cmd: "domain", args: []string{"example.com", "-u", "-1"}, pos: "example.com", vals: "--max-users=-1"},
		{cmd: "config-import", args: []string{"-nvu", "file.yaml"}, pos: "file.yaml", flags: "--dry-run --update --verbose"},
		{cmd: "config-export", args: []string{"-sfo", "out.yaml", "user", "relay.name"}, pos: "user relay.name", flags: "--full --secrets", vals: "--output-file=out.yaml"},
		{cmd: "alias", args: []string{"--", "-x", "example.com", "a@example.com"}, pos: "-x example.com a@example.com"},
		{cmd: "user", args: []string{"a", "b"}, err: "expected 3 argument(s)"},
		{cmd: "user", args: []string{"a", "b", "c", "--bad"}, err: "no such option: --bad"},
		{cmd: "config-export", args: []string{"-o"}, err: "requires an argument"},
		{cmd: "user-delete", args: []string{"--really=1", "a@b.c"}, err: "does not take a value"},
	}
	for _, tt := range tests {
		c, _, err := parseFor(tt.cmd, tt.args...)
		if tt.err != "" {
			var ue *usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %v: error %v, want usage error %q", tt.cmd, tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v", tt.cmd, tt.args, err)
			continue
		}
		if got := strings.Join(c.pos, " "); got != tt.pos {
			t.Errorf("%s %v: positionals %q, want %q", tt.cmd, tt.args, got, tt.pos)
		}
		var flags, vals []string
		for _, o := range c.cmd.opts {
			if c.flags[o.long] > 0 {
				flags = append(flags, o.long)
			}
			if v, ok := c.vals[o.long]; ok {
				vals = append(vals, o.long+"="+v)
			}
		}
		if got := strings.Join(sorted(flags), " "); got != tt.flags {
			t.Errorf("%s %v: flags %q, want %q", tt.cmd, tt.args, got, tt.flags)
		}
		if got := strings.Join(vals, " "); got != tt.vals {
			t.Errorf("%s %v: values %q, want %q", tt.cmd, tt.args, got, tt.vals)
		}
	}
	if _, help, err := parseFor("user", "x", "-h"); !help || err != nil {
		t.Errorf("-h not seen: %v %v", help, err)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// FuzzParse: the argument parser never panics, and what it accepts has a
// positional count the command allows.
func FuzzParse(f *testing.F) {
	f.Add("admin", "-m\x00update\x00root\x00example.com\x00-")
	f.Add("config-export", "-sfjo\x00out\x00user.email")
	f.Add("config-import", "-nvuqsdc\x00--\x00-")
	f.Add("setlimits", "d\x00-1\x00-1\x00-0")
	f.Fuzz(func(t *testing.T, name, joined string) {
		cmd := findCommand(name)
		if cmd == nil {
			return
		}
		c := &call{cmd: cmd}
		help, err := c.parse(strings.Split(joined, "\x00"))
		if err != nil || help {
			return
		}
		if len(c.pos) < cmd.min || (cmd.max >= 0 && len(c.pos) > cmd.max) {
			t.Fatalf("accepted %d positionals for %s", len(c.pos), name)
		}
	})
}
