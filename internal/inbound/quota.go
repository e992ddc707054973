package inbound

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrMailboxFull: every mailbox of a recipient is over its quota now
	// (RFC 3463 4.2.2, temporary: mail may be deleted). smtpd answers 452
	// to that RCPT only.
	ErrMailboxFull = errors.New("inbound: mailbox full")
	// ErrTooBigForQuota: the declared message size is larger than every
	// mailbox's whole quota, so it can never be delivered (RFC 3463
	// 5.2.2). smtpd answers 552 to that RCPT only.
	ErrTooBigForQuota = errors.New("inbound: message larger than the mailbox quota")
)

// CheckQuota tells, at RCPT time, whether route's local mailboxes can
// take a message of size bytes (0: size not declared, RFC 1870 SIZE). It
// refuses only when no copy could be delivered at all: every mailbox is
// over quota (ErrMailboxFull) or too small for the message
// (ErrTooBigForQuota), and the route has no remote address. A route with
// room in some mailbox is accepted; the full ones are bounced after DATA.
// The quotas come from the route (read by Resolve in the same RCPT);
// only a route made elsewhere makes it read the users.
func (r *Router) CheckQuota(ctx context.Context, route Route, size int64) error {
	if len(route.Mailboxes) == 0 || len(route.Remote) > 0 {
		return nil
	}
	tooBig := true
	for _, mb := range route.Mailboxes {
		uq, ok := route.Quota[mb]
		if !ok {
			u, err := r.getUser(ctx, mb)
			if err != nil {
				return fmt.Errorf("inbound: quota of %s: %w", mb, err)
			}
			if u == nil {
				return nil // gone since Resolve: delivery decides
			}
			uq = Quota{Bytes: u.QuotaBytes, Used: u.QuotaBytesUsed}
		}
		q := uq.Bytes
		switch {
		case q <= 0:
			return nil // unlimited
		case size > q:
			// never fits this one
		case uq.Used+max(size, 1) > q:
			tooBig = false
		default:
			return nil
		}
	}
	if tooBig {
		return ErrTooBigForQuota
	}
	return ErrMailboxFull
}
