package pop3d

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// message is one entry of the maildrop snapshot taken at login.
type message struct {
	uid     uint32
	bodyID  int64
	stored  int64 // octets as stored
	size    int64 // octets as RETR sends them; -1 until known
	deleted bool  // marked with DELE
}

// mailbox is the one a POP3 session shows: RFC 1939 has no folders.
const mailbox = "INBOX"

// openMaildrop takes the snapshot of user's INBOX (RFC 1939 5: later
// deliveries are not shown in this session). A user who never got mail
// yet has no mailboxes; they are created, as delivery would.
func (s *session) openMaildrop(user string) error {
	st := s.srv.opts.Store
	inbox, err := findInbox(s, user)
	if errors.Is(err, store.ErrNotFound) {
		if err := st.EnsureMailboxes(s.ctx, user, store.DefaultMailboxes); err != nil {
			return fmt.Errorf("create mailboxes: %w", err)
		}
		inbox, err = findInbox(s, user)
	}
	if err != nil {
		return err
	}
	infos, err := st.ListMessages(s.ctx, user, mailbox)
	if err != nil {
		return fmt.Errorf("list messages: %w", err)
	}
	s.uidv = inbox.UIDValidity
	s.drop = make([]message, len(infos))
	for i, m := range infos {
		s.drop[i] = message{uid: m.UID, bodyID: m.BodyID, stored: m.Size, size: -1}
		if n, ok := s.srv.sizes.get(m.BodyID); ok {
			s.drop[i].size = n
		}
	}
	return nil
}

func findInbox(s *session, user string) (store.Mailbox, error) {
	mbs, err := s.srv.opts.Store.ListMailboxes(s.ctx, user)
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("list mailboxes: %w", err)
	}
	for _, m := range mbs {
		if m.Name == mailbox {
			return m, nil
		}
	}
	return store.Mailbox{}, fmt.Errorf("INBOX of %s: %w", user, store.ErrNotFound)
}

// transaction runs one command in the TRANSACTION state (RFC 1939 5).
func (s *session) transaction(verb, arg string) {
	switch verb {
	case "STAT":
		s.cmdStat(arg)
	case "LIST":
		s.cmdList(arg, false)
	case "UIDL":
		s.cmdList(arg, true)
	case "RETR":
		s.cmdRetr(arg)
	case "TOP":
		s.cmdTop(arg)
	case "DELE":
		s.cmdDele(arg)
	case "RSET":
		if arg != "" {
			s.bad("RSET takes no arguments")
			return
		}
		n := 0
		for i := range s.drop {
			if s.drop[i].deleted {
				s.drop[i].deleted = false
				n++
			}
		}
		s.ok(fmt.Sprintf("%d messages unmarked, maildrop has %d messages", n, len(s.drop)))
	case "NOOP":
		s.ok("")
	case "QUIT":
		s.quit()
	case "CAPA":
		s.capa()
	case "USER", "PASS", "AUTH", "APOP", "STLS":
		s.err("Already logged in")
	default:
		s.bad("Unknown command")
	}
}

// msgArg parses a message number (RFC 1939 5: 1 up to the size of the
// snapshot) and returns its index; ok false when the reply is written.
// Deleted messages may not be referred to.
func (s *session) msgArg(arg string) (int, bool) {
	if arg == "" {
		s.bad("Message number required")
		return 0, false
	}
	n, err := strconv.ParseUint(arg, 10, 31)
	if errors.Is(err, strconv.ErrRange) {
		n = 0 // all digits, just too many: no such message
	} else if err != nil || arg[0] == '+' {
		s.bad("Invalid message number: use a number from LIST")
		return 0, false
	}
	if n == 0 || n > uint64(len(s.drop)) {
		s.err(fmt.Sprintf("There is no such message: the maildrop has %d", len(s.drop)))
		return 0, false
	}
	if s.drop[n-1].deleted {
		s.err(fmt.Sprintf("Message %d is deleted", n))
		return 0, false
	}
	return int(n - 1), true
}

