package config

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong (or worth knowing) about the settings. Parse
// returns all of them at once so an admin can fix a file in one go.
type Problem struct {
	Setting string // environment name, e.g. "PORTS"
	Value   string // the value as given; always "" for secret settings
	Message string // what is wrong
	Fix     string // what to do about it
	Warning bool   // true: Petrel still starts
}

// String gives one line such as
//
//	PORTS="25,abc": "abc" is not a port number; fix: use a comma list such as 25,80,443,465,993,995,4190
//
// Warnings start with "warning: ".
func (p Problem) String() string {
	var b strings.Builder
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Setting)
	if p.Value != "" {
		b.WriteByte('=')
		b.WriteString(strconv.Quote(p.Value))
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	if p.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(p.Fix)
	}
	return b.String()
}

// HasErrors reports whether any problem is an error rather than a warning.
func HasErrors(probs []Problem) bool {
	for _, p := range probs {
		if !p.Warning {
			return true
		}
	}
	return false
}

// isSecret names the settings whose values never appear in a Problem.
func isSecret(name string) bool {
	switch name {
	case "SECRET_KEY", "RELAYPASSWORD", "DB_PW", "INITIAL_ADMIN_PW", "API_TOKEN", "METRICS_TOKEN", "ANTISPAM_PASSWORD",
		"RECAPTCHA_PRIVATE_KEY", "SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_DATABASE_URI_ROUNDCUBE", "BLOB_S3_SECRET_KEY",
		"BLOB_S3_ACCESS_KEY":
		return true
	}
	return false
}
