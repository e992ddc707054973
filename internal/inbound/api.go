// Package inbound decides what happens to an accepted message: recipient
// resolution in Mailu's order, sender ownership for submission, and durable
// delivery (local mailboxes and the outbound queue) with group commit.
package inbound

import (
	"errors"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Errors Resolve returns; smtpd maps them to replies.
var (
	// ErrUnknownRecipient: the domain is local but no user or alias
	// matches (RFC 5321 550 5.1.1).
	ErrUnknownRecipient = errors.New("unknown local recipient")
	// ErrBadAddress: the address is syntactically unusable or uses a
	// relay trick (RFC 5321 501 5.1.3 / 553 5.1.3).
	ErrBadAddress = errors.New("bad address")
)

// RouteKind says how a recipient is handled.
type RouteKind int

const (
	// RouteLocal: a local domain or alternative; Mailboxes and Remote say
	// where copies go after aliases and forwards.
	RouteLocal RouteKind = iota + 1
	// RouteRelay: a Relay domain: accepted on port 25 and queued to its transport.
	RouteRelay
	// RouteForeign: any other domain; on port 25 only RELAYNETS may use it.
	RouteForeign
)

// Route is the resolution of one RCPT TO address.
type Route struct {
	Kind      RouteKind
	Rcpt      string   // the address the client gave: normalised (lower case) for a local route; for relay and foreign routes only the domain is, the local part keeps its case (RFC 5321 2.4)
	Mailboxes []string // local user emails that get a copy (deduplicated)
	Remote    []string // addresses that go to the outbound queue (forwards, remote alias destinations, relay and foreign recipients)
	// AutoReply lists the users of Mailboxes whose auto-reply is enabled
	// (store.User.ReplyEnabled), so that the Deliverer reads no user row
	// for the others; it checks the date window itself.
	AutoReply []string
	// Spam holds the spam settings of each user of Mailboxes (Mailu's
	// spam_enabled, spam_threshold, spam_mark_as_read), read with the
	// user at RCPT time; a mailbox missing here is never filed as spam.
	Spam map[string]SpamPrefs
	// Quota holds each user's quota and use as read with the user at
	// RCPT time, for CheckQuota; a mailbox missing here is read again.
	Quota map[string]Quota
	// DSN holds the RCPT's RFC 3461 NOTIFY and ORCPT; they go with every
	// remote address of the route and decide its success notice.
	DSN store.RcptDSN
}

// Quota is one user's quota_bytes and quota_bytes_used.
type Quota struct {
	Bytes int64 // 0 or less: unlimited
	Used  int64
}

// SpamPrefs are one user's spam settings.
type SpamPrefs struct {
	Enabled    bool // spam_enabled
	Threshold  int  // spam_threshold, percent of 15 points
	MarkAsRead bool // spam_mark_as_read
}

// Envelope is one message's accepted envelope.
type Envelope struct {
	ID         string  // Petrel message id, also logged as msgid
	Sender     string  // normalised reverse-path; "" is the null sender
	Routes     []Route // one per accepted RCPT
	ReceivedAt time.Time
	AuthUser   string // authenticated user on submission, "" on port 25
	// RFC 3461 MAIL parameters: RET (FULL, HDRS or "") and ENVID.
	DSNRet   string
	DSNEnvID string
	// RequireTLS: MAIL FROM REQUIRETLS (RFC 8689); the queue entries of
	// remote recipients (forwards included) keep it.
	RequireTLS bool

	// What the inbound checks decided (port 25; zero on submission).
	// SpamScore is on rspamd's scale (15 = reject) and counts only when
	// Scored; Quarantine is DMARC p=quarantine failing. Local delivery
	// files into Junk by each user's spam settings (Mailu's spam_enabled,
	// spam_threshold, spam_mark_as_read).
	Scored     bool
	SpamScore  float64
	Quarantine bool
	// UserScores overrides SpamScore for users whose own classifier
	// scored the message (filter.Verdict.UserScores).
	UserScores map[string]float64

	// Fetched names the remote message a fetched account delivers: it
	// is recorded as seen in the transaction that stores the message,
	// and a delivery whose key was recorded already stores nothing
	// (store.NewMessage.Fetched), so fetching is exactly once.
	Fetched *store.FetchedKey
}
