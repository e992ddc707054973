package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"time"
)

// Special-use mailboxes every user has (Mailu: Trash, Drafts, Sent, Junk
// auto-created and subscribed; RFC 6154 attributes).
var DefaultMailboxes = []MailboxSpec{
	{Name: "INBOX"},
	{Name: "Drafts", SpecialUse: `\Drafts`},
	{Name: "Sent", SpecialUse: `\Sent`},
	{Name: "Junk", SpecialUse: `\Junk`},
	{Name: "Trash", SpecialUse: `\Trash`},
}

// MailboxSpec names a mailbox and its RFC 6154 special-use attribute.
type MailboxSpec struct {
	Name       string
	SpecialUse string // "" or one of \Drafts \Sent \Junk \Trash \Archive
}

// Mailbox is one folder of a user.
type Mailbox struct {
	ID            int64
	UserEmail     string
	Name          string // "INBOX" or a hierarchy with "/" as separator
	SpecialUse    string
	Subscribed    bool
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Messages      int
	// RecentUID is the first UID no IMAP4rev1 session has been given as
	// \Recent yet (Mailboxes.ClaimRecent).
	RecentUID uint32
}

// MessageInfo is one message in one mailbox, without its body.
type MessageInfo struct {
	MailboxID    int64
	UID          uint32
	ModSeq       uint64
	Flags        []string
	InternalDate time.Time
	Size         int64
	BodyID       int64 // the stored body; shared by every copy of the message
}

// MailboxTarget is where one local copy of a message goes.
type MailboxTarget struct {
	User    string   // user email
	Mailbox string   // "INBOX", "Junk", ...; created (with DefaultMailboxes) if missing
	Flags   []string // initial flags, e.g. \Seen for spam_mark_as_read
}

// NewMessage is one accepted message, ready to be made durable: its body is
// stored once, every Target gets a copy in its mailbox (next UID, new
// modseq, quota_bytes_used raised) and every Remote recipient becomes an
// outbound queue entry.
type NewMessage struct {
	ID         string // Petrel's message id (also the queue id in logs)
	Sender     string // envelope sender; "" is the null sender
	ReceivedAt time.Time
	Size       int64
	// Exactly one of Body and BlobName is set: small bodies live inline in
	// the database, large ones in a blob file already committed (fsynced)
	// by internal/store/blob.
	Body     []byte
	BlobName string

	Targets []MailboxTarget
	Remote  []string // outbound recipients (RCPT TO addresses)
	// DSN holds the RFC 3461 parameters of the transaction: RET and
	// ENVID, and per remote recipient NOTIFY and ORCPT; they go with each
	// queue entry. nil = none given.
	DSN *DSNParams
	// RequireTLS: MAIL FROM REQUIRETLS (RFC 8689); every queue entry
	// keeps it.
	RequireTLS bool

	// DeliveryKey, when set, makes the delivery idempotent: it is recorded
	// in the transaction that stores the message, and a later
	// CommitMessages with the same key skips the message as already
	// stored. A caller that got ErrCommitUnknown runs the same messages
	// again to learn the outcome without storing anything twice. Keys are
	// kept for at least a day.
	DeliveryKey string

	// Fetched, when set, is the remote message (of a fetched account)
	// this delivery stores: it is recorded as seen in the same
	// transaction, and a message whose key is recorded already is
	// skipped, so a poller that died between the delivery and its own
	// bookkeeping never stores the message twice.
	Fetched *FetchedKey
}

// FetchedKey names one remote message of a fetched account (Fetches'
// seen keys).
type FetchedKey struct {
	FetchID int64
	Key     string
}

// QueueItem is one outbound recipient of one message.
type QueueItem struct {
	ID          int64
	MessageID   string
	Sender      string
	Recipient   string
	BodyID      int64
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Held        bool
	CreatedAt   time.Time // first queued: the queue lifetime counts from here

	// Delivery state (filled by QueueStore's methods; ListQueue may leave
	// it zero).
	Size          int64     // body size in bytes
	LeaseUntil    time.Time // zero unless a worker holds the entry
	LastAttempt   time.Time // zero before the first failed attempt
	LastCode      int       // SMTP reply code of the last failure, 0 if none
	LastStatus    string    // its enhanced status ("4.2.2"), "" if unknown
	LastRemote    string    // the host that gave it, "" if none answered
	DelayNotified bool      // the sender has had the delay notice

	// RFC 3461 parameters the message was submitted with ("" = not given).
	DSNRet    string // RET: FULL or HDRS
	DSNEnvID  string // ENVID, decoded from xtext
	DSNNotify string // NOTIFY: NEVER, or a comma list of SUCCESS, FAILURE, DELAY
	DSNORcpt  string // ORCPT as "type;address" (address decoded from xtext)

	// RequireTLS: submitted with MAIL FROM REQUIRETLS (RFC 8689).
	RequireTLS bool
}

// DSNParams are a transaction's RFC 3461 parameters.
type DSNParams struct {
	Ret   string             // FULL, HDRS or ""
	EnvID string             // ENVID, "" if none
	Rcpts map[string]RcptDSN // by remote recipient address
}

