package imapd

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// multiAppendFactor bounds one MULTIAPPEND: its messages together may
// hold this many times MESSAGE_SIZE_LIMIT, since they are held in memory
// until the one transaction that stores them all (RFC 3502 allows a
// server limit; NO [LIMIT] is RFC 5530's code for it).
const multiAppendFactor = 4

// appendCmd is one APPEND being read: the destination, looked up before
// the first message's bytes are asked for, and the bytes read so far.
type appendCmd struct {
	s     *session
	d     *decoder
	name  string
	to    *store.Mailbox
	total int64
}

// refuseLiteral answers a literal whose header was read but whose bytes
// are not wanted: a synchronizing literal is never sent (the client
// waits for "+"), a non-synchronizing one follows and is skipped.
func (d *decoder) refuseLiteral(n int64, sync bool, err error) error {
	if sync {
		d.eol = true
	} else {
		d.skipLiteral = n
	}
	return err
}

// check refuses what cannot be appended before any of a message's bytes
// are read: a mailbox name that is no name, a full disk, a missing
// mailbox (RFC 9051 6.3.12 TRYCREATE).
func (a *appendCmd) check() error {
	if a.d.refusal != nil {
		return a.d.refusal
	}
	if sp := a.s.srv.opts.Space; sp != nil && sp.Low() {
		// DISK_RESERVE: Dovecot answers a full disk so (RFC 5530
		// OVERQUOTA); the client is told before it sends the message.
		return errNoDiskSpace()
	}
	if a.to != nil {
		return nil
	}
	to, err := a.s.srv.opts.Store.GetMailbox(a.s.ctx, a.s.user, a.name)
	if errors.Is(err, store.ErrNotFound) {
		return no("TRYCREATE", "No such mailbox")
	} else if err != nil {
		return err
	}
	a.to = to
	return nil
}

// message reads one append-message: [flag-list SP] [date-time SP]
// (literal / literal8 / CATENATE list).
func (a *appendCmd) message() (store.NewAppend, error) {
	d, s := a.d, a.s
	na := store.NewAppend{User: s.user, Mailbox: a.name}
	if d.Is('(') {
		d.List(func() bool {
			f := d.Flag()
			if !validFlag(f) {
				d.fail("Unknown system flag")
				return false
			}
			if f != flagRecent && !hasFlag(na.Flags, f) {
				na.Flags = append(na.Flags, f)
			}
			return d.Err() == nil
		})
		d.SP()
	}
	if d.Is('"') {
		na.InternalDate = parseDateTime(d)
		d.SP()
	}
	if d.Err() == nil && !d.Is('~') && !d.Is('{') {
		if !strings.EqualFold(d.run(isAtomChar), "CATENATE") {
			d.fail("Expected the message as a literal or CATENATE")
			return na, d.Err()
		}
		if err := a.check(); err != nil {
			return na, err
		}
		body, err := a.catenate()
		na.Body = body
		return na, err
	}
	binary := d.Accept('~') // RFC 3516 literal8
	if !d.Is('{') {
		d.fail("Expected the message as a literal")
	}
	n, sync := d.literalHeader()
	if d.Err() != nil {
		return na, d.Err()
	}
	limit := s.srv.opts.MaxMessageSize
	if d.refusal != nil {
		return na, d.refuseLiteral(n, sync, d.refusal)
	}
	if n > limit {
		// RFC 7889 TOOBIG (MESSAGE_SIZE_LIMIT).
		return na, d.refuseLiteral(n, sync, no("TOOBIG", "Message too large"))
	}
	if a.total+n > multiAppendFactor*limit {
		return na, d.refuseLiteral(n, sync, no("LIMIT", "Too much data in one APPEND"))
	}
	if err := a.check(); err != nil {
		return na, d.refuseLiteral(n, sync, err)
	}
	s.tc.SetBusy(true) // a shutdown lets the upload finish
	na.Body = d.literalBody(n, sync, limit)
	s.tc.SetBusy(false)
	if d.Err() != nil {
		return na, d.Err()
	}
	a.total += n
	if n == 0 {
		return na, no("CANNOT", "Empty message")
	}
	if binary {
		body, err := encodeBinary(na.Body, limit)
		na.Body = body
		return na, err
	}
	return na, nil
}

// encodeBinary is RFC 3516 4.4 for a literal8 message: content with NUL
// is kept as base64, so that BODY[] stays a valid literal and BINARY[]
// gives the bytes back.
func encodeBinary(body []byte, limit int64) ([]byte, error) {
	out, ok := imapmsg.EncodeBinaryParts(body)
	if !ok {
		return nil, no("UNKNOWN-CTE", "NUL outside a message part's body")
	}
	if int64(len(out)) > limit {
		return nil, no("TOOBIG", "Message too large once encoded")
	}
	return out, nil
}

