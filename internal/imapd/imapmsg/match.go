package imapmsg

import (
	"bytes"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// MessageView is what Match needs to know about one message. Header and
// Content are called only when a key needs them, and at most once per
// Match call; an implementation may cache them across calls.
type MessageView interface {
	SeqNum() uint32
	UID() uint32
	Flags() []string
	Size() int64
	InternalDate() time.Time
	ModSeq() uint64
	// Header returns the message's header block (up to and including
	// the empty line).
	Header() ([]byte, error)
	// Content returns the whole message and its structure.
	Content() (io.ReaderAt, *Structure, error)
}

// SaveDateSource is implemented by a MessageView that knows when the
// message was saved into its mailbox (RFC 8514); ok is false when it was
// saved before the date was kept.
type SaveDateSource interface {
	SaveDate() (t time.Time, ok bool)
}

// ObjectIDSource is implemented by a MessageView that has an RFC 8474
// EMAILID.
type ObjectIDSource interface {
	EmailID() string
}

// ReadsSaveDate reports whether the tree has a SAVEDBEFORE, SAVEDON or
// SAVEDSINCE key, so that a server loads the save dates once.
func (k *SearchKey) ReadsSaveDate() bool {
	switch k.Op {
	case SearchSavedBefore, SearchSavedOn, SearchSavedSince:
		return true
	}
	for i := range k.Sub {
		if k.Sub[i].ReadsSaveDate() {
			return true
		}
	}
	return false
}

// Match reports whether the message matches key (RFC 9051 6.4.4). Sequence
// and UID sets must have been resolved (SearchKey.Resolve). Text keys
// match case-insensitive substrings of decoded header values (RFC 2047)
// and decoded text parts (transfer encoding and charset undone). Keys
// that need no message bytes are tried first, so a message excluded by
// its flags or size is never read.
func Match(key *SearchKey, m MessageView) (bool, error) {
	ev := evaluator{m: m}
	return ev.match(key)
}

// evaluator holds what one Match call has read and decoded so far.
type evaluator struct {
	m MessageView

	fields     []decodedField // decoded header fields, nil until needed
	haveFields bool
	body       []string // folded text of the body's text parts
	haveBody   bool
}

type decodedField struct {
	name  []byte // as written; a window on the header block
	val   []byte // as written, folded; a window on the header block
	raw   string // unfolded, as written (after decode)
	value string // decoded and folded (after decode)
	done  bool
}

// decode unfolds and decodes the value on first use: a search for one
// field need not decode all the others (RFC 2047 decoding is most of the
// cost of a header search).
func (f *decodedField) decode() {
	if !f.done {
		f.raw = unfold(f.val)
		f.value = fold(decodeHeaderValue(f.raw))
		f.done = true
	}
}

// cost orders the keys of an AND list: 0 needs only metadata, 1 the
// header, 2 the body.
func cost(k *SearchKey) int {
	switch k.Op {
	case SearchHeader, SearchSentBefore, SearchSentOn, SearchSentSince:
		return 1
	case SearchBody, SearchText:
		return 2
	case SearchAnd, SearchOr, SearchNot:
		c := 0
		for i := range k.Sub {
			c = max(c, cost(&k.Sub[i]))
		}
		return c
	}
	return 0
}

func (ev *evaluator) match(k *SearchKey) (bool, error) {
	m := ev.m
	switch k.Op {
	case SearchAll:
		return true, nil
	case SearchRecent:
		return hasFlag(m.Flags(), `\Recent`), nil
	case SearchNew:
		f := m.Flags()
		return hasFlag(f, `\Recent`) && !hasFlag(f, `\Seen`), nil
	case SearchOld:
		return !hasFlag(m.Flags(), `\Recent`), nil
	case SearchAnd:
		order := make([]int, len(k.Sub))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cost(&k.Sub[a]) - cost(&k.Sub[b]) })
		for _, i := range order {
			ok, err := ev.match(&k.Sub[i])
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case SearchOr:
		a, b := &k.Sub[0], &k.Sub[1]
		if cost(b) < cost(a) {
			a, b = b, a
		}
		ok, err := ev.match(a)
		if err != nil || ok {
			return ok, err
		}
		return ev.match(b)
	case SearchNot:
		ok, err := ev.match(&k.Sub[0])
		return !ok && err == nil, err
	case SearchSeq:
		return k.Set.Contains(m.SeqNum()), nil
	case SearchUID:
		return k.Set.Contains(m.UID()), nil
	case SearchFlag:
		return hasFlag(m.Flags(), k.Value), nil
	case SearchUnflag:
		return !hasFlag(m.Flags(), k.Value), nil
	case SearchLarger:
		return m.Size() > 0 && uint64(m.Size()) > k.Number, nil
	case SearchSmaller:
		return m.Size() >= 0 && uint64(m.Size()) < k.Number, nil
	case SearchModSeq:
		return m.ModSeq() >= k.Number, nil
	case SearchBefore, SearchOn, SearchSince:
		return compareDay(day(m.InternalDate()), k.Date, k.Op), nil
	case SearchSavedBefore, SearchSavedOn, SearchSavedSince:
		// RFC 8514 4.2; a message without a save date is taken at its
		// internal date.
		d := m.InternalDate()
		if sd, ok := m.(SaveDateSource); ok {
			if t, ok := sd.SaveDate(); ok {
				d = t
			}
		}
		return compareDay(day(d), k.Date, k.Op), nil
	case SearchSaveDateSupported:
		return true, nil
	case SearchEmailID:
		// RFC 8474 6: object ids are case-sensitive.
		src, ok := m.(ObjectIDSource)
		return ok && src.EmailID() == k.Value, nil
	case SearchThreadID:
		return false, nil
	case SearchOlder:
		return !m.InternalDate().After(k.Date), nil
	case SearchYounger:
		return m.InternalDate().After(k.Date), nil
	case SearchSentBefore, SearchSentOn, SearchSentSince:
		sent, err := ev.sentDay()
		if err != nil {
			return false, err
		}
		return compareDay(sent, k.Date, k.Op), nil
	case SearchHeader:
		if f := storedKey(k); f >= 0 {
			if fs, ok := m.(FieldSource); ok {
				if v, ok := fs.StoredField(f); ok {
					return bytes.Contains(v, []byte(fold(k.Value))), nil
				}
			}
		}
		if k.Address {
			return ev.matchAddress(k.Field, k.Value)
		}
		return ev.matchHeader(k.Field, k.Value)
	case SearchBody:
		if bi, ok := m.(BodyIndex); ok && !bi.MayContain(k.Value) {
			return false, nil
		}
		return ev.matchBody(k.Value)
	case SearchText:
		if bi, ok := m.(BodyIndex); ok && !bi.MayContain(k.Value) {
			return false, nil
		}
		if ok, err := ev.matchHeader("", k.Value); err != nil || ok {
			return ok, err
		}
		return ev.matchBody(k.Value)
	}
	return false, fmt.Errorf("%w: unknown operator %d", ErrSearch, k.Op)
}