// RcptDSN are one recipient's RFC 3461 parameters.
type RcptDSN struct {
	Notify string // NEVER, or a comma list of SUCCESS, FAILURE, DELAY; "" = not given
	ORcpt  string // "rfc822;addr" or "utf-8;addr"; "" = not given
}

// QueueUpdate is the outcome of one delivery attempt for one queue entry.
type QueueUpdate struct {
	ID int64
	// Delete removes the entry (delivered, bounced or expired); the body
	// goes with its last reference. Otherwise the entry is deferred:
	// attempts+1, the fields below are stored and the lease is dropped.
	Delete      bool
	NextAttempt time.Time
	LastAttempt time.Time
	LastError   string
	LastCode    int
	LastStatus  string
	LastRemote  string
	// DelayNotified sets the delay-notice flag (it is never cleared).
	DelayNotified bool
}

// QueueStore is the outbound queue's side of the store. Workers claim due
// entries under a lease, so that two workers (or two nodes sharing one
// database) never send the same entry at once, and record the outcomes;
// admins list, hold, release, delete and flush. All times are passed in
// by the caller, so a queue with a fake clock sees a consistent world.
type QueueStore interface {
	// ClaimQueue leases to owner, for lease, at most limit entries that
	// are due at now: not held, next_attempt <= now, and not leased or
	// with an expired lease (a crashed worker's). Soonest first. Leases
	// are timed by the database's clock (a node whose clock is off must
	// not take or keep another node's lease), not by now.
	ClaimQueue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]QueueItem, error)
	// RenewQueueLeases extends every lease owner holds by lease from the
	// database's clock and returns the ids of the entries owner still
	// holds: an entry missing from them was taken by another worker after
	// owner's lease ran out, and owner must stop sending it.
	RenewQueueLeases(ctx context.Context, owner string, lease time.Duration) ([]int64, error)
	// ReleaseQueueLeases drops owner's leases on ids (all of owner's when
	// ids is empty) without counting an attempt: the entries are due again.
	ReleaseQueueLeases(ctx context.Context, owner string, ids []int64) error
	// UpdateQueue records outcomes in one transaction. A deferral applies
	// only while owner still holds the lease; a delete always applies.
	UpdateQueue(ctx context.Context, owner string, ups []QueueUpdate) error

	// ListQueueEntries is ListQueue with the delivery state filled in.
	ListQueueEntries(ctx context.Context) ([]QueueItem, error)
	// GetQueueItem returns one entry; ErrNotFound if there is none.
	GetQueueItem(ctx context.Context, id int64) (*QueueItem, error)
	// DeleteQueueItem removes an entry without a DSN; ErrNotFound if none.
	DeleteQueueItem(ctx context.Context, id int64) error
	// SetQueueHeld holds (never claimed) or releases an entry; a released
	// entry keeps its schedule. ErrNotFound if there is none.
	SetQueueHeld(ctx context.Context, id int64, held bool) error
	// FlushQueue makes every entry that is not held due at now and
	// returns how many there are.
	FlushQueue(ctx context.Context, now time.Time) (int, error)
}

// Mail is message storage: mailboxes, messages and the outbound queue.
type Mail interface {
	// CommitMessages makes msgs durable in one transaction (one fsync for
	// the whole group): either all of them are stored, or none is and the
	// error says why. Callers that need per-message results retry a failed
	// group one message at a time.
	CommitMessages(ctx context.Context, msgs []*NewMessage) error

	// EnsureMailboxes creates whichever of specs user does not have yet.
	EnsureMailboxes(ctx context.Context, user string, specs []MailboxSpec) error
	ListMailboxes(ctx context.Context, user string) ([]Mailbox, error)
	// ListMessages lists a mailbox's messages in UID order.
	ListMessages(ctx context.Context, user, mailbox string) ([]MessageInfo, error)
	// OpenBody returns a stored body.
	OpenBody(ctx context.Context, bodyID int64) (io.ReadCloser, error)
	// ExpungeMessages deletes the messages with the given UIDs from a
	// mailbox in one transaction: quota_bytes_used drops by their sizes,
	// the mailbox gets a new modseq, and a body no other message or queue
	// entry uses is deleted, possibly after the call returns (the SQL
	// store releases bodies in the background). UIDs not (or no longer)
	// in the mailbox are ignored; ErrNotFound if the mailbox does not
	// exist.
	ExpungeMessages(ctx context.Context, user, mailbox string, uids []uint32) error

	ListQueue(ctx context.Context) ([]QueueItem, error)
}

// NewDeliveryKey returns a fresh NewMessage.DeliveryKey: a timestamp and
// 64 random bits in hex, so that keys recorded together sort together
// and land in the same index pages (random keys would dirty a page each).
func NewDeliveryKey() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	rand.Read(b[8:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// BodyHome tells where a store keeps bodies over its inline limit. When
// BodiesInDatabase is true (PostgreSQL, so that every node sharing the
// database reads them) CommitMessages copies a NewMessage.BlobName file
// into the database and the file stays the caller's, to remove once it
// is done with it; otherwise the store takes the file over and removes it
// with the body.
type BodyHome interface {
	BodiesInDatabase() bool
}