// multi is the rest of a MULTIAPPEND (RFC 3502) after its first message:
// every message is read, then all are stored in one transaction or none
// is, and APPENDUID names them all (RFC 4315 uid-set).
func (a *appendCmd) multi(first store.NewAppend) error {
	d, s := a.d, a.s
	msgs := []*store.NewAppend{&first}
	for d.Accept(' ') {
		na, err := a.message()
		if err != nil {
			return err
		}
		msgs = append(msgs, &na)
	}
	if err := d.End(); err != nil {
		return err
	}
	uids, uidValidity, err := s.srv.opts.Store.AppendMessages(s.ctx, s.user, a.name, msgs)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no("TRYCREATE", "No such mailbox")
	case err != nil:
		return mailboxError(err)
	}
	for i, na := range msgs {
		if obs := s.srv.opts.CopyObserver; obs != nil && na.BodyID != 0 {
			obs.Appended(s.user, a.to, na.BodyID)
		}
		s.log.Info("message appended", "mailbox", a.name, "uid", uids[i], "size", len(na.Body))
	}
	return ok("APPENDUID "+uitoa(uidValidity)+" "+imapmsg.CompactUIDs(uids), "APPEND completed")
}

// catenate reads RFC 4469's "(" cat-part *(SP cat-part) ")" after
// CATENATE and returns the message it builds: TEXT literals as sent,
// URLs replaced by the message data they name. A URL that cannot be
// resolved ends the command at once with NO [BADURL url] (RFC 4469 5),
// before any later literal is asked for.
func (a *appendCmd) catenate() ([]byte, error) {
	d, s := a.d, a.s
	limit := s.srv.opts.MaxMessageSize
	var body []byte
	binary := false // a TEXT part was literal8
	d.SP()
	d.Expect('(', `"("`)
	for d.Err() == nil {
		part := upperASCII(d.Atom())
		d.SP()
		if d.Err() != nil {
			break
		}
		switch part {
		case "TEXT":
			lit8 := d.Accept('~')
			binary = binary || lit8
			if !d.Is('{') {
				d.fail("Expected a literal after TEXT")
				return nil, d.Err()
			}
			n, sync := d.literalHeader()
			if d.Err() != nil {
				return nil, d.Err()
			}
			if int64(len(body))+n > limit {
				return nil, d.refuseLiteral(n, sync, no("TOOBIG", "Message too large"))
			}
			if a.total+int64(len(body))+n > multiAppendFactor*limit {
				return nil, d.refuseLiteral(n, sync, no("LIMIT", "Too much data in one APPEND"))
			}
			s.tc.SetBusy(true)
			text := d.literalBody(n, sync, limit)
			s.tc.SetBusy(false)
			if d.Err() != nil {
				return nil, d.Err()
			}
			if !lit8 && bytes.IndexByte(text, 0) >= 0 {
				d.fail("NUL in a literal (use literal8)")
				return nil, d.Err()
			}
			body = append(body, text...)
		case "URL":
			url := d.AString()
			if d.Err() != nil {
				return nil, d.Err()
			}
			var err error
			if body, err = s.appendURL(body, url, limit); err != nil {
				return nil, err
			}
		default:
			d.fail("Expected TEXT or URL")
			return nil, d.Err()
		}
		if d.Accept(')') {
			break
		}
		d.SP()
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	a.total += int64(len(body))
	if len(body) == 0 {
		return nil, no("CANNOT", "Empty message")
	}
	if binary {
		return encodeBinary(body, limit)
	}
	return body, nil
}

// appendURL appends the data an IMAP URL names (RFC 5092, one message
// or a section of it, of a mailbox of this user) to body; NO [BADURL]
// when it names nothing the user can read, NO [TOOBIG] when body would
// pass limit.
func (s *session) appendURL(body []byte, raw string, limit int64) ([]byte, error) {
	badURL := no("BADURL "+urlRespText(raw), "Cannot use this URL")
	base := ""
	if s.state == stateSelected && s.sel != nil {
		base = s.sel.name
	}
	u, ok := parseIMAPURL(raw, base)
	if !ok {
		return nil, badURL
	}
	if u.host != "" && !strings.EqualFold(u.host, s.srv.opts.Hostname) {
		return nil, badURL // another server's message
	}
	if u.user != "" && !strings.EqualFold(u.user, s.user) {
		return nil, badURL // another user's message (no URLAUTH)
	}
	st := s.srv.opts.Store
	mb, err := st.GetMailbox(s.ctx, s.user, u.mailbox)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, badURL
		}
		return nil, err
	}
	if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
		return nil, badURL
	}
	msg, err := st.MessageByUID(s.ctx, mb.ID, u.uid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, badURL
		}
		return nil, err
	}
	rc, err := st.OpenBody(s.ctx, msg.BodyID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, badURL // expunged meanwhile
		}
		return nil, err
	}
	defer rc.Close()
	r, size, err := readerAt(rc, msg.Size)
	if err != nil {
		return nil, err
	}
	sr := io.NewSectionReader(r, 0, size)
	if len(u.section.Part) > 0 || u.section.Specifier != imapmsg.SpecNone {
		ms, err := imapmsg.Parse(r, size)
		if err != nil {
			return nil, err
		}
		if sr, err = ms.Extract(r, u.section); err != nil {
			return nil, err
		}
	}
	if u.partial != nil {
		sr = u.partial.Apply(sr)
	}
	if int64(len(body))+sr.Size() > limit {
		return nil, no("TOOBIG", "Message too large")
	}
	start := len(body)
	body = append(body, make([]byte, sr.Size())...)
	if _, err := sr.ReadAt(body[start:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return body, nil
}

// urlRespText is a URL as RFC 4469's url-resp-text allows it in a
// response code: no "]", no line breaks, no NUL.
func urlRespText(raw string) string {
	return strings.Map(func(r rune) rune {
		if r == ']' || r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, raw)
}

// imapURL is the part of an RFC 5092 IMAP URL CATENATE uses.
type imapURL struct {
	user, host  string // both empty for a relative URL
	mailbox     string
	uidValidity uint32
	uid         uint32
	section     imapmsg.Section
	partial     *imapmsg.Partial
}

// parseIMAPURL parses an absolute IMAP URL ("imap://user@host/..."), an
// absolute path ("/INBOX;UIDVALIDITY=n/;UID=m/;SECTION=s/;PARTIAL=o.l")
// or a path relative to the selected mailbox base (";UID=m/..."), as RFC
// 4469 5 allows against the selected mailbox. A URL naming no single
// message, or with URLAUTH (Petrel offers none), does not parse.
func parseIMAPURL(raw, base string) (imapURL, bool) {
	var u imapURL
	rest := raw
	if len(rest) > 7 && strings.EqualFold(rest[:7], "imap://") {
		authority, path, ok := strings.Cut(rest[7:], "/")
		if !ok {
			return u, false
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			userinfo := authority[:at]
			authority = authority[at+1:]
			user, _, _ := strings.Cut(userinfo, ";") // ;AUTH=mech
			var err error
			if u.user, err = percentDecode(user); err != nil || u.user == "" {
				return u, false
			}
		}
		host, _, _ := strings.Cut(authority, ":")
		if host == "" {
			return u, false
		}
		u.host = host
		rest = "/" + path
	}
	var params string
	switch {
	case strings.HasPrefix(rest, "/"):
		i := indexFold(rest[1:], "/;UID=")
		if i < 0 {
			return u, false
		}
		mbox := rest[1 : 1+i]
		params = rest[1+i+2:]
		if j := strings.IndexByte(mbox, ';'); j >= 0 {
			v, ok := cutFold(mbox[j+1:], "UIDVALIDITY=")
			n, valid := parseNz(v)
			if !ok || !valid {
				return u, false
			}
			u.uidValidity = n
			mbox = mbox[:j]
		}
		name, err := percentDecode(mbox)
		if err != nil || name == "" {
			return u, false
		}
		u.mailbox = normInbox(name)
	case len(rest) > 5 && strings.EqualFold(rest[:5], ";UID=") && base != "":
		u.mailbox = base
		params = rest[1:]
	default:
		return u, false
	}
	// params: UID=m[/;SECTION=s][/;PARTIAL=o[.l]]
	segs := strings.Split(params, "/;")
	v, _ := cutFold(segs[0], "UID=")
	n, valid := parseNz(v)
	if !valid {
		return u, false // also UID=m;EXPIRE=..., URLAUTH
	}
	u.uid = n
	for _, seg := range segs[1:] {
		if v, ok := cutFold(seg, "SECTION="); ok && u.partial == nil && u.section.Specifier == "" && len(u.section.Part) == 0 {
			spec, err := percentDecode(v)
			if err != nil {
				return u, false
			}
			sec, err := imapmsg.ParseSection(spec)
			if err != nil || (len(sec.Part) == 0 && sec.Specifier == imapmsg.SpecNone) {
				return u, false
			}
			u.section = sec
			continue
		}
		if v, ok := cutFold(seg, "PARTIAL="); ok && u.partial == nil {
			off, count, hasCount := strings.Cut(v, ".")
			p := imapmsg.Partial{Count: 1<<63 - 1}
			o, ok1 := parseNum64(off)
			p.Offset = o
			if hasCount {
				c, ok2 := parseNum64(count)
				if !ok2 || c == 0 {
					return u, false
				}
				p.Count = c
			}
			if !ok1 {
				return u, false
			}
			u.partial = &p
			continue
		}
		return u, false // URLAUTH, EXPIRE, anything unknown
	}
	return u, true
}

// cutFold cuts a case-insensitive prefix.
func cutFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// indexFold is strings.Index ignoring ASCII case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// parseNz parses an RFC 5092 nz-number of 32 bits.
func parseNz(s string) (uint32, bool) {
	n, ok := parseNum64(s)
	if !ok || n == 0 || n > 0xffffffff || s[0] == '0' {
		return 0, false
	}
	return uint32(n), true
}

func parseNum64(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// percentDecode undoes RFC 3986 percent-encoding (RFC 5092 enc-mailbox
// and enc-section are UTF-8 percent-encoded).
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errBadEscape
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

var errBadEscape = errors.New("bad percent escape")

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
