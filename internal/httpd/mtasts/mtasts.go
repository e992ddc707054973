// Package mtasts serves our own MTA-STS policy (RFC 8461) at
// https://mta-sts.<domain>/.well-known/mta-sts.txt for every local domain,
// and computes the id that the domain's _mta-sts TXT record carries.
package mtasts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Path is where RFC 8461 3.3 puts the policy.
const Path = "/.well-known/mta-sts.txt"

// Modes (RFC 8461 5).
const (
	ModeNone    = "none"
	ModeTesting = "testing"
	ModeEnforce = "enforce"
)

// Policy is the one policy every local domain publishes: its MX hosts are
// the server's HOSTNAMES, whatever the domain.
type Policy struct {
	Mode   string   // none, testing or enforce
	MX     []string // host names the MX records point to (HOSTNAMES)
	MaxAge int64    // seconds
}

// New checks and normalises a policy: MX names lower case, without a
// trailing dot, IP addresses and duplicates dropped (RFC 8461 3.2: mx is a
// host name pattern), and so are the web names an admin lists in
// HOSTNAMES only to get certificates for them (mta-sts., autoconfig.,
// autodiscover.), except the first name, which is always the MX.
func New(mode string, mx []string, maxAge int64) (Policy, error) {
	switch mode {
	case ModeNone, ModeTesting, ModeEnforce:
	default:
		return Policy{}, fmt.Errorf("mta-sts: unknown mode %q", mode)
	}
	if maxAge < 0 || maxAge > 31557600 {
		return Policy{}, fmt.Errorf("mta-sts: max_age %d outside 0..31557600", maxAge)
	}
	p := Policy{Mode: mode, MaxAge: maxAge}
	seen := map[string]bool{}
	for _, h := range mx {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" || seen[h] {
			continue
		}
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		if len(p.MX) > 0 && isWebName(h) {
			continue
		}
		seen[h] = true
		p.MX = append(p.MX, h)
	}
	if len(p.MX) == 0 && mode != ModeNone {
		return Policy{}, fmt.Errorf("mta-sts: no MX host name")
	}
	return p, nil
}

// isWebName: names that serve the web roles, not mail.
func isWebName(h string) bool {
	for _, p := range []string{"mta-sts.", "autoconfig.", "autodiscover."} {
		if strings.HasPrefix(h, p) {
			return true
		}
	}
	return false
}

// Text is the policy file (RFC 8461 3.2), lines ending in CRLF.
func (p Policy) Text() string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\n")
	b.WriteString("mode: " + p.Mode + "\r\n")
	for _, h := range p.MX {
		b.WriteString("mx: " + h + "\r\n")
	}
	b.WriteString("max_age: " + strconv.FormatInt(p.MaxAge, 10) + "\r\n")
	return b.String()
}

// ID is the policy id for the _mta-sts TXT record: derived from the text,
// so that it changes whenever the policy does (RFC 8461 3.1: senders
// refetch only when the id changes) and every node computes the same one.
// 20 hex digits fit the 1-32 alphanumerics the RFC allows.
func (p Policy) ID() string {
	sum := sha256.Sum256([]byte(p.Text()))
	return hex.EncodeToString(sum[:10])
}

// TXT is the _mta-sts.<domain> record's text (RFC 8461 3.1).
func (p Policy) TXT() string { return "v=STSv1; id=" + p.ID() }

// Options configure Handler.
type Options struct {
	Policy Policy
	// IsLocal reports whether domain (lower case, A-labels) is one of ours:
	// a domain or an alternative. Required.
	IsLocal func(ctx context.Context, domain string) (bool, error)
	Logger  *slog.Logger
}

// Handler serves the policy at Path to requests whose Host is
// mta-sts.<domain> for a local domain; other hosts get 404, so that the
// server does not claim domains it does not receive mail for.
func Handler(o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	text := []byte(o.Policy.Text())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path {
			http.NotFound(w, r)
			return
		}
		domain, ok := PolicyDomain(r.Host)
		if !ok {
			http.NotFound(w, r)
			return
		}
		local, err := o.IsLocal(r.Context(), domain)
		if err != nil {
			log.Warn("MTA-STS: could not look up the domain", "domain", domain, "err", err)
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		if !local {
			http.NotFound(w, r)
			return
		}
		// RFC 8461 3.2: text/plain; senders must not follow redirects, so
		// this is answered directly on whatever host reached us.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(text)))
		w.Header().Set("Cache-Control", "max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(text)
		}
	})
}

// PolicyDomain returns the domain of a mta-sts.<domain> host (a Host
// header, with or without port), lower case without a trailing dot.
func PolicyDomain(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	d, ok := strings.CutPrefix(host, "mta-sts.")
	if !ok || len(d) > 253 || !strings.Contains(d, ".") {
		return "", false
	}
	// A host name in A-labels: non-empty labels of letters, digits, - and _.
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return "", false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return d, true
}

// Uncovered returns the mta-sts.<domain> names of domains that are not in
// hostnames: under ACME (certificates only for HOSTNAMES) senders cannot
// fetch those domains' policies, since RFC 8461 3.3 requires a valid
// certificate for mta-sts.<domain>.
func Uncovered(domains, hostnames []string) []string {
	have := map[string]bool{}
	for _, h := range hostnames {
		have[strings.TrimSuffix(strings.ToLower(h), ".")] = true
	}
	var out []string
	for _, d := range domains {
		n := "mta-sts." + strings.TrimSuffix(strings.ToLower(d), ".")
		if !have[n] {
			out = append(out, n)
		}
	}
	return out
}
