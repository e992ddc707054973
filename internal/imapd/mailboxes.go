package imapd

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/petrelmail/petrel/internal/store"
)

// delimiter is the hierarchy delimiter (RFC 9051 5.1.1).
const delimiter = "/"

// mailboxArg reads a mailbox name and returns it as stored: UTF-8 (from
// modified UTF-7 for IMAP4rev1 clients, RFC 3501 5.1.3) with INBOX in
// upper case (RFC 9051 5.1: INBOX is case-insensitive).
func (s *session) mailboxArg(d *decoder) string {
	raw := d.AString()
	if d.Err() != nil {
		return ""
	}
	name := raw
	if !s.rev2 {
		dec, err := decodeUTF7(raw)
		if err != nil {
			// A valid astring: the command is well formed, the name is
			// not one (Dovecot answers NO too).
			d.refuse("CANNOT", "Mailbox name is not valid modified UTF-7")
			return ""
		}
		name = dec
	}
	return normInbox(name)
}

// normInbox spells INBOX, also as the first level of a hierarchy, in
// upper case.
func normInbox(name string) string {
	if len(name) >= 5 && strings.EqualFold(name[:5], "INBOX") && (len(name) == 5 || name[5] == '/') {
		return "INBOX" + name[5:]
	}
	return name
}

// wireName is a stored name as the client expects it.
func (s *session) wireName(name string) string {
	if s.rev2 {
		return name
	}
	return encodeUTF7(name)
}

// writeMailbox writes a mailbox name (astring).
func (s *session) writeMailbox(name string) {
	s.w.AString(s.wireName(name))
}

// mailboxError maps store errors of mailbox commands to RFC 5530 codes.
func mailboxError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no("NONEXISTENT", "No such mailbox")
	case errors.Is(err, store.ErrMailboxExists):
		return no("ALREADYEXISTS", "Mailbox already exists")
	case errors.Is(err, store.ErrMailboxInvalid):
		return no("CANNOT", "Invalid mailbox name")
	case errors.Is(err, store.ErrMailboxHasChildren):
		// RFC 9051 7.1 HASCHILDREN.
		return no("HASCHILDREN", "Mailbox has inferior mailboxes; delete them first")
	case errors.Is(err, store.ErrQuotaExceeded):
		return no("OVERQUOTA", "Quota exceeded")
	case errors.Is(err, syscall.ENOSPC):
		return errNoDiskSpace()
	}
	return err
}

// errNoDiskSpace: below DISK_RESERVE or the disk full (Dovecot: "NO
// [OVERQUOTA] Not enough disk space").
func errNoDiskSpace() error { return no("OVERQUOTA", "Not enough disk space") }

// cmdCreate is CREATE mailbox [(USE (attr))] (RFC 9051 6.3.4, RFC 6154 3).
func cmdCreate(s *session, c *command) error {
	d := c.args
	d.SP()
	name := s.mailboxArg(d)
	var uses []string
	if d.Accept(' ') {
		d.List(func() bool {
			if !strings.EqualFold(d.Atom(), "USE") || !d.SP() {
				d.fail("Expected USE (special-use)")
				return false
			}
			return d.List(func() bool {
				uses = append(uses, d.Flag())
				return d.Err() == nil
			})
		})
	}
	if err := d.End(); err != nil {
		return err
	}
	// RFC 9051 6.3.4: a trailing delimiter says the client means to
	// create inferiors; the name is created without it.
	name = strings.TrimSuffix(name, delimiter)
	if name == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	use := ""
	switch {
	case len(uses) > 1:
		// RFC 6154 3: valid syntax, but a mailbox holds one special use
		// here; NO [USEATTR], never BAD.
		return no("USEATTR", "One special-use attribute per mailbox")
	case len(uses) == 1 && !isSpecialUse(uses[0]):
		// RFC 6154 3: USEATTR for an attribute the server does not know.
		return no("USEATTR", "Unsupported special-use attribute")
	case len(uses) == 1:
		use = uses[0]
	}
	mb, err := s.srv.opts.Store.CreateMailbox(s.ctx, s.user, name, canonicalSpecialUse(use))
	if err != nil {
		return mailboxError(err)
	}
	s.notifyOwnMailbox("", mb)
	// RFC 8474 4.1: the new mailbox's object id.
	return ok("MAILBOXID ("+mailboxObjectID(mb.ID)+")", "CREATE completed")
}

// mailboxObjectID and emailObjectID are RFC 8474 object ids: the
// mailbox row's id, which RENAME keeps, and the stored body's id, which
// every COPY and MOVE of a message shares; neither is ever reused.
func mailboxObjectID(id int64) string   { return "M" + strconv.FormatInt(id, 10) }
func emailObjectID(bodyID int64) string { return "E" + strconv.FormatInt(bodyID, 10) }

var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

func isSpecialUse(f string) bool { return canonicalSpecialUse(f) != "" }

func canonicalSpecialUse(f string) string {
	for _, su := range specialUses {
		if strings.EqualFold(f, su) {
			return su
		}
	}
	return ""
}

// cmdDelete is DELETE mailbox (RFC 9051 6.3.5).
func cmdDelete(s *session, c *command) error {
	d := c.args
	d.SP()
	name := s.mailboxArg(d)
	if err := d.End(); err != nil {
		return err
	}
	if name == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	selected := s.sel != nil && s.sel.name == name
	if err := s.srv.opts.Store.DeleteMailbox(s.ctx, s.user, name); err != nil {
		return mailboxError(err)
	}
	s.notifyOwnRename(name, "")
	if selected {
		// The selected mailbox is gone: leave the Selected state as
		// CLOSE would (RFC 7162 3.2.11 CLOSED).
		s.sel = nil
		s.state = stateAuthenticated
		s.w.Status("*", "OK", "CLOSED", "Mailbox deleted")
	}
	return nil
}