// sizeOf returns a message's size as RETR sends it, reading the body
// once if no session has done so before. A body another session has
// expunged meanwhile keeps its stored size, so that STAT and LIST still
// answer (RETR of it then says it is gone).
func (s *session) sizeOf(i int) (int64, error) {
	m := &s.drop[i]
	if m.size >= 0 {
		return m.size, nil
	}
	if n, ok := s.srv.sizes.get(m.bodyID); ok {
		m.size = n
		return n, nil
	}
	rc, err := s.srv.opts.Store.OpenBody(s.ctx, m.bodyID)
	if errors.Is(err, store.ErrNotFound) {
		return m.stored, nil
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := wireSize(rc)
	if err != nil {
		return 0, fmt.Errorf("read body %d: %w", m.bodyID, err)
	}
	s.srv.sizes.put(m.bodyID, n)
	m.size = n
	return n, nil
}

// storeFailed answers a command the store could not serve.
func (s *session) storeFailed(what string, i int, err error) {
	if errors.Is(err, store.ErrNotFound) {
		// Expunged meanwhile by another session (IMAP, a second POP3).
		s.err(fmt.Sprintf("Message %d was deleted by another session", i+1))
		return
	}
	s.log.Error("store failed", "what", what, "msg", i+1, "err", err)
	s.err("[SYS/TEMP] Cannot read the mailbox now, try again later")
}

func (s *session) cmdStat(arg string) {
	if arg != "" {
		s.bad("STAT takes no arguments")
		return
	}
	var n int
	var total int64
	for i := range s.drop {
		if s.drop[i].deleted {
			continue
		}
		size, err := s.sizeOf(i)
		if err != nil {
			s.storeFailed("stat", i, err)
			return
		}
		n++
		total += size
	}
	s.ok(fmt.Sprintf("%d %d", n, total))
}

// cmdList answers LIST and UIDL (RFC 1939 7), for one message or all
// that are not deleted.
func (s *session) cmdList(arg string, uidl bool) {
	value := func(i int) (string, error) {
		if uidl {
			return s.uniqueID(i), nil
		}
		n, err := s.sizeOf(i)
		return strconv.FormatInt(n, 10), err
	}
	if arg != "" {
		if strings.Contains(arg, " ") {
			s.bad("Too many arguments")
			return
		}
		i, ok := s.msgArg(arg)
		if !ok {
			return
		}
		v, err := value(i)
		if err != nil {
			s.storeFailed("list", i, err)
			return
		}
		s.ok(fmt.Sprintf("%d %s", i+1, v))
		return
	}
	lines := make([]string, 0, len(s.drop))
	for i := range s.drop {
		if s.drop[i].deleted {
			continue
		}
		v, err := value(i)
		if err != nil {
			s.storeFailed("list", i, err)
			return
		}
		lines = append(lines, fmt.Sprintf("%d %s\r\n", i+1, v))
	}
	if uidl {
		s.ok("Unique-ID list follows")
	} else {
		s.ok(fmt.Sprintf("%d messages", len(lines)))
	}
	for _, l := range lines {
		s.w.WriteString(l)
	}
	s.w.WriteString(".\r\n")
}

// uniqueID is the UIDL of a message: Dovecot's default pop3_uidl_format
// %08Xu%08Xv (UID, then UIDVALIDITY), which never changes while the
// mailbox keeps its UIDVALIDITY and is never reused (RFC 1939 7).
func (s *session) uniqueID(i int) string {
	return fmt.Sprintf("%08X%08X", s.drop[i].uid, s.uidv)
}

func (s *session) cmdRetr(arg string) {
	if strings.Contains(arg, " ") {
		s.bad("Too many arguments")
		return
	}
	i, ok := s.msgArg(arg)
	if !ok {
		return
	}
	size, err := s.sizeOf(i)
	if err != nil {
		s.storeFailed("retr", i, err)
		return
	}
	if s.send(i, fmt.Sprintf("%d octets", size), -1) {
		s.retrieved++
	}
}

func (s *session) cmdTop(arg string) {
	f := strings.Split(arg, " ")
	if arg == "" || len(f) != 2 {
		s.bad("Use TOP message lines")
		return
	}
	i, ok := s.msgArg(f[0])
	if !ok {
		return
	}
	n, err := strconv.ParseUint(f[1], 10, 63)
	if err != nil || f[1][0] == '+' {
		s.bad("Invalid number of lines: use 0 or more")
		return
	}
	s.send(i, "Top of message follows", int(min(n, 1<<31)))
}

// send writes message i as a multi-line response: the header and at most
// top body lines when top >= 0. A failure after "+OK" cannot be reported
// in the protocol any more, so the connection is closed.
func (s *session) send(i int, status string, top int) bool {
	m := s.drop[i]
	rc, err := s.srv.opts.Store.OpenBody(s.ctx, m.bodyID)
	if err != nil {
		s.storeFailed("open body", i, err)
		return false
	}
	defer rc.Close()
	s.ok(status)
	e := newEncoder(s.w, true, top)
	_, err = io.Copy(e, rc)
	if err == nil {
		_, err = e.finish()
	}
	if err != nil {
		s.log.Warn("message transfer failed; closing the connection", "msg", i+1, "err", err)
		s.closing = true
		s.logout = "transfer failed"
		return false
	}
	s.w.WriteString(".\r\n")
	return true
}

func (s *session) cmdDele(arg string) {
	if strings.Contains(arg, " ") {
		s.bad("Too many arguments")
		return
	}
	i, ok := s.msgArg(arg)
	if !ok {
		return
	}
	s.drop[i].deleted = true
	s.ok(fmt.Sprintf("Message %d marked for deletion", i+1))
}

// quit enters the UPDATE state (RFC 1939 6): the messages marked with
// DELE are deleted, all or none.
func (s *session) quit() {
	s.closing = true
	uids := s.deletedUIDs()
	if len(uids) > 0 {
		if err := s.srv.opts.Store.ExpungeMessages(s.ctx, s.user, mailbox, uids); err != nil {
			s.log.Error("expunge failed", "messages", len(uids), "err", err)
			s.logout = "quit, expunge failed"
			s.err("[SYS/TEMP] Could not delete the messages marked with DELE; they are still there")
			return
		}
	}
	s.logout = "quit"
	s.expunged = len(uids)
	s.ok(fmt.Sprintf("Logging out, %d messages deleted.", len(uids)))
}

func (s *session) deletedUIDs() []uint32 {
	var uids []uint32
	for _, m := range s.drop {
		if m.deleted {
			uids = append(uids, m.uid)
		}
	}
	return uids
}

// endTransaction writes the logout line and frees the user's session
// slot. Messages marked with DELE in a session that did not QUIT stay.
func (s *session) endTransaction() {
	s.tc.ReleaseUser()
	reason := s.logout
	if reason == "" {
		reason = "disconnect"
	}
	s.log.Info("pop3 logout", "reason", reason, "messages", len(s.drop), "retrieved", s.retrieved,
		"deleted", s.expunged, "kept_marked", len(s.deletedUIDs())-s.expunged,
		"duration", s.srv.opts.Now().Sub(s.loginAt).Round(1e6).String())
}
