package app

import (
	"context"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/smtpd"
)

// newInboundChecker builds the scanners of port 25 (internal/filter:
// rspamd, clamd, forbidden attachments, greylisting, the built-in score
// and classifier) as the smtpd.Checker; nil when none is configured. It is
// the one place the filter is constructed; closers go to p.onClose.
//
// Until internal/filter is wired here, port 25 runs the authentication
// checks and policies only (smtpd: a nil Checker means no scanners).
func newInboundChecker(_ context.Context, _ *config.Config, _ *parts) (smtpd.Checker, error) {
	return nil, nil
}

// inboundChecks sets the port-25 checks on the SMTP options: SPF, DKIM,
// DMARC and iprev through RESOLVER_ADDRESS within INBOUND_DNS_TIMEOUT per
// message, Mailu's anti-spoofing rule for the local domains, and the
// scanners. smtpd applies them on port 25 only, never on submission.
func inboundChecks(cfg *config.Config, p *parts, o *smtpd.Options) {
	o.Verifier = msgauth.NewVerifier(msgauth.VerifierOptions{
		Hostname:   cfg.Hostnames[0],
		Resolver:   p.resolver,
		DNSTimeout: cfg.InboundDNSTimeout,
	})
	o.LocalDomains = msgauth.NewStoreLookup(p.store)
	if p.checker != nil {
		o.Checker = p.checker
	}
}