// cmdRename is RENAME from to (RFC 9051 6.3.6).
func cmdRename(s *session, c *command) error {
	d := c.args
	d.SP()
	from := s.mailboxArg(d)
	d.SP()
	to := s.mailboxArg(d)
	if err := d.End(); err != nil {
		return err
	}
	if to == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if err := s.srv.opts.Store.RenameMailbox(s.ctx, s.user, from, to); err != nil {
		return mailboxError(err)
	}
	s.notifyOwnRename(from, to)
	if s.sel != nil && from != "INBOX" {
		// The selected mailbox keeps its id; only its name changes.
		if s.sel.name == from {
			s.sel.name = to
		} else if strings.HasPrefix(s.sel.name, from+delimiter) {
			s.sel.name = to + strings.TrimPrefix(s.sel.name, from)
		}
	}
	return nil
}

// cmdSubscribe is SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8).
func cmdSubscribe(s *session, c *command) error {
	d := c.args
	d.SP()
	name := s.mailboxArg(d)
	if err := d.End(); err != nil {
		return err
	}
	sub := c.name == "SUBSCRIBE"
	if err := s.srv.opts.Store.SetSubscribed(s.ctx, s.user, name, sub); err != nil {
		if !sub && errors.Is(err, store.ErrNotFound) {
			return nil // unsubscribing a mailbox that is gone is done
		}
		return mailboxError(err)
	}
	s.notifyOwnSubscription(name, sub)
	return nil
}

// cmdNamespace is NAMESPACE (RFC 2342, RFC 9051 6.3.10): one personal
// namespace, no prefix, "/" as delimiter.
func cmdNamespace(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	s.w.Untagged()
	s.w.Raw(`NAMESPACE (("" "/")) NIL NIL`)
	s.w.CRLF()
	return nil
}

// cmdStatus is STATUS mailbox (items) (RFC 9051 6.3.11).
func cmdStatus(s *session, c *command) error {
	d := c.args
	d.SP()
	name := s.mailboxArg(d)
	d.SP()
	items := s.statusItems(d)
	if err := d.End(); err != nil {
		return err
	}
	mb, err := s.srv.opts.Store.GetMailbox(s.ctx, s.user, name)
	if err != nil {
		return mailboxError(err)
	}
	if hasItem(items, "HIGHESTMODSEQ") {
		s.enableCondstore() // RFC 7162 3.1: a CONDSTORE enabling command
	}
	return s.writeStatus(mb, items)
}

// statusItems reads "(" status-att *(SP status-att) ")".
func (s *session) statusItems(d *decoder) []string {
	var items []string
	d.List(func() bool {
		it := upperASCII(d.Atom())
		switch it {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID":
			items = append(items, it)
			return true
		}
		d.fail("Unknown STATUS item")
		return false
	})
	if d.Err() == nil && len(items) == 0 {
		d.fail("STATUS needs at least one item")
	}
	return items
}

func hasItem(items []string, it string) bool {
	for _, x := range items {
		if x == it {
			return true
		}
	}
	return false
}

// writeStatus writes "* STATUS name (...)" for mb.
func (s *session) writeStatus(mb *store.Mailbox, items []string) error {
	var unseen, deleted int
	var size int64
	var recent int
	if hasItem(items, "UNSEEN") || hasItem(items, "DELETED") || hasItem(items, "SIZE") || hasItem(items, "RECENT") {
		msgs, err := s.srv.opts.Store.ListMessagesByID(s.ctx, mb.ID)
		if err != nil {
			return mailboxError(err)
		}
		for _, m := range msgs {
			if !hasFlag(m.Flags, flagSeen) {
				unseen++
			}
			if hasFlag(m.Flags, flagDeleted) {
				deleted++
			}
			size += m.Size
			if m.UID >= mb.RecentUID {
				recent++ // no session has taken it yet
			}
		}
	}
	s.w.Untagged()
	s.w.Raw("STATUS ")
	s.writeMailbox(mb.Name)
	s.w.Raw(" (")
	for i, it := range items {
		if i > 0 {
			s.w.Byte(' ')
		}
		s.w.Raw(it)
		s.w.Byte(' ')
		switch it {
		case "MESSAGES":
			s.w.Uint(uint64(mb.Messages))
		case "UIDNEXT":
			s.w.Uint(uint64(mb.UIDNext))
		case "UIDVALIDITY":
			s.w.Uint(uint64(mb.UIDValidity))
		case "UNSEEN":
			s.w.Uint(uint64(unseen))
		case "DELETED":
			s.w.Uint(uint64(deleted))
		case "SIZE":
			s.w.Uint(uint64(size))
		case "RECENT":
			s.w.Uint(uint64(recent))
		case "HIGHESTMODSEQ":
			s.w.Uint(mb.HighestModSeq)
		case "APPENDLIMIT":
			s.w.Uint(uint64(s.srv.opts.MaxMessageSize))
		case "MAILBOXID": // RFC 8474 4.3
			s.w.Raw("(" + mailboxObjectID(mb.ID) + ")")
		}
	}
	s.w.Raw(")")
	s.w.CRLF()
	return nil
}
