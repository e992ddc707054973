package app

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/petrelmail/petrel/internal/config"
)

// role describes one of Mailu's listeners for the start-up log.
type role struct {
	port   int
	name   string // proto name in logs
	what   string // one phrase for people
	tls    string // "implicit", "starttls" or "none" when TLS is on
	auth   string // what AUTH policy applies
	served bool   // implemented by this Petrel build
	// hint says how to turn the role on when it is off; the STARTTLS
	// roles are off by default since Mailu 2024.06, and a closed 587 is
	// Mailu's most reported problem (inventory section 7, items 1-5).
	hint string
}

var roleTable = []role{
	{25, "smtp", "MX, server-to-server mail", "starttls", "never (use 465 or 587 to submit)", true, ""},
	{465, "submissions", "submission for mail clients", "implicit", "PLAIN, LOGIN; full email address as username", true,
		"465 follows TLS (default on); it is off only with TLS_FLAVOR=notls"},
	{587, "submission", "submission with STARTTLS", "starttls", "PLAIN, LOGIN after STARTTLS; full email address as username", true,
		"add 587 to PORTS to enable STARTTLS submission (e.g. PORTS=25,80,443,465,587,993,995); clients that use 587, such as WordPress, get \"connection refused\" until then"},
	{993, "imaps", "IMAP for mail clients", "implicit", "LOGIN, PLAIN; full email address as username", true, ""},
	{143, "imap", "IMAP with STARTTLS", "starttls", "after STARTTLS (LOGINDISABLED before); full email address as username", true, "add 143 to PORTS to enable IMAP with STARTTLS"},
	{995, "pop3s", "POP3 for mail clients", "implicit", "USER/PASS, PLAIN, LOGIN; full email address as username", true, ""},
	{110, "pop3", "POP3 with STARTTLS", "starttls", "after STLS; full email address as username", true, "add 110 to PORTS to enable POP3 with STARTTLS"},
	{4190, "sieve", "ManageSieve: users' Sieve filters", "starttls", "PLAIN, LOGIN after STARTTLS; full email address as username", true, ""},
	{80, "http", "web: redirect to 443, or the site in plain HTTP behind a proxy (notls, mail flavors)", "none", "API token; web sign-in", true, ""},
	{443, "https", "web: REST API, admin UI, autoconfig, health", "implicit", "API token; web sign-in", true, ""},
}

// logRoles writes one line per role: on or off, where, TLS mode, and for
// the STARTTLS roles that are off, how to turn them on.
// offReason says why an enabled port is not served.
func logRoles(log *slog.Logger, cfg *config.Config, tlsOn bool, serving map[int]string, offReason map[int]string) {
	rows := append([]role(nil), roleTable...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].served && !rows[j].served })
	for _, r := range rows {
		l := cfg.Listeners[r.port]
		attrs := []any{"role", r.name, "port", r.port, "use", r.what}
		switch {
		case serving[r.port] != "":
			attrs = append(attrs, "state", "on", "addr", serving[r.port], "tls", tlsMode(r, tlsOn), "auth", r.auth)
			log.Info(fmt.Sprintf("port %d (%s): on at %s", r.port, r.name, serving[r.port]), attrs...)
		case l.Enabled && !r.served:
			attrs = append(attrs, "state", "off", "reason", "not implemented in this Petrel version yet")
			log.Warn(fmt.Sprintf("port %d (%s): enabled in PORTS but not served yet", r.port, r.name), attrs...)
		case l.Enabled && offReason[r.port] != "":
			attrs = append(attrs, "state", "off", "reason", offReason[r.port])
			log.Info(fmt.Sprintf("port %d (%s): off: %s", r.port, r.name, offReason[r.port]), attrs...)
		default:
			attrs = append(attrs, "state", "off")
			if r.hint != "" {
				attrs = append(attrs, "hint", r.hint)
			}
			msg := fmt.Sprintf("port %d (%s): off", r.port, r.name)
			if r.hint != "" {
				msg += ": " + r.hint
			}
			log.Info(msg, attrs...)
		}
	}
}

func tlsMode(r role, tlsOn bool) string {
	if !tlsOn {
		return "none (TLS_FLAVOR=notls or no certificate)"
	}
	switch r.tls {
	case "implicit":
		return "implicit TLS, 1.2+"
	case "starttls":
		if r.port == 25 {
			return "opportunistic STARTTLS"
		}
		return "STARTTLS required before AUTH, 1.2+"
	}
	return r.tls
}
