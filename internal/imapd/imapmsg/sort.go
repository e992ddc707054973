package imapmsg

import (
	"cmp"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
)

// SortBy is one SORT criterion (RFC 5256 3, RFC 5957 for the DISPLAY
// ones).
type SortBy int

const (
	SortArrival     SortBy = iota // INTERNALDATE
	SortCc                        // addr-mailbox of the first Cc address
	SortDate                      // sent date (Date header, else INTERNALDATE)
	SortFrom                      // addr-mailbox of the first From address
	SortSize                      // RFC822.SIZE
	SortSubject                   // base subject
	SortTo                        // addr-mailbox of the first To address
	SortDisplayFrom               // display name of the first From address, else its addr-spec
	SortDisplayTo                 // the same for To
)

// SortKey is a criterion with its REVERSE modifier.
type SortKey struct {
	By      SortBy
	Reverse bool
}

var sortWords = map[string]SortBy{
	"ARRIVAL": SortArrival, "CC": SortCc, "DATE": SortDate, "FROM": SortFrom,
	"SIZE": SortSize, "SUBJECT": SortSubject, "TO": SortTo,
	"DISPLAYFROM": SortDisplayFrom, "DISPLAYTO": SortDisplayTo,
}

// ParseSortCriteria reads the words of a sort-criteria list (RFC 5256 5:
// ["REVERSE" SP] sort-key, at least one).
func ParseSortCriteria(words []string) ([]SortKey, error) {
	var keys []SortKey
	reverse := false
	for _, w := range words {
		w = strings.ToUpper(w)
		if w == "REVERSE" {
			if reverse {
				return nil, fmt.Errorf("REVERSE twice")
			}
			reverse = true
			continue
		}
		by, ok := sortWords[w]
		if !ok {
			return nil, fmt.Errorf("unknown sort criterion %q", w)
		}
		keys = append(keys, SortKey{By: by, Reverse: reverse})
		reverse = false
	}
	if reverse || len(keys) == 0 {
		return nil, fmt.Errorf("incomplete sort criteria")
	}
	return keys, nil
}

// SortMessage is what SORT and THREAD know of one message: the mailbox
// metadata and the fields read from its header (SortFieldsOf).
type SortMessage struct {
	Seq          uint32 // the final tie-breaker (RFC 5256 3)
	Num          uint32 // what the answer lists: the sequence number or the UID
	InternalDate time.Time
	Size         int64
	Fields       SortFields
}

// SortFields are the header values SORT and THREAD compare. Strings are
// folded for comparison (i;unicode-casemap: title case, as Dovecot does).
type SortFields struct {
	BaseSubject string    // RFC 5256 2.1, folded
	IsReplyFwd  bool      // the extraction removed a Re:, Fwd: or (fwd)
	Sent        time.Time // the Date header in UTC; zero when missing or unparsable
	From, To    string    // addr-mailbox of the first address, folded
	Cc          string
	DisplayFrom string // RFC 5957 display name or addr-spec, decoded and folded
	DisplayTo   string
	MessageID   string   // without angle brackets; "" when missing
	References  []string // References, else the first In-Reply-To id
}

// SortFieldsOf reads the fields SORT and THREAD need from a header block.
func SortFieldsOf(header []byte) SortFields {
	var f SortFields
	var subject, date, from, to, cc, msgID, refs, inReplyTo string
	seen := map[string]bool{}
	eachField(header, func(name, value, _ []byte) {
		if name == nil {
			return
		}
		key := strings.ToLower(string(name))
		var dst *string
		switch key {
		case "subject":
			dst = &subject
		case "date":
			dst = &date
		case "from":
			dst = &from
		case "to":
			dst = &to
		case "cc":
			dst = &cc
		case "message-id":
			dst = &msgID
		case "references":
			dst = &refs
		case "in-reply-to":
			dst = &inReplyTo
		default:
			return
		}
		if seen[key] {
			return // the first field counts, as for ENVELOPE
		}
		seen[key] = true
		*dst = unfold(value)
	})
	f.BaseSubject, f.IsReplyFwd = BaseSubject(subject)
	f.BaseSubject = foldSort(f.BaseSubject)
	if t, err := mail.ParseDate(date); err == nil {
		f.Sent = t.UTC()
	}
	f.From, f.DisplayFrom = sortAddress(from)
	f.To, f.DisplayTo = sortAddress(to)
	f.Cc, _ = sortAddress(cc)
	if ids := msgIDs(msgID); len(ids) > 0 {
		f.MessageID = ids[0]
	}
	f.References = msgIDs(refs)
	if len(f.References) == 0 {
		if ids := msgIDs(inReplyTo); len(ids) > 0 {
			f.References = ids[:1]
		}
	}
	return f
}

// sortAddress gives the SORT key (addr-mailbox) and the DISPLAY key of
// the first address of an address header.
func sortAddress(raw string) (mailbox, display string) {
	list := parseAddressList(raw)
	if len(list) == 0 {
		return "", ""
	}
	a := list[0]
	mailbox = foldSort(decodeHeaderValue(a.Mailbox))
	if name := strings.TrimSpace(decodeHeaderValue(a.Name)); name != "" && !a.GroupStart {
		return mailbox, foldSort(name)
	}
	spec := a.Mailbox
	if a.Host != "" && a.Host != missingDomain {
		spec += "@" + a.Host
	}
	return mailbox, foldSort(spec)
}

