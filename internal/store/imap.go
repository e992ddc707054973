package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors of the mailbox operations IMAP needs.
var (
	// ErrMailboxExists: CREATE or RENAME onto a name the user already has.
	ErrMailboxExists = errors.New("mailbox already exists")
	// ErrMailboxInvalid: the name is not allowed (empty, bad hierarchy,
	// renaming or deleting INBOX where RFC 9051 forbids it).
	ErrMailboxInvalid = errors.New("invalid mailbox name")
	// ErrMailboxHasChildren: RFC 9051 6.3.4: deleting a mailbox that has
	// inferior mailboxes and the \Noselect attribute is refused.
	ErrMailboxHasChildren = errors.New("mailbox has children")
)

// FlagOp is how StoreFlags changes flags (RFC 9051 6.4.6).
type FlagOp int

const (
	FlagsReplace FlagOp = iota // FLAGS
	FlagsAdd                   // +FLAGS
	FlagsRemove                // -FLAGS
)

// FlagUpdate is one STORE.
type FlagUpdate struct {
	MailboxID int64
	UIDs      []uint32
	Op        FlagOp
	Flags     []string
	// UnchangedSince, when non-zero, is RFC 7162's UNCHANGEDSINCE: a
	// message whose modseq is higher is not changed and is reported in
	// StoreResult.Failed.
	UnchangedSince uint64
}

// StoreResult says what StoreFlags did.
type StoreResult struct {
	Changed []MessageInfo // the messages whose flags changed, with new flags and modseq
	Failed  []uint32      // UNCHANGEDSINCE failures (RFC 7162 MODIFIED)
	// PrevModSeq is the mailbox's HIGHESTMODSEQ before this change. A
	// session that had seen everything up to it knows, from Changed,
	// everything up to the new one, and need not list the mailbox's
	// changes again (a STORE 1:* would list every message).
	PrevModSeq uint64
}

// Changes are what happened in a mailbox after a modseq (CONDSTORE,
// QRESYNC and IDLE use them).
type Changes struct {
	Mailbox  Mailbox       // the mailbox now (UIDNext, HighestModSeq, Messages)
	Changed  []MessageInfo // messages added or with flags changed after the modseq, in UID order
	Expunged []uint32      // UIDs expunged after the modseq, ascending
}

// NewAppend is one APPEND.
type NewAppend struct {
	User         string
	Mailbox      string
	Flags        []string
	InternalDate time.Time
	Body         []byte // bodies over the store's inline limit go to a blob file

	// BodyID is set by a successful AppendMessage: the stored body's id
	// (OpenBody), for the spam learning of an APPEND into Junk.
	BodyID int64
}

// Mailboxes is the mailbox and message management IMAP needs on top of
// Mail. Every change bumps the mailbox's HIGHESTMODSEQ and gives changed
// messages that modseq; expunges are remembered with their modseq so that
// QRESYNC can report them as VANISHED.
type Mailboxes interface {
	GetMailbox(ctx context.Context, user, name string) (*Mailbox, error)
	// CreateMailbox creates name (and missing parents, RFC 9051 6.3.4);
	// ErrMailboxExists if it exists.
	CreateMailbox(ctx context.Context, user, name, specialUse string) (*Mailbox, error)
	// DeleteMailbox deletes a mailbox and its messages (quota released).
	DeleteMailbox(ctx context.Context, user, name string) error
	// RenameMailbox renames a mailbox and its children; renaming INBOX
	// moves its messages to the new mailbox and leaves INBOX empty.
	RenameMailbox(ctx context.Context, user, from, to string) error
	// SetSubscribed adds name to the user's subscriptions or removes it;
	// the list is independent of the mailboxes (RFC 3501 6.3.6).
	SetSubscribed(ctx context.Context, user, name string, subscribed bool) error
	// ClaimRecent gives the caller the messages of the mailbox with UIDs
	// from the returned one up to upTo (exclusive) as \Recent (RFC 3501
	// 2.3.2): no later claim gets them. from == upTo when another session
	// was first.
	ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (from uint32, err error)
	// Subscriptions lists the user's subscribed names, existing or not.
	Subscriptions(ctx context.Context, user string) ([]string, error)

	// AppendMessage stores a message in a mailbox (ErrQuotaExceeded when
	// the user's quota would be exceeded) and returns its UID and the
	// mailbox's UIDVALIDITY (RFC 4315 APPENDUID).
	AppendMessage(ctx context.Context, a *NewAppend) (uid, uidValidity uint32, err error)
	// AppendMessages stores several messages in one mailbox atomically
	// (RFC 3502 MULTIAPPEND: all or none) and returns their UIDs in
	// order; User and Mailbox of msgs are ignored, BodyID is set.
	AppendMessages(ctx context.Context, user, mailbox string, msgs []*NewAppend) (uids []uint32, uidValidity uint32, err error)
	// MessageByUID returns one message of a mailbox; ErrNotFound if
	// there is none with that UID.
	MessageByUID(ctx context.Context, mailboxID int64, uid uint32) (*MessageInfo, error)
	// ListMessagesByID lists a mailbox's messages in UID order.
	ListMessagesByID(ctx context.Context, mailboxID int64) ([]MessageInfo, error)
	// SaveDates returns when the messages of the mailbox with UIDs from
	// minUID to maxUID were saved into it (RFC 8514 SAVEDATE: delivery,
	// APPEND, COPY, MOVE); a message saved before Petrel kept the date
	// is missing from the map.
	SaveDates(ctx context.Context, mailboxID int64, minUID, maxUID uint32) (map[uint32]time.Time, error)
	StoreFlags(ctx context.Context, u *FlagUpdate) (*StoreResult, error)
	// CopyMessages copies (move=false) or moves (move=true, RFC 6851:
	// atomically expunging the sources) messages to another mailbox of the
	// same user and returns the source UIDs and the new UIDs in the same
	// order (RFC 4315 COPYUID). Copies share the stored body; quota is
	// charged for copies.
	CopyMessages(ctx context.Context, fromID int64, uids []uint32, toID int64, move bool) (src, dst []uint32, uidValidity uint32, err error)
	// ExpungeByID expunges uids (all \Deleted messages when uids is nil).
	// It returns the UIDs actually expunged.
	ExpungeByID(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error)
	// ExpungeDeleted expunges those of uids that are flagged \Deleted
	// when the transaction runs, under the mailbox lock (RFC 4315 2.1 UID
	// EXPUNGE): a \Deleted cleared by another session or node after the
	// caller looked keeps the message. It returns the UIDs expunged.
	ExpungeDeleted(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error)
	// ChangesSince reports changes after modseq (0: every message).
	ChangesSince(ctx context.Context, mailboxID int64, modseq uint64) (*Changes, error)
	// Quota returns the user's used bytes and limit (0 = unlimited).
	Quota(ctx context.Context, user string) (used, limit int64, err error)
	// Watch returns a channel that receives (without blocking the writer)
	// after any committed change to mailboxes of user in this process
	// (and, on a Realtime store, on other nodes), and a function to stop
	// watching. IDLE polls ChangesSince only while the store is not
	// Realtime, so changes made by other nodes are seen then too.
	Watch(user string) (<-chan struct{}, func())
}

