// Package queue is Petrel's durable outbound queue: it picks due entries
// from the store, hands them to a Transport, retries temporary failures
// with back-off, and returns permanent failures and expired mail to the
// sender as DSNs (RFC 3464). It defines the Transport it drives;
// internal/relay implements it and internal/app injects it.
package queue

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/petrelmail/petrel/internal/store"
)

// Message is one delivery attempt: one sender, the recipients that share a
// destination (a domain, or the RELAYHOST), and a fresh body reader.
type Message struct {
	ID         string   // Petrel message id, for logs and Received/DSN headers
	Sender     string   // envelope sender; "" is the null sender (bounces)
	Recipients []string // all for the same destination domain
	Size       int64
	// Body returns a new reader over the whole message each time it is
	// called (a retry on another MX host reads it again).
	Body func() (io.ReadCloser, error)
	// UTF8 is set when the envelope needs SMTPUTF8 (non-ASCII addresses).
	UTF8 bool
	// RFC 3461 parameters to relay to a next hop that offers DSN: RET and
	// ENVID of the message, NOTIFY and ORCPT by recipient (absent = none).
	Ret   string
	EnvID string
	DSN   map[string]store.RcptDSN
	// RequireTLS: MAIL FROM REQUIRETLS (RFC 8689): only validated TLS to
	// a next hop that offers REQUIRETLS, which gets it passed on.
	RequireTLS bool

	// TLSRequiredNo, when set, reports whether the message has the
	// header field "TLS-Required: No" (RFC 8689 5): the sender lets DANE
	// and MTA-STS failures pass. nil = it has not. The queue sets it to
	// read the header on the first call only: just a delivery that a
	// policy would refuse needs it. It is ignored with RequireTLS.
	TLSRequiredNo func() bool
}

// tlsRequiredNo returns Message.TLSRequiredNo for a message whose body
// body opens: the header is read once, at the first call.
func tlsRequiredNo(body func() (io.ReadCloser, error)) func() bool {
	var once sync.Once
	no := false
	return func() bool {
		once.Do(func() {
			r, err := body()
			if err != nil {
				return
			}
			defer r.Close()
			hdr, err := readHeaders(r, maxDSNHeaders)
			if err != nil {
				return
			}
			no = strings.EqualFold(strings.TrimSpace(headerValue(hdr, "TLS-Required")), "No")
		})
		return no
	}
}

// RecipientResult is what the remote side said about one recipient.
type RecipientResult struct {
	Recipient string
	Err       error // nil = accepted (250); otherwise a *DeliveryError
	// For an accepted recipient, optionally, for the "delivered" log
	// record: the host that accepted it and its reply to the message
	// ("250 2.0.0 Ok: queued as 4XyZ").
	Remote string
	Reply  string
	// NoDSN: the accepting server does not offer DSN (RFC 3461), so the
	// NOTIFY=SUCCESS notice is ours to send ("relayed", RFC 3461 4.1).
	NoDSN bool
}

// Transport delivers a Message. It returns one result per recipient, or an
// error (normally a *DeliveryError) that applies to all of them, such as
// no MX reachable or a 5xx to MAIL FROM.
type Transport interface {
	Deliver(ctx context.Context, m *Message) ([]RecipientResult, error)
}

// DeliveryError is a failure with the remote (or local) SMTP reply.
type DeliveryError struct {
	Permanent bool   // 5xx or a condition that retrying cannot fix
	Code      int    // SMTP reply code, 0 when there was no reply (DNS, connect, TLS)
	Enhanced  string // "5.1.1", "" when unknown
	Message   string // the remote text or what went wrong locally
	Remote    string // the host that answered (for the DSN's Remote-MTA)
}

func (e *DeliveryError) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Code != 0 {
		return fmt.Sprintf("%s failure from %s: %d %s %s", kind, e.Remote, e.Code, e.Enhanced, e.Message)
	}
	return fmt.Sprintf("%s failure: %s", kind, e.Message)
}

// NextHopper is optionally implemented by a Transport that knows, before
// delivering, where mail for a recipient domain goes (RELAYHOST, a relay
// transport, or the domain's own MX). The Worker then limits concurrency
// per next hop instead of per recipient domain. NextHop must be cheap and
// must not fail: on doubt it returns the domain (or "").
type NextHopper interface {
	NextHop(ctx context.Context, domain string) string
}

// idleCloser is a Transport that keeps connections open between
// deliveries (net/http's name); Run closes them when it returns.
type idleCloser interface {
	CloseIdleConnections()
}
