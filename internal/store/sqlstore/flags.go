package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// systemFlags are RFC 9051 2.3.2's system flags in their canonical case.
// \Recent (RFC 3501 only) is a session property, never stored.
var systemFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}

// atomSpecials may not appear in a flag (RFC 9051 9: atom-specials; the
// leading backslash of a system flag is allowed).
const atomSpecials = `(){%*"\]`

// normFlags checks flags and returns them normalised: system flags in
// canonical case, keywords as given, duplicates (compared
// case-insensitively, RFC 9051 2.3.2) and \Recent dropped, order kept.
func normFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		canon, err := normFlag(f)
		if err != nil {
			return nil, err
		}
		if canon == "" || hasFlag(out, canon) {
			continue
		}
		out = append(out, canon)
	}
	return out, nil
}

func normFlag(f string) (string, error) {
	if strings.EqualFold(f, `\Recent`) {
		return "", nil
	}
	for _, s := range systemFlags {
		if strings.EqualFold(f, s) {
			return s, nil
		}
	}
	body := strings.TrimPrefix(f, `\`)
	if body == "" {
		return "", fmt.Errorf("empty flag")
	}
	for i := 0; i < len(body); i++ {
		if b := body[i]; b <= ' ' || b >= 0x7f || strings.IndexByte(atomSpecials, b) >= 0 {
			return "", fmt.Errorf("invalid flag %q", f)
		}
	}
	return f, nil
}

// hasFlag reports whether flags holds f, ignoring case.
func hasFlag(flags []string, f string) bool {
	return slices.ContainsFunc(flags, func(x string) bool { return strings.EqualFold(x, f) })
}

// sameFlags reports whether a and b hold the same flags (each is free of
// duplicates).
func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !hasFlag(b, f) {
			return false
		}
	}
	return true
}

// applyFlags returns old changed by op with flags (normalised).
func applyFlags(old []string, op store.FlagOp, flags []string) []string {
	switch op {
	case store.FlagsAdd:
		out := slices.Clone(old)
		for _, f := range flags {
			if !hasFlag(out, f) {
				out = append(out, f)
			}
		}
		return out
	case store.FlagsRemove:
		return slices.DeleteFunc(slices.Clone(old), func(x string) bool { return hasFlag(flags, x) })
	default:
		return slices.Clone(flags)
	}
}

// StoreFlags changes the flags of u.UIDs in one transaction (RFC 9051
// 6.4.6). UIDs not in the mailbox are ignored. With UnchangedSince set,
// a message whose modseq is higher is left alone and listed in Failed
// (RFC 7162 3.1.3). Only the messages whose flags really change are
// written; they all get one new modseq, which becomes the mailbox's
// HIGHESTMODSEQ; a STORE that changes nothing leaves the mailbox as it
// was. RFC 7162's UNCHANGEDSINCE 0 (which always fails) cannot be
// expressed here: the caller answers it itself. store.ErrNotFound if the
// mailbox does not exist.
//
// Only the mailbox row is locked: no quota changes. The commit is
// relaxed (withTxRelaxed): a power failure may undo it, a crash may not.
func (s *Store) StoreFlags(ctx context.Context, u *store.FlagUpdate) (*store.StoreResult, error) {
	flags, err := normFlags(u.Flags)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: store flags: %w", err)
	}
	uids := sortedUnique(u.UIDs)
	var res *store.StoreResult
	var user string
	err = s.retryTxRelaxed(ctx, func(c conn) error {
		res = &store.StoreResult{}
		boxes, err := lockMailboxes(ctx, c, u.MailboxID)
		if err != nil {
			return err
		}
		box := boxes[u.MailboxID]
		user = box.user
		msgs, err := messagesByUID(ctx, c, u.MailboxID, uids)
		if err != nil {
			return err
		}
		res.PrevModSeq = uint64(box.highestModSeq)
		modseq := res.PrevModSeq + 1
		groups := map[string][]uint32{} // new flags text -> UIDs
		// Messages with the same flags share one list (messageScanner),
		// so the new flags are worked out once per distinct list.
		type outcome struct {
			nf   []string
			text string
			same bool
		}
		memo := map[*string]*outcome{}
		var none *outcome // messages without flags
		// The changed messages are compacted into msgs itself (the k-th
		// changed one is at most the k-th read): no second list of a
		// 100,000-message STORE.
		res.Changed = msgs[:0]
		for _, m := range msgs {
			if u.UnchangedSince > 0 && m.ModSeq > u.UnchangedSince {
				res.Failed = append(res.Failed, m.UID)
				continue
			}
			var o *outcome
			if len(m.Flags) == 0 {
				o = none
			} else {
				o = memo[&m.Flags[0]]
			}
			if o == nil {
				old, err := normFlags(m.Flags)
				if err != nil {
					old = m.Flags // keep what delivery stored
				}
				nf := slices.Clip(applyFlags(old, u.Op, flags))
				o = &outcome{nf: nf, text: strings.Join(nf, " "), same: sameFlags(old, nf)}
				if len(m.Flags) == 0 {
					none = o
				} else if len(memo) < maxSharedFlagLists {
					memo[&m.Flags[0]] = o
				}
			}
			if o.same {
				continue
			}
			m.Flags, m.ModSeq = o.nf, modseq
			res.Changed = append(res.Changed, m)
			groups[o.text] = append(groups[o.text], m.UID)
		}
		if len(res.Changed) == 0 {
			res.Changed = nil
		}
		if len(res.Changed) == 0 {
			return nil
		}
		if _, err := c.exec(ctx, `UPDATE mailbox SET highestmodseq = ? WHERE id = ?`, int64(modseq), u.MailboxID); err != nil {
			return fmt.Errorf("bump highestmodseq: %w", mapErr(err))
		}
		for _, text := range sortedKeys(groups) {
			_, err := c.exec(ctx, `UPDATE message SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid IN `+c.d.intSet(),
				text, int64(modseq), u.MailboxID, c.d.intSetArg(groups[text]))
			if err != nil {
				return fmt.Errorf("update flags: %w", mapErr(err))
			}
		}
		c.changed(user)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: store flags in mailbox %d: %w", u.MailboxID, err)
	}
	return res, nil
}

// sortedUnique returns uids sorted without duplicates (a copy).
func sortedUnique(uids []uint32) []uint32 {
	uids = slices.Clone(uids)
	slices.Sort(uids)
	return slices.Compact(uids)
}

func scanMessage(sc interface{ Scan(...any) error }) (store.MessageInfo, error) {
	return scanMessageFlags(sc, nil)
}

// maxSharedFlagLists bounds flagLists' memo (distinct flag texts of one
// listing; a mailbox has a handful).
const maxSharedFlagLists = 1024

// flagLists makes the messages of one listing that have the same flags
// share one clipped slice (an append copies; nobody changes them in
// place), instead of a slice per message: at 100,000 messages that is
// megabytes less garbage for every listing and STORE.
type flagLists map[string][]string

func (fl flagLists) get(text string) []string {
	if fl == nil {
		return strings.Fields(text)
	}
	if l, ok := fl[text]; ok {
		return l
	}
	l := slices.Clip(strings.Fields(text))
	if len(fl) < maxSharedFlagLists {
		fl[text] = l
	}
	return l
}

// getBytes is get for a column read as bytes (no string per row when
// the list is known).
func (fl flagLists) getBytes(text []byte) []string {
	if l, ok := fl[string(text)]; ok {
		return l
	}
	return fl.get(string(text))
}

// scanMessageFlags is scanMessage with shared flag lists.
func scanMessageFlags(sc interface{ Scan(...any) error }, fl flagLists) (store.MessageInfo, error) {
	var m store.MessageInfo
	var uid, modseq int64
	var flags string
	err := sc.Scan(&m.MailboxID, &uid, &modseq, &flags, scanTime(&m.InternalDate), &m.Size, &m.BodyID)
	m.UID, m.ModSeq = uint32(uid), uint64(modseq)
	if flags != "" {
		m.Flags = fl.get(flags)
	}
	return m, err
}

// messageScanner returns a scanMessage whose flag lists are shared
// within one listing.
func messageScanner() func(sc interface{ Scan(...any) error }) (store.MessageInfo, error) {
	fl := flagLists{}
	return func(sc interface{ Scan(...any) error }) (store.MessageInfo, error) { return scanMessageFlags(sc, fl) }
}

// listMessages lists the messages of mailbox id with a modseq above
// since (all when 0), in UID order.
func listMessages(ctx context.Context, c conn, id int64, since uint64) ([]store.MessageInfo, error) {
	if since == 0 {
		// Without the modseq condition SQLite walks the primary key in
		// UID order instead of the modseq index plus a sort.
		return list(ctx, c, "list messages", messageScanner(),
			`SELECT `+c.d.messageCols()+` FROM message WHERE mailbox_id = ? ORDER BY uid`, id)
	}
	return list(ctx, c, "list messages", messageScanner(),
		`SELECT `+c.d.messageCols()+` FROM message WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`, id, clampModSeq(since))
}

// messagesByUID returns the messages of mailbox id among uids (sorted,
// unique), in UID order: one query for the whole list (intSet), read row
// by row into one slice with scan targets reused, because a STORE 1:* on
// 100,000 messages reads them all (issue 19).
func messagesByUID(ctx context.Context, c conn, id int64, uids []uint32) ([]store.MessageInfo, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	rows, err := c.query(ctx, `SELECT `+c.d.messageCols()+` FROM message WHERE mailbox_id = ? AND uid IN `+c.d.intSet()+` ORDER BY uid`,
		id, c.d.intSetArg(uids))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read messages: %w", err)
	}
	defer rows.Close()
	out := make([]store.MessageInfo, 0, len(uids))
	var r messageRow
	r.init()
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return nil, fmt.Errorf("sqlstore: read messages: %w", err)
		}
		out = append(out, r.info())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: read messages: %w", err)
	}
	return out, nil
}

// messageRow holds the scan targets of messageCols for a loop over many
// rows: nothing is allocated per row but a new flag list.
type messageRow struct {
	m           store.MessageInfo
	uid, modseq int64
	flags       sql.RawBytes
	fl          flagLists
	dest        []any
}

func (r *messageRow) init() {
	r.fl = flagLists{}
	r.dest = []any{&r.m.MailboxID, &r.uid, &r.modseq, &r.flags, scanTime(&r.m.InternalDate), &r.m.Size, &r.m.BodyID}
}

// info returns the row scanned last.
func (r *messageRow) info() store.MessageInfo {
	m := r.m
	m.UID, m.ModSeq = uint32(r.uid), uint64(r.modseq)
	m.Flags = nil
	if len(r.flags) > 0 {
		m.Flags = r.fl.getBytes(r.flags)
	}
	return m
}

// clampModSeq turns a client's modseq into a query argument (the
// driver takes int64; RFC 7162 modseqs are 63-bit).
func clampModSeq(m uint64) int64 {
	if m > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(m)
}
