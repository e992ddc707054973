package store

import (
	"context"
	"errors"
	"time"
)

// ErrUIDValidityMismatch: a mailbox that already holds messages has
// another UIDVALIDITY than the one an import brings, so the imported
// UIDs would mean something else to clients.
var ErrUIDValidityMismatch = errors.New("mailbox has another UIDVALIDITY")

// ImportMailbox is a mailbox as another server kept it, so that clients
// keep their cache: the same UIDVALIDITY and UIDNEXT (RFC 9051 2.3.1.1).
type ImportMailbox struct {
	User        string
	Name        string // "/" as the hierarchy delimiter
	SpecialUse  string
	Subscribed  bool
	UIDValidity uint32
	UIDNext     uint32 // at least; raised past every imported UID
}

// ImportedMessage is one message with the UID it had.
type ImportedMessage struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Body         []byte
}

// Importer is implemented by stores that can take mailboxes and messages
// as another server numbered them (petrel import-mailu).
type Importer interface {
	// PrepareImportMailbox creates the mailbox (and missing parents) with
	// the given UIDVALIDITY, or gives an existing one it when the mailbox
	// has never held a message (UIDNEXT 1, nothing expunged). An existing
	// mailbox with messages must already have that UIDVALIDITY (an earlier
	// run of the same import): otherwise ErrUIDValidityMismatch. UIDNEXT
	// is raised to spec.UIDNext; subscription and special use are set.
	PrepareImportMailbox(ctx context.Context, spec ImportMailbox) (*Mailbox, error)
	// ImportMessages stores msgs in the mailbox in one transaction (one
	// fsync), each under its own UID; UIDs the mailbox already has are
	// skipped, so an interrupted import can run again. UIDNEXT is raised
	// past the highest UID, quota_bytes_used grows by the sizes, and the
	// quota is not enforced (the other server held the mail already).
	// It returns how many messages were stored.
	ImportMessages(ctx context.Context, mailboxID int64, msgs []ImportedMessage) (int, error)
	// MailboxUIDs returns the UIDs a mailbox holds, ascending.
	MailboxUIDs(ctx context.Context, mailboxID int64) ([]uint32, error)
}
