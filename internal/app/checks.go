package app

import (
	"context"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/smtpd"
)

// newInboundChecker builds the scanners of port 25 (internal/filter:
// rspamd, clamd, forbidden attachments, greylisting, the built-in score
// and classifier) as the smtpd.Checker, and the learner that IMAP's Junk
// moves feed (p.learner). It is the one place the filter is constructed;
// closers go to p.onClose.
//
// With ANTISPAM_ADDRESS, rspamd scores (Mailu's path) and learns through
// its controller; without it the built-in score does, with greylisting
// (GREYLISTING), DNSBLs (DNSBL_ZONES) and the users' own classifiers
// (SPAM_CLASSIFIER). Forbidden attachments are refused either way, as
// Mailu's rspamd multimap does; ANTIVIRUS=clamav adds clamd.
func newInboundChecker(ctx context.Context, cfg *config.Config, p *parts) (smtpd.Checker, error) {
	fc := cfg.Filter
	log := p.log.With("part", "filter")
	opts := filter.Options{ScanMacros: fc.ScanMacros, Logger: log}
	var rspamd *filter.RspamdClient
	var builtin *filter.Builtin
	if fc.AntispamAddress != "" {
		var err error
		rspamd, err = filter.NewRspamdClient(filter.RspamdOptions{
			Address:    fc.AntispamAddress,
			Controller: fc.AntispamController,
			Password:   fc.AntispamPassword,
			Hostname:   cfg.Hostnames[0],
		})
		if err != nil {
			return nil, err
		}
		opts.Rspamd = rspamd
	} else {
		builtin = filter.NewBuiltin(filter.BuiltinOptions{
			Store:       p.store,
			Greylisting: fc.Greylisting,
			Delay:       fc.GreylistingDelay,
			DNSBLZones:  fc.DNSBLZones,
			Resolver:    p.resolver,
			Classifier:  fc.SpamClassifier,
			Logger:      log,
		})
		opts.Builtin = builtin
	}
	if fc.Antivirus == "clamav" {
		cc, err := filter.NewClamdClient(fc.AntivirusAddress, 0)
		if err != nil {
			return nil, err
		}
		opts.Clamd = cc
	}
	lo := filter.LearnerOptions{
		Store:      p.store,
		Classifier: rspamd == nil && fc.SpamClassifier,
		Rspamd:     rspamd,
		Logger:     log,
	}
	if builtin != nil {
		lo.Totals = builtin.Totals() // training shows at once on this node
	}
	l := filter.NewLearner(lo)
	if l.Enabled() {
		l.Start(context.WithoutCancel(ctx))
		p.onClose(l.Close)
		p.learner = l
	}
	return filter.New(opts), nil
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
	o.LocalDomains = msgauth.NewStoreLookup(p.lookups)
	if p.checker != nil {
		o.Checker = p.checker
	}
}