// MessageStreamer is implemented by stores that can hand out a mailbox's
// messages one at a time (ListMessagesByID without the list), for IMAP's
// compact view of large mailboxes.
type MessageStreamer interface {
	// EachMessageByID calls fn for each message of the mailbox in UID
	// order; m is valid only during the call. store.ErrNotFound if the
	// mailbox does not exist.
	EachMessageByID(ctx context.Context, mailboxID int64, fn func(m *MessageInfo)) error
}

// ChangePager is implemented by stores that can list a mailbox's changes
// a page at a time, so that a session told of another session's STORE
// 1:* on 100,000 messages holds one page of them instead of the whole
// list (issue 19).
type ChangePager interface {
	// ChangesPage is ChangesSince with at most limit messages in
	// Changed, in (modseq, UID) order: the first ones after the key
	// after, which is the zero key for the first page and the last
	// message's key for the next. A page shorter than limit is the last.
	// Mailbox and Expunged come with the first page only, in its
	// snapshot (later pages leave them zero). Pages are separate snapshots: a message changed
	// again between them comes again, with its newer modseq.
	ChangesPage(ctx context.Context, mailboxID int64, modseq uint64, after ChangeKey, limit int) (*Changes, error)
}

// ChangeKey is a message's place in ChangesPage's order.
type ChangeKey struct {
	ModSeq uint64
	UID    uint32
}

// BodyBatch is implemented by stores that can read many bodies in one
// call, so that IMAP FETCH and SEARCH over a range of messages cost one
// query per batch instead of one per message.
type BodyBatch interface {
	// ReadBodies calls fn for each of ids that exists (missing ones are
	// skipped), in no particular order, with random access to the body
	// and its size; r is valid only during the call. An error from fn
	// stops the batch and is returned.
	ReadBodies(ctx context.Context, ids []int64, fn func(id int64, r io.ReaderAt, size int64) error) error
}

// HeaderField is one of the header fields IMAP SEARCH looks up most,
// kept per stored body so that SEARCH SUBJECT, FROM, TO, CC, BCC and
// HEADER Message-ID need not read every header block (RFC 9051 6.4.4).
type HeaderField int

const (
	FieldSubject   HeaderField = iota // Subject, RFC 2047-decoded
	FieldFrom                         // From as envelope addresses: "name <mailbox@host>", decoded
	FieldTo                           // To, as From
	FieldCc                           // Cc, as From
	FieldBcc                          // Bcc, as From
	FieldMessageID                    // Message-ID, unfolded
	NumHeaderFields
)

// MaxHeaderFieldLen is the longest value kept for one field; a longer one
// is stored as absent (HeaderFields.Long) and searched in the header.
const MaxHeaderFieldLen = 4096

// HeaderFields are the searchable fields of one body, as SEARCH compares
// them: decoded and case-folded, several occurrences of a field joined by
// NUL (which no IMAP search string holds). Long marks fields over
// MaxHeaderFieldLen, which are not stored.
type HeaderFields struct {
	Value [NumHeaderFields]string
	Long  [NumHeaderFields]bool
}

// HeaderIndexer computes the searchable fields of a message from its
// header block (the IMAP side supplies it: it owns the decoding rules).
type HeaderIndexer func(header []byte) *HeaderFields

// HeaderSearch is implemented by stores that keep HeaderFields per body.
// Bodies stored without them (before the store kept them, or by a writer
// without an indexer) are reported as missing, and the reader fills them
// in with PutHeaderFields: the stored fields are a cache of the header,
// never a second truth.
type HeaderSearch interface {
	// HeaderColumn calls fn, in UID order, for every message of the
	// mailbox with a UID of at least fromUID, with its body and the
	// stored value of field: ok is false when the body has no stored
	// fields or the field is too long (stored says which).
	HeaderColumn(ctx context.Context, mailboxID int64, field HeaderField, fromUID uint32,
		fn func(uid uint32, bodyID int64, value string, ok, stored bool) error) error
	// PutHeaderFields stores the fields of bodies that have none; rows a
	// concurrent writer added first are left alone, as are bodies that
	// are gone.
	PutHeaderFields(ctx context.Context, fields map[int64]*HeaderFields) error
}
