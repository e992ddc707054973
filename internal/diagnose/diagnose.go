// Package diagnose explains, in plain words, how a running Petrel is
// reachable and how a mail client must be set up: which ports are on, which
// are closed and why, and what is wrong with an account's login. It turns
// Mailu's most reported problems (clients on port 25, bare usernames, a
// closed 587) into lines an admin can read out to a user.
package diagnose

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

// Accounts is what the account check reads.
type Accounts interface {
	GetDomain(ctx context.Context, name string) (*store.Domain, error)
	GetAlternative(ctx context.Context, name string) (*store.Alternative, error)
	GetUser(ctx context.Context, email string) (*store.User, error)
	ListTokens(ctx context.Context, user string) ([]store.Token, error)
	ListAliases(ctx context.Context, domain string) ([]store.Alias, error)
}

// Options says what to check.
type Options struct {
	Config   *config.Config
	Accounts Accounts // nil: skip the account check
	Account  string   // login name to explain; "" for none
	Probe    bool     // connect to each port on this machine
	Timeout  time.Duration
}

// port is one SMTP-side role the report covers.
type port struct {
	num      int
	name     string
	implicit bool // TLS from the first byte
	advice   string
	offHint  string
}

var smtpPorts = []port{
	{25, "smtp (MX)", false,
		"server-to-server only: no AUTH (502 5.5.1), only mail for local domains, never relays; mail clients must not send here", ""},
	{465, "submissions", true,
		"mail clients send here: SSL/TLS (implicit), AUTH PLAIN or LOGIN, username = full email address", "it follows TLS and is off only with TLS_FLAVOR=notls"},
	{587, "submission", false,
		"mail clients may send here: STARTTLS, then AUTH PLAIN or LOGIN, username = full email address",
		"off by default (as in Mailu 2024.06): clients get \"connection refused\"; add 587 to PORTS to turn it on, or point the client (WordPress, PHPMailer, Thunderbird) at 465 with SSL/TLS"},
}

// Run writes the report to w and returns the number of problems found.
func Run(ctx context.Context, w io.Writer, opt Options) int {
	if opt.Timeout == 0 {
		opt.Timeout = 3 * time.Second
	}
	cfg := opt.Config
	problems := 0
	host := "localhost"
	if len(cfg.Hostnames) > 0 {
		host = cfg.Hostnames[0]
	}
	fmt.Fprintf(w, "Petrel at %s (domain %s, TLS_FLAVOR=%s)\n\nSMTP ports:\n", host, cfg.Domain, cfg.TLSFlavor)
	for _, p := range smtpPorts {
		l := cfg.Listeners[p.num]
		on := l.Enabled || p.num == 25
		if !on {
			fmt.Fprintf(w, "  %-4d %-12s off   %s\n", p.num, p.name, p.offHint)
			if opt.Probe {
				if msg := probeClosed(ctx, l.Addr, opt.Timeout); msg != "" {
					problems++
					fmt.Fprintf(w, "       PROBLEM: %s\n", msg)
				}
			}
			continue
		}
		fmt.Fprintf(w, "  %-4d %-12s on    %s, %s\n", p.num, p.name, l.Addr, p.advice)
		if opt.Probe {
			msg, err := probeOpen(ctx, l.Addr, p.implicit, opt.Timeout)
			if err != nil {
				problems++
				fmt.Fprintf(w, "       PROBLEM: %v\n", err)
			} else {
				fmt.Fprintf(w, "       reachable: %s\n", msg)
			}
		}
	}
	if cfg.Listeners[465].Enabled {
		fmt.Fprintf(w, "\nMail client settings:\n  outgoing: %s port %s, SSL/TLS, normal password, username = the full email address\n", host, portOf(cfg.Listeners[465].Addr))
	} else {
		fmt.Fprintf(w, "\nMail client settings:\n  outgoing: port 465 is off (TLS_FLAVOR=notls); add 587 to PORTS for submission\n")
	}
	if cfg.Listeners[587].Enabled {
		fmt.Fprintf(w, "            or %s port %s, STARTTLS\n", host, portOf(cfg.Listeners[587].Addr))
	}
	fmt.Fprintf(w, "  never port 25 for sending from a client: it takes no login and does not relay\n")
	if cfg.Listeners[80].Enabled || cfg.Listeners[443].Enabled {
		fmt.Fprintf(w, "  automatic set-up: Thunderbird, Outlook and Apple Mail fetch these settings from this server once\n"+
			"  autoconfig.<domain> and autodiscover.<domain> point at %s (petrel dns DOMAIN lists the records)\n", host)
	}

	if opt.Account != "" && opt.Accounts != nil {
		fmt.Fprintln(w)
		problems += explainAccount(ctx, w, opt.Accounts, cfg, opt.Account)
	}
	if problems == 0 {
		fmt.Fprintln(w, "\nNo problems found.")
	} else {
		fmt.Fprintf(w, "\n%d problem(s) found.\n", problems)
	}
	return problems
}