// msgIDs returns the msg-ids in a Message-ID, References or In-Reply-To
// value, without angle brackets; text outside brackets (phrases,
// comments) is skipped, as are empty ids.
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		id := strings.Join(strings.Fields(v[i+1:i+j]), "")
		if id != "" && !strings.ContainsAny(id, "<") {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
}

// foldSort is i;unicode-casemap's folding for ordering (RFC 5051):
// canonical decomposition and title case, as Dovecot does, so that "é"
// sorts with "e". (Lower case would put "_" before letters, which
// Dovecot and imaptest do not.)
func foldSort(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.ToTitle(norm.NFD.String(s))
		}
	}
	return strings.ToTitle(s)
}

// BaseSubject extracts the base subject (RFC 5256 2.1) and reports
// whether a reply or forward marker was removed on the way.
func BaseSubject(subject string) (string, bool) {
	// (1) decode, tabs and continuations to spaces, runs of spaces to one
	s := strings.Join(strings.FieldsFunc(decodeHeaderValue(subject), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
	replyFwd := false
	for {
		// (2) subj-trailer = "(fwd)" / WSP, as often as it matches
		for {
			if t := strings.TrimRight(s, " "); t != s {
				s = t
				continue
			}
			if n := len(s); n >= 5 && strings.EqualFold(s[n-5:], "(fwd)") {
				s = s[:n-5]
				replyFwd = true
				continue
			}
			break
		}
		// (3)-(5): subj-leader and subj-blob, until neither matches
		for {
			t, rf := stripLeader(s)
			if rf {
				replyFwd = true
			}
			if t == s {
				// (4) a leading blob goes if something is left after it
				if rest, ok := skipBlob(s); ok && strings.TrimSpace(rest) != "" {
					t = rest
				}
			}
			if t == s {
				break
			}
			s = t
		}
		// (6) "[fwd:" ... "]" around the whole: remove and go again
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			replyFwd = true
			continue
		}
		return s, replyFwd
	}
}

// stripLeader removes one subj-leader: a space, or
// *subj-blob subj-refwd where subj-refwd = ("re" / "fw" ["d"]) *WSP
// [subj-blob] ":". It reports whether a subj-refwd was removed.
func stripLeader(s string) (string, bool) {
	if strings.HasPrefix(s, " ") {
		return s[1:], false
	}
	rest := s
	for {
		// any number of blobs before the re/fwd
		r, ok := skipBlob(rest)
		if !ok {
			break
		}
		rest = r
	}
	var n int
	switch {
	case len(rest) >= 3 && strings.EqualFold(rest[:3], "fwd"):
		n = 3
	case len(rest) >= 2 && (strings.EqualFold(rest[:2], "re") || strings.EqualFold(rest[:2], "fw")):
		n = 2
	default:
		return s, false
	}
	rest = strings.TrimLeft(rest[n:], " ")
	if r, ok := skipBlob(rest); ok {
		rest = r
	}
	if !strings.HasPrefix(rest, ":") {
		return s, false
	}
	return rest[1:], true
}

// skipBlob removes one subj-blob ("[" *BLOBCHAR "]" *WSP) from the start
// of s.
func skipBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

// sentDate is the sent date of RFC 5256 2.2: the Date header, or the
// internal date when it is missing or cannot be parsed.
func (m *SortMessage) sentDate() time.Time {
	if !m.Fields.Sent.IsZero() {
		return m.Fields.Sent
	}
	return m.InternalDate.UTC()
}

// compareBy compares two messages by one criterion, ascending.
func compareBy(a, b *SortMessage, by SortBy) int {
	switch by {
	case SortArrival:
		return a.InternalDate.Compare(b.InternalDate)
	case SortCc:
		return strings.Compare(a.Fields.Cc, b.Fields.Cc)
	case SortDate:
		return a.sentDate().Compare(b.sentDate())
	case SortFrom:
		return strings.Compare(a.Fields.From, b.Fields.From)
	case SortSize:
		return cmp.Compare(a.Size, b.Size)
	case SortSubject:
		return strings.Compare(a.Fields.BaseSubject, b.Fields.BaseSubject)
	case SortTo:
		return strings.Compare(a.Fields.To, b.Fields.To)
	case SortDisplayFrom:
		return strings.Compare(a.Fields.DisplayFrom, b.Fields.DisplayFrom)
	case SortDisplayTo:
		return strings.Compare(a.Fields.DisplayTo, b.Fields.DisplayTo)
	}
	return 0
}

// CompareSort orders two messages by the keys, then by sequence number
// (RFC 5256 3: equal messages keep mailbox order, whatever REVERSE says).
func CompareSort(keys []SortKey, a, b *SortMessage) int {
	for _, k := range keys {
		c := compareBy(a, b, k.By)
		if k.Reverse {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.Seq, b.Seq)
}
