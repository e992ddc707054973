package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/relay"
)

// newQueue builds the outbound queue worker with the SMTP client as its
// transport, local delivery (or the queue itself) for DSNs, and SRS for
// senders outside our domains. Mailu has no concurrency settings: the
// queue's defaults apply (20 deliveries per next hop, 100 in all, as
// Postfix), and the relay client's connection cache is Postfix's (2 s
// idle, 300 s reuse); the worker closes idle sessions when it stops.
func (p *parts) newQueue(resolver dnsres.Resolver) (*queue.Worker, error) {
	cfg := p.cfg
	tr := relay.New(relay.Options{
		Hostname:      cfg.Hostnames[0],
		LocalNames:    cfg.Hostnames,
		Resolver:      resolver,
		RelayHost:     cfg.Relay,
		RelayUser:     cfg.RelayUser,
		RelayPassword: cfg.RelayPassword,
		Relays:        p.store,
		Logger:        p.log.With("part", "relay"),
	})
	return queue.New(queue.Options{
		Store:         p.store,
		Transport:     tr,
		Bouncer:       bouncer{p: p},
		Hostname:      cfg.Hostnames[0],
		Lifetime:      cfg.QueueLifetime,
		DelayWarning:  cfg.DelayWarningTime,
		RewriteSender: p.rewriteSender,
		Logger:        p.log.With("part", "queue"),
	})
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