// explainAccount says whether a login name can work and what the user may
// send as. It returns the number of problems.
func explainAccount(ctx context.Context, w io.Writer, acc Accounts, cfg *config.Config, login string) int {
	fmt.Fprintf(w, "Login %q:\n", login)
	if !strings.Contains(login, "@") {
		fmt.Fprintf(w, "  PROBLEM: not a full email address. Petrel (like Mailu) only accepts the whole address as the username, e.g. %s@%s\n", login, cfg.Domain)
		return 1
	}
	email, err := mailaddr.Normalize(login)
	if err != nil {
		fmt.Fprintf(w, "  PROBLEM: not a valid address: %v\n", err)
		return 1
	}
	if email != login {
		fmt.Fprintf(w, "  note: the username is matched as %q (lower case, IDNA domain); the password is case-sensitive\n", email)
	}
	u, err := acc.GetUser(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		_, domain := mailaddr.Split(email)
		if _, derr := acc.GetAlternative(ctx, domain); derr == nil {
			fmt.Fprintf(w, "  PROBLEM: %s is an alternative domain; log in with the address in the main domain\n", domain)
			return 1
		}
		if _, derr := acc.GetDomain(ctx, domain); errors.Is(derr, store.ErrNotFound) {
			fmt.Fprintf(w, "  PROBLEM: %s is not a domain of this server\n", domain)
			return 1
		}
		fmt.Fprintf(w, "  PROBLEM: no such user; create it with: petrel user LOCALPART DOMAIN -\n")
		return 1
	}
	if err != nil {
		fmt.Fprintf(w, "  PROBLEM: reading the account: %v\n", err)
		return 1
	}
	problems := 0
	if !u.Enabled {
		problems++
		fmt.Fprintf(w, "  PROBLEM: the account is disabled: every login fails\n")
	} else {
		fmt.Fprintf(w, "  exists and is enabled; SMTP submission allowed\n")
	}
	if !u.EnableIMAP {
		fmt.Fprintf(w, "  IMAP is disabled for this user (enable_imap)\n")
	}
	if !u.EnablePOP {
		fmt.Fprintf(w, "  POP3 is disabled for this user (enable_pop)\n")
	}
	tokens, err := acc.ListTokens(ctx, u.Email)
	if err == nil {
		fmt.Fprintf(w, "  app tokens: %d\n", len(tokens))
	}
	if cfg.AuthRequireTokens {
		fmt.Fprintf(w, "  AUTH_REQUIRE_TOKENS is on: mail clients must log in with an app token, not the password\n")
		if len(tokens) == 0 {
			problems++
			fmt.Fprintf(w, "  PROBLEM: no app token exists, so no mail client can log in\n")
		}
	}
	senders := []string{u.Email}
	if cfg.RecipientDelimiter != "" {
		senders = append(senders, fmt.Sprintf("%s%stag@%s", u.Localpart, cfg.RecipientDelimiter[:1], u.DomainName))
	}
	switch {
	case u.AllowSpoofing:
		senders = []string{"any address (allow_spoofing)"}
	case slices.Contains(cfg.WildcardSenders, u.Email):
		senders = []string{"any address (WILDCARD_SENDERS)"}
	default:
		if aliases, err := acc.ListAliases(ctx, u.DomainName); err == nil {
			for _, a := range aliases {
				if slices.Contains(a.Destination, u.Email) {
					senders = append(senders, a.Email)
				}
			}
		}
	}
	fmt.Fprintf(w, "  may send as: %s (anything else gets 553 5.7.1)\n", strings.Join(senders, ", "))
	return problems
}

// probeOpen connects to a listener on this machine and reads the banner.
func probeOpen(ctx context.Context, addr string, implicit bool, timeout time.Duration) (string, error) {
	addr = localAddr(addr)
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("cannot connect to %s: %w (is `petrel serve` running?)", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	detail := ""
	if implicit {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // we report the certificate, not trust it
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("TLS handshake with %s failed: %w", addr, err)
		}
		st := tc.ConnectionState()
		detail = tls.VersionName(st.Version)
		if len(st.PeerCertificates) > 0 {
			cert := st.PeerCertificates[0]
			detail += fmt.Sprintf(", certificate for %s valid until %s", strings.Join(cert.DNSNames, ","), cert.NotAfter.Format("2006-01-02"))
			if cert.Issuer.String() == cert.Subject.String() {
				detail += " (self-signed: clients will warn)"
			}
		}
		c = tc
	}
	banner, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no SMTP greeting from %s: %w", addr, err)
	}
	banner = strings.TrimSpace(banner)
	if detail != "" {
		return banner + "; " + detail, nil
	}
	return banner, nil
}

// probeClosed checks that nothing else answers where a role that is off
// would listen; it returns a problem or "".
func probeClosed(ctx context.Context, addr string, timeout time.Duration) string {
	addr = localAddr(addr)
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return fmt.Sprintf("something else listens on %s although Petrel keeps this port closed", addr)
	}
	return "" // refused or unreachable: closed, as it should be
}

// portOf returns the port of a listen address.
func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

// localAddr turns a wildcard listen address into one this machine can dial.
func localAddr(addr string) string {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, p)
}
