package config

import (
	"strings"
	"testing"
)

func TestUnimplementedWarnings(t *testing.T) {
	t.Parallel()
	for _, s := range notImplementedSettings() {
		// Mailu's default, and the empty value, are quiet.
		for _, v := range []string{s.Default, ""} {
			if _, probs := Parse(with(s.Name, v)); len(probs) != 0 {
				t.Errorf("%s=%q: unexpected problems %v", s.Name, v, probs)
			}
		}
		for _, q := range s.Quiet {
			env := with(s.Name, q)
			if q == "$POSTMASTER" {
				env = with(s.Name, "Admin", "POSTMASTER", "admin")
			}
			if _, probs := Parse(env); len(probs) != 0 {
				t.Errorf("%s=%q: unexpected problems %v", s.Name, q, probs)
			}
		}
		other := "something-else"
		if s.Bool {
			b, _ := parseBool(s.Default)
			other = map[bool]string{true: "false", false: "True"}[b]
		}
		_, probs := Parse(with(s.Name, other))
		if len(probs) != 1 {
			t.Errorf("%s=%q: got %v; want one warning", s.Name, other, probs)
			continue
		}
		p := probs[0]
		if !p.Warning || p.Setting != s.Name || p.Message != s.Note || p.Fix == "" {
			t.Errorf("%s=%q: problem %+v", s.Name, other, p)
		}
		if isSecret(s.Name) != (p.Value == "") {
			t.Errorf("%s: value %q shown for a secret=%v setting", s.Name, p.Value, isSecret(s.Name))
		}
	}
}

func TestUnimplementedExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{with("SUBNET", "10.0.0.0/24"), `warning: SUBNET="10.0.0.0/24": SUBNET is not needed: Petrel runs as one process; use RELAYNETS to trust networks; fix: remove SUBNET and list the networks that may relay in RELAYNETS`},
		{with("WEBMAIL", "roundcube"), `warning: WEBMAIL="roundcube": Petrel has no webmail; fix: remove WEBMAIL or set it to none`},
		{with("RECAPTCHA_PRIVATE_KEY", "hunter2"), `warning: RECAPTCHA_PRIVATE_KEY: Petrel has no self-signup; fix: remove RECAPTCHA_PRIVATE_KEY`},
	}
	for _, tt := range tests {
		_, probs := Parse(tt.env)
		if len(probs) != 1 || probs[0].String() != tt.want {
			t.Errorf("got %v\nwant %s", probs, tt.want)
		}
	}
	// Case-insensitive comparison with the default; booleans by value.
	for _, env := range []map[string]string{with("WEBMAIL", "NONE"), with("SCAN_MACROS", "no"), with("DISABLE_STATISTICS", "yes"), with("TZ", "utc")} {
		if _, probs := Parse(env); len(probs) != 0 {
			t.Errorf("%v: unexpected %v", env, probs)
		}
	}
	// An unparsable boolean is a warning, never an error.
	if _, probs := Parse(with("DOMAIN_REGISTRATION", "perhaps")); len(probs) != 1 || !probs[0].Warning {
		t.Errorf("DOMAIN_REGISTRATION=perhaps: %v", probs)
	}
}

// TestNoSecretInProblems sets every secret to a marker, breaks as many
// settings as possible and checks that no problem mentions a marker.
func TestNoSecretInProblems(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"SECRET_KEY":                        "MARKER-secret-key",
		"RELAYPASSWORD":                     "MARKER-relay-pw",
		"DB_PW":                             "MARKER-db-pw",
		"INITIAL_ADMIN_PW":                  "MARKER-admin-pw",
		"API_TOKEN":                         "MARKER-api-token",
		"RECAPTCHA_PRIVATE_KEY":             "MARKER-recaptcha",
		"SQLALCHEMY_DATABASE_URI":           "mysql://u:MARKER-uri-pw@db/mailu",
		"SQLALCHEMY_DATABASE_URI_ROUNDCUBE": "mysql://u:MARKER-rc-pw@db/rc",
	}
	variants := []map[string]string{
		// Secrets that are themselves bad or unused.
		{"SECRET_KEY": "MARKER", "INITIAL_ADMIN_PW": "MARKER-admin-pw", "RELAYPASSWORD": "MARKER-relay-pw", "API": "maybe"},
		{"DB_FLAVOR": "mysql", "INITIAL_ADMIN_DOMAIN": "bad..domain", "INITIAL_ADMIN_ACCOUNT": "a@b"},
		{"SECRET_KEY": "changeMe"},
	}
	for i, v := range variants {
		env := map[string]string{"PORTS": "x", "LOG_LEVEL": "x", "RELAYUSER": "u"}
		for k, val := range secrets {
			env[k] = val
		}
		for k, val := range v {
			env[k] = val
		}
		_, probs := Parse(env)
		if len(probs) < 5 {
			t.Errorf("variant %d: only %d problems: %v", i, len(probs), probs)
		}
		for _, p := range probs {
			if strings.Contains(p.String(), "MARKER") || strings.Contains(p.Value, "changeMe") {
				t.Errorf("variant %d: secret in %q", i, p.String())
			}
		}
	}
}

// TestKnownCoversParse checks that Known documents every name Parse reads,
// once each.
func TestKnownCoversParse(t *testing.T) {
	t.Parallel()
	names := make(map[string]bool)
	for _, d := range Known() {
		if names[d.Name] {
			t.Errorf("Known lists %s twice", d.Name)
		}
		names[d.Name] = true
		if d.Meaning == "" {
			t.Errorf("Known: %s has no meaning", d.Name)
		}
		if d.Secret != isSecret(d.Name) {
			t.Errorf("Known: %s Secret=%v", d.Name, d.Secret)
		}
	}
	env := with("API", "true", "API_TOKEN", "x", "DB_FLAVOR", "postgresql", "DB_HOST", "h", "DB_USER", "u",
		"INITIAL_ADMIN_ACCOUNT", "a", "INITIAL_ADMIN_DOMAIN", "example.com", "INITIAL_ADMIN_PW", "p",
		"SECRET_KEY", "", "SECRET_KEY_FILE", "/nonexistent", "LISTEN_25", ":25", "RELAYHOST", "h.example")
	_, r := parse(env)
	if len(r.seen) < 100 {
		t.Errorf("Parse read only %d names", len(r.seen))
	}
	for n := range r.seen {
		if strings.HasPrefix(n, "LISTEN_") {
			n = "LISTEN_<port>"
		}
		if !names[n] {
			t.Errorf("Parse reads %s but Known does not list it", n)
		}
	}
	// And the other way round: every documented name is read.
	for n := range names {
		if n == "LISTEN_<port>" || n == "COMPOSE_PROJECT_NAME" {
			continue
		}
		if !r.seen[n] {
			t.Errorf("Known lists %s but Parse never reads it", n)
		}
	}
}
