package app

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// newQueue builds the outbound queue worker with the SMTP client as its
// transport, local delivery (or the queue itself) for DSNs, and SRS for
// senders outside our domains. Mailu has no concurrency settings: the
// queue's defaults apply (20 deliveries per next hop, 100 in all, as
// Postfix), and the relay client's connection cache is Postfix's (2 s
// idle, 300 s reuse); the worker closes idle sessions when it stops.
func (p *parts) newQueue(resolver dnsres.Resolver) (*queue.Worker, error) {
	// resolver is p.resolver: the TLS policy needs its AD-bit look-ups.
	cfg := p.cfg
	level, _ := tlspolicy.ParseLevel(cfg.OutboundTLSLevel) // checked by config
	p.tlsPolicy = tlspolicy.New(tlspolicy.Options{
		Resolver:        p.resolver,
		Store:           p.store,
		Level:           level,
		DeferOnTLSError: cfg.DeferOnTLSError,
		Logger:          p.log.With("part", "tlspolicy"),
	})
	relayCAs, err := p.relayHostCAs()
	if err != nil {
		return nil, err
	}
	tr := relay.New(relay.Options{
		RootCAs:           relayCAs,
		RelayHostNoVerify: !cfg.RelayTLSVerify,
		TLSPolicy:         p.tlsPolicy,
		Hostname:          cfg.Hostnames[0],
		LocalNames:        cfg.Hostnames,
		Resolver:          resolver,
		RelayHost:         cfg.Relay,
		RelayUser:         cfg.RelayUser,
		RelayPassword:     cfg.RelayPassword,
		Relays:            p.store,
		Logger:            p.log.With("part", "relay"),
	})
	return queue.New(queue.Options{
		Store:         p.store,
		Transport:     tr,
		Bouncer:       bouncer{p: p},
		Hostname:      cfg.Hostnames[0],
		Lifetime:      cfg.QueueLifetime,
		Lease:         cfg.QueueLease,
		DelayWarning:  cfg.DelayWarningTime,
		RewriteSender: p.rewriteSender,
		Logger:        p.log.With("part", "queue"),
	})
}

// relayHostCAs is the pool that verifies RELAYHOST: the system's plus
// RELAYHOST_CA_FILE (nil = the system's alone). It also says at start
// when RELAYHOST_TLS_VERIFY=false leaves the relay unverified.
func (p *parts) relayHostCAs() (*x509.CertPool, error) {
	cfg := p.cfg
	if cfg.Relay.Host == "" {
		return nil, nil
	}
	if !cfg.RelayTLSVerify {
		p.log.Warn("RELAYHOST_TLS_VERIFY=false: the certificate of RELAYHOST is not verified; mail and RELAYPASSWORD are encrypted "+
			"but anyone on the path can pose as the relay; mail sent with REQUIRETLS is returned instead of relayed; "+
			"to verify a private relay, set RELAYHOST_CA_FILE to its CA certificate instead", "relayhost", cfg.Relay.Host)
		return nil, nil
	}
	if cfg.RelayCAFile == "" {
		return nil, nil
	}
	pool, err := config.LoadCAFile(cfg.RelayCAFile)
	if err != nil {
		return nil, fmt.Errorf("RELAYHOST_CA_FILE %s: %w", cfg.RelayCAFile, err)
	}
	p.log.Info("RELAYHOST certificate verified against the system CAs and RELAYHOST_CA_FILE", "relayhost", cfg.Relay.Host, "ca_file", cfg.RelayCAFile)
	return pool, nil
}

// rewriteSender applies SRS to senders whose domain is not ours, so that
// forwarded mail passes SPF at the destination (Mailu:
// sender_canonical_maps). On error the original sender is kept.
func (p *parts) rewriteSender(ctx context.Context, sender string) (string, error) {
	return p.srs.Forward(sender, func(domain string) bool { return p.isLocalDomain(ctx, domain) })
}

// isLocalDomain reports whether domain is a domain or an alternative.
func (p *parts) isLocalDomain(ctx context.Context, domain string) bool {
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return false
	}
	if _, err := p.store.GetDomain(ctx, d); err == nil {
		return true
	}
	_, err = p.store.GetAlternative(ctx, d)
	return err == nil
}

// bouncer delivers the queue's DSNs like any accepted message with the
// null sender: into the local mailbox, or back into the queue for a
// remote sender.
type bouncer struct{ p *parts }

