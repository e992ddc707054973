package imapd

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// errReadOnly answers a change in a mailbox opened with EXAMINE.
var errReadOnly = no("", "Mailbox is read-only (EXAMINE)")

// seqsArg resolves a sequence or UID set; an invalid sequence number is
// BAD (RFC 9051 9).
func (s *session) seqsArg(set numSet, uid bool) ([]uint32, error) {
	seqs, valid := s.sel.resolve(set, uid)
	if !valid {
		return nil, bad("Invalid message sequence number")
	}
	return seqs, nil
}

// storePage is how many messages one store transaction of a STORE
// changes: large enough that a STORE 1:* costs few fsyncs, small enough
// that what the store reads back for a page stays under a megabyte.
const storePage = 8192

// cmdStore is STORE and UID STORE (RFC 9051 6.4.6) with RFC 7162's
// UNCHANGEDSINCE.
func cmdStore(s *session, c *command) error {
	d := c.args
	d.SP()
	set := d.SeqSetOrSaved()
	d.SP()
	unchangedSince, haveUnchanged := uint64(0), false
	if d.Is('(') {
		d.List(func() bool {
			if !strings.EqualFold(d.Atom(), "UNCHANGEDSINCE") {
				d.fail("Unknown STORE modifier")
				return false
			}
			d.SP()
			unchangedSince, haveUnchanged = d.Number64(), true
			return d.Err() == nil
		})
		d.SP()
	}
	item := upperASCII(d.Atom())
	op := store.FlagsReplace
	switch {
	case strings.HasPrefix(item, "+"):
		op, item = store.FlagsAdd, item[1:]
	case strings.HasPrefix(item, "-"):
		op, item = store.FlagsRemove, item[1:]
	}
	silent := false
	switch item {
	case "FLAGS":
	case "FLAGS.SILENT":
		silent = true
	default:
		d.fail("Expected FLAGS, +FLAGS or -FLAGS")
	}
	d.SP()
	var flags []string
	addFlag := func() bool {
		f := d.Flag()
		if !validFlag(f) {
			d.fail("Unknown system flag")
			return false
		}
		if f != flagRecent && !hasFlag(flags, f) { // \Recent cannot be stored (RFC 9051 2.3.2)
			flags = append(flags, f)
		}
		return d.Err() == nil
	}
	if d.Is('(') {
		d.List(addFlag)
	} else {
		for addFlag() && d.Accept(' ') {
		}
	}
	if err := d.End(); err != nil {
		return err
	}
	if haveUnchanged {
		s.enableCondstore() // RFC 7162 3.1
	}
	if s.sel.readOnly {
		return errReadOnly
	}
	seqs, err := s.seqsArg(set, c.uid)
	if err != nil {
		return err
	}
	// Messages expunged elsewhere cannot change any more.
	seqs = slices.DeleteFunc(seqs, func(q uint32) bool { return s.sel.isGone(s.sel.msg(q).UID) })
	if len(seqs) == 0 {
		return nil
	}
	uids := s.sel.uidsOf(seqs)
	// failed and changed are ascending UIDs, looked up by binary search:
	// a STORE 1:* on 100,000 messages needs neither a map nor a scan of
	// failed per message.
	var failed, changed []uint32
	if haveUnchanged && unchangedSince == 0 {
		// RFC 7162 3.1.3: every message has a modseq above 0.
		failed = uids
	} else {
		// In pages: the store reads and returns every message it
		// changes, so a STORE 1:* on 100,000 held 8.6 MB of them at once
		// (issue 19's memory target). Each page is its own transaction;
		// like Dovecot's, a STORE is not atomic across messages, and a
		// page that fails leaves the earlier ones done (the client gets
		// NO and sees their FETCHes at its next sync).
		anyChanged := false
		for page := range slices.Chunk(uids, storePage) {
			res, err := s.applyFlags(&store.FlagUpdate{
				UIDs: page, Op: op, Flags: flags, UnchangedSince: unchangedSince,
			})
			if err != nil {
				return mailboxError(err)
			}
			failed = append(failed, res.Failed...)
			anyChanged = anyChanged || len(res.Changed) > 0
			if silent && s.condstore {
				for _, m := range res.Changed {
					changed = append(changed, m.UID)
				}
			}
		}
		if op != store.FlagsRemove && anyChanged {
			s.noteKeywords(flags) // also with .SILENT
		}
		slices.Sort(changed)
	}
	slices.Sort(failed)
	has := func(l []uint32, uid uint32) bool {
		_, ok := slices.BinarySearch(l, uid)
		return ok
	}
	for _, q := range seqs {
		m := s.sel.msg(q)
		switch {
		case has(failed, m.UID):
			// RFC 7162 3.1.3: reported in MODIFIED, not in FETCH.
		case !silent:
			s.writeFlagsFetch(q, m)
		case s.condstore && has(changed, m.UID):
			// RFC 7162 3.1.3: with .SILENT the new MODSEQ is still sent.
			s.w.Untagged()
			s.w.Uint(uint64(q))
			s.w.Raw(" FETCH (UID ")
			s.w.Uint(uint64(m.UID))
			s.w.Raw(" MODSEQ (")
			s.w.Uint(m.ModSeq)
			s.w.Raw("))")
			s.w.CRLF()
		}
	}
	if len(failed) > 0 {
		ids := failed
		if !c.uid {
			ids = make([]uint32, 0, len(failed))
			for _, u := range failed {
				if q := s.sel.seqOf(u); q != 0 {
					ids = append(ids, q)
				}
			}
		}
		return ok("MODIFIED "+imapmsg.CompactUIDs(ids), "Conditional STORE failed for some messages")
	}
	return nil
}

