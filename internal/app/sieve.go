package app

import (
	"context"
	"strings"

	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/queue"
)

// sieveOptions turns on users' Sieve scripts when the store keeps them
// (ManageSieve's storage); a store without them runs no scripts.
func (p *parts) sieveOptions() *inbound.SieveOptions {
	src, ok := any(p.store).(inbound.SieveScripts)
	if !ok {
		return nil
	}
	return p.sieveOptionsFor(src)
}

// sieveOptionsFor runs the scripts src keeps.
func (p *parts) sieveOptionsFor(src inbound.SieveScripts) *inbound.SieveOptions {
	return &inbound.SieveOptions{
		Scripts:   src,
		Mailboxes: p.store,
		Router:    p.router,
		Reject:    p.sieveReject,
		// p.queue is built after the deliverer; redirects only start once serving.
		Queued: func() { p.queue.Kick() },
	}
}

// sieveReject refuses a message for user to its sender after delivery
// (RFC 5429 2.1): a DSN through the same path as the queue's, with the
// script's reason as the diagnostic.
func (p *parts) sieveReject(ctx context.Context, env *inbound.Envelope, user, reason string, headers []byte) error {
	msg := queue.FailureReport{
		Hostname:   p.cfg.Hostnames[0],
		ID:         p.connIDs.Next(),
		MessageID:  env.ID,
		Sender:     env.Sender,
		Arrival:    env.ReceivedAt,
		Headers:    headers,
		Recipients: []string{user},
		Code:       550,
		Status:     "5.7.1",
		Diagnostic: "rejected by the recipient's Sieve filter: " + strings.Join(strings.Fields(reason), " "),
	}.Build()
	return bouncer{p: p}.Bounce(ctx, env.Sender, msg)
}