// hasFlag compares flags case-insensitively (RFC 9051 2.3.2: flag names
// are not case-sensitive).
func hasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// day is the calendar day of t in its own zone, at midnight UTC:
// RFC 9051 6.4.4 compares dates "disregarding time and timezone".
func day(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

func compareDay(d, key time.Time, op SearchOp) bool {
	switch op {
	case SearchBefore, SearchSentBefore, SearchSavedBefore:
		return d.Before(key)
	case SearchOn, SearchSentOn, SearchSavedOn:
		return d.Equal(key)
	default: // SINCE: on or after
		return !d.Before(key)
	}
}

// sentDay is the day of the Date header, or of the internal date when the
// header is missing or cannot be parsed.
func (ev *evaluator) sentDay() (time.Time, error) {
	if err := ev.loadHeader(); err != nil {
		return time.Time{}, err
	}
	for i := range ev.fields {
		f := &ev.fields[i]
		if equalFold(f.name, "Date") {
			f.decode()
			if t, err := mail.ParseDate(f.raw); err == nil {
				return day(t), nil
			}
			break
		}
	}
	return day(ev.m.InternalDate()), nil
}

// matchHeader reports whether a field called name (any field when name
// is "") contains value. HEADER with an empty value matches every
// message that has the field (RFC 9051 6.4.4).
func (ev *evaluator) matchHeader(name, value string) (bool, error) {
	if err := ev.loadHeader(); err != nil {
		return false, err
	}
	needle := fold(value)
	for i := range ev.fields {
		f := &ev.fields[i]
		if name != "" && !equalFold(f.name, name) {
			continue
		}
		f.decode()
		hay := f.value
		if name == "" {
			hay = fold(string(f.name)) + ": " + f.value
		}
		if strings.Contains(hay, needle) {
			return true, nil
		}
	}
	return false, nil
}

// matchAddress is matchHeader for FROM, TO, CC and BCC: the value is
// looked for in the field's envelope addresses (AddressText).
func (ev *evaluator) matchAddress(name, value string) (bool, error) {
	if err := ev.loadHeader(); err != nil {
		return false, err
	}
	needle := fold(value)
	for i := range ev.fields {
		f := &ev.fields[i]
		if !equalFold(f.name, name) {
			continue
		}
		f.decode()
		if strings.Contains(fold(AddressText(f.raw)), needle) {
			return true, nil
		}
	}
	return false, nil
}

func (ev *evaluator) matchBody(value string) (bool, error) {
	if err := ev.loadBody(); err != nil {
		return false, err
	}
	needle := fold(value)
	if needle == "" {
		return true, nil
	}
	for _, text := range ev.body {
		if strings.Contains(text, needle) {
			return true, nil
		}
	}
	return false, nil
}

func (ev *evaluator) loadHeader() error {
	if ev.haveFields {
		return nil
	}
	header, err := ev.m.Header()
	if err != nil {
		return fmt.Errorf("imapmsg: search: %w", err)
	}
	ev.fields = decodeFields(header)
	ev.haveFields = true
	return nil
}

func (ev *evaluator) loadBody() error {
	if ev.haveBody {
		return nil
	}
	if bi, ok := ev.m.(BodyIndex); ok {
		text, ok, err := bi.IndexedBodyText()
		if err != nil {
			return fmt.Errorf("imapmsg: search: %w", err)
		}
		if ok {
			ev.body, ev.haveBody = text, true
			return nil
		}
	}
	r, st, err := ev.m.Content()
	if err != nil {
		return fmt.Errorf("imapmsg: search: %w", err)
	}
	ev.body, err = bodyText(r, st.Root, false)
	if err != nil {
		return fmt.Errorf("imapmsg: search: %w", err)
	}
	ev.haveBody = true
	return nil
}

// decodeFields returns every named field of a header block; each value is
// unfolded, RFC 2047-decoded and case-folded by its decode, on first use.
func decodeFields(header []byte) []decodedField {
	out := make([]decodedField, 0, 16)
	eachField(header, func(name, value, _ []byte) {
		if name != nil {
			out = append(out, decodedField{name: name, val: value})
		}
	})
	return out
}

// equalFold is strings.EqualFold of a field name as written, without
// converting it to a string.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// fold maps s to the form text keys compare: lower case.
func fold(s string) string { return strings.ToLower(s) }