func (b bouncer) Bounce(ctx context.Context, rcpt string, msg []byte) error {
	route, err := b.p.router.Resolve(ctx, rcpt)
	if errors.Is(err, inbound.ErrUnknownRecipient) || errors.Is(err, inbound.ErrBadAddress) {
		// The sender no longer exists: nobody could read the DSN.
		b.p.log.Warn("DSN dropped: its recipient does not exist", "rcpt", rcpt, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolving DSN recipient: %w", err)
	}
	sp, err := b.p.deliverer.NewSpool()
	if err != nil {
		return err
	}
	defer sp.Abort()
	if _, err := sp.Write(msg); err != nil {
		return err
	}
	env := &inbound.Envelope{
		ID:         b.p.connIDs.Next(),
		Sender:     "", // RFC 3464: DSNs have the null sender, so they never bounce
		Routes:     []inbound.Route{route},
		ReceivedAt: time.Now(),
	}
	return delivererAdapter{b.p.deliverer, b.p.queue}.Deliver(ctx, env, sp)
}

// runQueue runs the worker until ctx ends.
func runQueue(ctx context.Context, w *queue.Worker, wg *sync.WaitGroup, log *slog.Logger) {
	defer wg.Done()
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("outbound queue stopped", "err", err)
	}
}

var _ queue.Bouncer = bouncer{}

// successNotice sends the RFC 3461 NOTIFY=SUCCESS notice for mailboxes
// here that received a message (Action: delivered), through the same
// path as the queue's DSNs.
func (p *parts) successNotice(ctx context.Context, env *inbound.Envelope, routes []inbound.Route, headers []byte) error {
	r := queue.SuccessReport{
		Hostname:  p.cfg.Hostnames[0],
		ID:        p.connIDs.Next(),
		MessageID: env.ID,
		Sender:    env.Sender,
		EnvID:     env.DSNEnvID,
		Arrival:   env.ReceivedAt,
		Headers:   headers,
	}
	for _, rt := range routes {
		r.Recipients = append(r.Recipients, queue.SuccessRecipient{Recipient: rt.Rcpt, ORcpt: rt.DSN.ORcpt})
	}
	return bouncer{p: p}.Bounce(ctx, env.Sender, r.Build())
}

// quotaBounce sends the DSN for mailboxes left out of a delivery because
// they were over quota (RFC 3463 5.2.2), through the same path as the
// queue's DSNs.
func (p *parts) quotaBounce(ctx context.Context, env *inbound.Envelope, full []string, headers []byte) error {
	msg := queue.FailureReport{
		Hostname:   p.cfg.Hostnames[0],
		ID:         p.connIDs.Next(),
		MessageID:  env.ID,
		Sender:     env.Sender,
		Arrival:    env.ReceivedAt,
		Headers:    headers,
		Recipients: full,
		Code:       552,
		Status:     "5.2.2",
		Diagnostic: "mailbox full: the recipient is over quota",
	}.Build()
	return bouncer{p: p}.Bounce(ctx, env.Sender, msg)
}

// runTLSReports writes the TLS-RPT counts to the store every minute (and
// at shutdown) and, with TLSRPT_SEND, sends the daily reports through the
// queue, DKIM-signed as mail from postmaster@DOMAIN.
func (p *parts) runTLSReports(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	if p.cfg.TLSRPTSend {
		from := p.cfg.Postmaster + "@" + p.cfg.Domain
		rep := tlspolicy.NewReporter(tlspolicy.ReporterOptions{
			Store: p.store, Resolver: p.resolver, Organization: p.cfg.Domain, From: from,
			Send:   p.sendReport,
			Logger: p.log.With("part", "tlsrpt"),
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Run(ctx)
		}()
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := p.tlsPolicy.Flush(fctx); err != nil {
				p.log.Warn("TLS-RPT results not saved at shutdown", "err", err)
			}
			return
		case <-t.C:
		}
		if err := p.tlsPolicy.Flush(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("TLS-RPT results not saved; kept for the next try", "err", err)
		}
	}
}

// sendReport DKIM-signs a report and hands it to the queue with the null
// sender (a report is never bounced back and forth).
func (p *parts) sendReport(ctx context.Context, rcpt string, msg []byte) error {
	if sig, err := p.signers.Signature(ctx, bytes.NewReader(msg)); err == nil {
		msg = append([]byte(sig), msg...)
	} else {
		p.log.Info("TLS-RPT report goes out without DKIM signature", "err", err)
	}
	if err := (bouncer{p: p}).Bounce(ctx, rcpt, msg); err != nil {
		return err
	}
	p.queue.Kick()
	return nil
}
