// Package archtest keeps DESIGN.md's import arrows true:
// cmd -> app -> {smtpd, pop3d, imapd, admin, cli...} -> {inbound, queue,
// auth, msgauth} -> {store, blob, mailaddr}. Nothing points back up.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/petrelmail/petrel/"

// forbidden maps a package (prefix) to packages it must not depend on,
// directly or indirectly.
var forbidden = map[string][]string{
	"internal/config":   {"internal/store", "internal/auth", "internal/smtpd", "internal/app", "internal/cli", "internal/admin"},
	"internal/mailaddr": {"internal/"},
	"internal/obs":      {"internal/"},
	"internal/store":    {"internal/smtpd", "internal/pop3d", "internal/imapd", "internal/inbound", "internal/queue", "internal/relay", "internal/auth", "internal/admin", "internal/cli", "internal/app"},
	"internal/auth":     {"internal/smtpd", "internal/pop3d", "internal/imapd", "internal/store/sqlstore", "internal/admin", "internal/cli", "internal/app"},
	"internal/inbound":  {"internal/smtpd", "internal/pop3d", "internal/imapd", "internal/store/sqlstore", "internal/relay", "internal/admin", "internal/cli", "internal/app", "github.com/emersion/go-smtp"},
	"internal/queue":    {"internal/smtpd", "internal/relay", "internal/store/sqlstore", "internal/admin", "internal/cli", "internal/app"},
	"internal/relay":    {"internal/smtpd", "internal/store/sqlstore", "internal/admin", "internal/cli", "internal/app"},
	"internal/smtpd":    {"internal/store/sqlstore", "internal/pop3d", "internal/imapd", "internal/relay", "internal/admin", "internal/cli", "internal/app"},
	"internal/pop3d":    {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/admin", "internal/cli", "internal/app"},
	"internal/filter":   {"internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/store/sqlstore", "internal/queue", "internal/relay", "internal/admin", "internal/cli", "internal/app"},
	"internal/msgauth":  {"internal/smtpd", "internal/store/sqlstore", "internal/queue", "internal/admin", "internal/cli", "internal/app"},
	"internal/admin":    {"internal/smtpd", "internal/pop3d", "internal/imapd", "internal/cli", "internal/app", "net/http/httptest"},
	"internal/cli":      {"internal/app", "internal/smtpd"},
	"internal/app":      {"internal/cli"},
	// The HTTP roles route to handlers app gives them; they hold no use case.
	"internal/httpd": {"internal/store", "internal/auth", "internal/inbound", "internal/queue", "internal/relay", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/cli", "internal/app"},
	// The REST API speaks only to the admin use cases, never to SQL or the server around it.
	"internal/admin/api": {"internal/store/sqlstore", "internal/httpd", "internal/admin/web", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/cli", "internal/app"},
	// The web UI: admin use cases, the auth core and store interfaces; never SQL,
	// the HTTP server around it, the REST API or the mail protocols.
	"internal/admin/web": {"internal/store/sqlstore", "internal/httpd", "internal/admin/api", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/cli", "internal/app"},
	// Event counters: below every protocol, above only the store interfaces.
	// The doctor reads config, store interfaces and DNS; it never opens SQL or runs a server.
	"internal/diagnose": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Fetched accounts: the store and a Sink app gives it; never a server or SQL.
	"internal/fetch": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Metrics: counts what app hands it; never a protocol, never SQL.
	"internal/metrics": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	"internal/stats":   {"internal/store/sqlstore", "internal/auth", "internal/inbound", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},

	// The Sieve language alone: delivery, store and protocols live above it.
	"internal/sieve": {"internal/"},
	// ManageSieve: over auth and the store interfaces; the Sieve checker is
	// injected by app, so the protocol never holds the language.
	"internal/managesieve": {"internal/store/sqlstore", "internal/sieve", "internal/inbound", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Full-text search: terms, queries and the background indexer over the
	// store interfaces; the text extractor (MIME) is injected by app from imapd.
	"internal/fts": {"internal/store/sqlstore", "internal/imapd", "internal/smtpd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Outbound TLS policy: below relay, over dnsres and the store interfaces.
	"internal/tlspolicy": {"internal/store/sqlstore", "internal/relay", "internal/queue", "internal/smtpd", "internal/inbound", "internal/admin", "internal/httpd", "internal/tlscfg", "internal/cli", "internal/app"},

	// import-mailu: reads Mailu's files and database, writes through the
	// store interfaces; no protocol, no admin use case, no Petrel SQL.
	"internal/mailuimport": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},

	// The master secret and its derived keys: config only, so serve and
	// every CLI command can use it.
	"internal/secret": {"internal/store", "internal/auth", "internal/fetch", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},

	// Shared by every listener: no protocol, no store.
	"internal/connlimit": {"internal/"},
	// The PROXY protocol reader wraps listeners: no protocol, no store.
	"internal/proxyproto": {"internal/"},
	// ACME over the store's interfaces: never SQL, a protocol server or app.
	"internal/tlscfg": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/httpd", "internal/admin", "internal/cli", "internal/app"},
	// Received TLS-RPT reports: a parser over the store interfaces, fed by
	// inbound through app; it knows no protocol and no SQL.
	"internal/tlsrptin": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// The inbound path's domain cache: over the store's interfaces, fed
	// its invalidations by app; never SQL, a protocol or the router.
	"internal/store/configcache": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// MESSAGE_RATELIMIT over the store's rate-limit rows (issue 16).
	// The S3 body store is storage plumbing for sqlstore: it knows no
	// protocol and no database.
	"internal/store/bucket": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	"internal/msgrate":      {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/inbound", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Leaves that every layer may use: they depend on nothing of ours.
	"internal/dnsres":        {"internal/"}, // and its dnstest below it
	"internal/ratelimit":     {"internal/"},
	"internal/imapd/imapmsg": {"internal/"}, // MIME structure for IMAP and the FTS extractor
	// Leaves below the packages that name them (their parents' rules apply
	// too; these are stricter).
	"internal/store/blob":      {"internal/"}, // body files: no store, no protocol
	"internal/httpd/mtasts":    {"internal/"}, // the MTA-STS policy file
	"internal/testutil/s3fake": {"internal/"}, // an S3 server for tests
	// Mail client autoconfiguration: mailaddr only.
	"internal/httpd/autoconfig": {"internal/store", "internal/auth", "internal/inbound", "internal/queue", "internal/relay", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/admin", "internal/cli", "internal/app"},
	// internal/tlscfg/acme keeps internal/tlscfg's rule: the store's
	// interfaces (certificates and ACME state), never SQL or a server.
	// SRS rewrites addresses; it knows no store, protocol or use case.
	"internal/srs": {"internal/store", "internal/auth", "internal/inbound", "internal/queue", "internal/relay", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Submitted-message clean-up: below smtpd, over msgauth; never SQL or a server.
	"internal/submit": {"internal/store/sqlstore", "internal/smtpd", "internal/imapd", "internal/pop3d", "internal/queue", "internal/relay", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// Test helpers open stores and fake services; they never reach the
	// servers or the wiring they are used to test.
	"internal/testutil": {"internal/smtpd", "internal/imapd", "internal/pop3d", "internal/admin", "internal/httpd", "internal/cli", "internal/app"},
	// A test helper running the pebble binary.
	"internal/testutil/pebbletest": {"internal/store", "internal/app"},
	// A test helper speaking only the PostgreSQL wire protocol.
	"internal/testutil/pgproxy": {"internal/"},
}

type pkg struct {
	ImportPath string
	Deps       []string
}

func TestImportArrows(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-json", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.ImportPath, mod) {
			continue
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for from, bans := range forbidden {
			if rel != from && !strings.HasPrefix(rel, from+"/") {
				continue
			}
			checked++
			for _, d := range p.Deps {
				for _, ban := range bans {
					if banned(d, ban, from) {
						t.Errorf("%s depends on %s (DESIGN.md: nothing points back up)", rel, d)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked; is the module path right?", checked)
	}
}

// banned reports whether dependency dep matches ban: a path of this module
// ("internal/x", or "internal/" for every package of it) or a third-party
// import path. A package's own subpackages are never banned.
func banned(dep, ban, from string) bool {
	if !strings.HasPrefix(ban, "internal/") {
		return dep == ban || strings.HasPrefix(dep, ban+"/")
	}
	if !strings.HasPrefix(dep, mod) {
		return false
	}
	rel := strings.TrimPrefix(dep, mod)
	if rel == from || strings.HasPrefix(rel, from+"/") {
		return false
	}
	b := strings.TrimSuffix(ban, "/")
	return rel == b || strings.HasPrefix(rel, b+"/")
}