// validFlag: a keyword, or a system flag Petrel knows (RFC 9051 2.3.2).
func validFlag(f string) bool {
	return !strings.HasPrefix(f, `\`) || slices.Contains(systemFlags, f) || f == flagRecent
}

// cmdCopy is COPY, UID COPY, MOVE and UID MOVE (RFC 9051 6.4.7, 6.4.8,
// RFC 6851) with RFC 4315's COPYUID.
func cmdCopy(s *session, c *command) error {
	d := c.args
	d.SP()
	set := d.SeqSetOrSaved()
	d.SP()
	dest := s.mailboxArg(d)
	if err := d.End(); err != nil {
		return err
	}
	move := strings.HasSuffix(c.name, "MOVE")
	if move && s.sel.readOnly {
		return errReadOnly
	}
	seqs, err := s.seqsArg(set, c.uid)
	if err != nil {
		return err
	}
	seqs = slices.DeleteFunc(seqs, func(q uint32) bool { return s.sel.isGone(s.sel.msg(q).UID) })
	to, err := s.srv.opts.Store.GetMailbox(s.ctx, s.user, dest)
	if errors.Is(err, store.ErrNotFound) {
		// RFC 9051 6.4.7: the client may CREATE and try again.
		return no("TRYCREATE", "No such mailbox")
	}
	if err != nil {
		return mailboxError(err)
	}
	if len(seqs) == 0 {
		return nil
	}
	src, dst, uidValidity, err := s.srv.opts.Store.CopyMessages(s.ctx, s.sel.id, s.sel.uidsOf(seqs), to.ID, move)
	if err != nil {
		return mailboxError(err)
	}
	if len(src) == 0 {
		return nil
	}
	s.observeCopy(to, seqs)
	code := "COPYUID " + uitoa(uidValidity) + " " + imapmsg.CompactUIDs(src) + " " + imapmsg.CompactUIDs(dst)
	if !move {
		return ok(code, c.name+" completed")
	}
	// RFC 6851 4.3: COPYUID in an untagged OK before the expunges.
	s.w.Status("*", "OK", code, "Moved")
	moved := slices.Clone(src)
	slices.Sort(moved)
	s.reportExpunged(moved)
	return nil
}

// cmdExpunge is EXPUNGE (RFC 9051 6.4.3) and UID EXPUNGE (RFC 4315 2.1).
func cmdExpunge(s *session, c *command) error {
	d := c.args
	var set numSet
	if c.uid {
		d.SP()
		set = d.SeqSetOrSaved()
	}
	if err := d.End(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return errReadOnly
	}
	var gone []uint32
	var err error
	if c.uid {
		if err := s.syncNow(true); err != nil {
			return err
		}
		seqs, _ := s.sel.resolve(set, true)
		uids := make([]uint32, 0, len(seqs))
		for _, q := range seqs {
			uids = append(uids, s.sel.msg(q).UID)
		}
		if len(uids) == 0 {
			return nil
		}
		// RFC 4315 2.1: only the messages of the set that are \Deleted
		// when the expunge runs; the store decides inside its
		// transaction, so a -FLAGS \Deleted from another session or
		// node in between keeps the message.
		gone, err = s.srv.opts.Store.ExpungeDeleted(s.ctx, s.sel.id, uids)
	} else {
		gone, err = s.srv.opts.Store.ExpungeByID(s.ctx, s.sel.id, nil) // every \Deleted message
	}
	if err != nil {
		return mailboxError(err)
	}
	s.reportExpunged(gone)
	return nil
}

// cmdAppend is APPEND mailbox [flags] [date-time] literal (RFC 9051
// 6.3.12) with RFC 4315's APPENDUID, RFC 3516's literal8, RFC 4469's
// CATENATE and RFC 3502's MULTIAPPEND (appendext.go). A plain APPEND of
// one message keeps its own path: no slices, one store call.
func cmdAppend(s *session, c *command) error {
	d := c.args
	d.SP()
	a := appendCmd{s: s, d: d}
	a.name = s.mailboxArg(d)
	d.SP()
	first, err := a.message()
	if err != nil {
		return err
	}
	if d.Is(' ') {
		return a.multi(first)
	}
	if err := d.End(); err != nil {
		return err
	}
	na := &first
	uid, uidValidity, err := s.srv.opts.Store.AppendMessage(s.ctx, na)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no("TRYCREATE", "No such mailbox")
	case err != nil:
		return mailboxError(err)
	}
	if obs := s.srv.opts.CopyObserver; obs != nil && na.BodyID != 0 {
		obs.Appended(s.user, a.to, na.BodyID)
	}
	s.log.Info("message appended", "mailbox", a.name, "uid", uid, "size", len(na.Body))
	return ok("APPENDUID "+uitoa(uidValidity)+" "+uitoa(uid), "APPEND completed")
}

// parseDateTime reads RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz",
// the day possibly space-padded.
func parseDateTime(d *decoder) time.Time {
	s := d.String()
	if d.Err() != nil {
		return time.Time{}
	}
	for _, layout := range []string{"_2-Jan-2006 15:04:05 -0700", "02-Jan-2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	d.fail("Invalid date-time")
	return time.Time{}
}

func uitoa(n uint32) string {
	var buf [10]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(buf[i:])
}
