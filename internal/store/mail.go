package store

import (
	"context"
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
	CreatedAt   time.Time
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

	ListQueue(ctx context.Context) ([]QueueItem, error)
}
