package imapmsg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SearchOp is the kind of a search key (RFC 9051 6.4.4).
type SearchOp int

const (
	SearchAll        SearchOp = iota // ALL
	SearchAnd                        // a list of keys (the top level, or "(" ... ")"): all of Sub
	SearchOr                         // OR Sub[0] Sub[1]
	SearchNot                        // NOT Sub[0]
	SearchSeq                        // sequence-set: Set
	SearchUID                        // UID Set
	SearchFlag                       // ANSWERED DELETED DRAFT FLAGGED SEEN, KEYWORD Value: Value is set
	SearchUnflag                     // UNANSWERED ... UNSEEN, UNKEYWORD Value: Value is not set
	SearchRecent                     // RECENT: the view's Flags hold \Recent (IMAP4rev1 sessions)
	SearchNew                        // NEW = RECENT UNSEEN
	SearchOld                        // OLD = NOT RECENT
	SearchBefore                     // BEFORE Date: internal date earlier than the day
	SearchOn                         // ON Date
	SearchSince                      // SINCE Date: on or after the day
	SearchSentBefore                 // SENTBEFORE Date: by the Date header
	SearchSentOn                     // SENTON Date
	SearchSentSince                  // SENTSINCE Date
	SearchLarger                     // LARGER Number: RFC822.SIZE greater than Number
	SearchSmaller                    // SMALLER Number
	SearchHeader                     // HEADER Field Value, and BCC CC FROM SUBJECT TO (Field set by the key)
	SearchBody                       // BODY Value
	SearchText                       // TEXT Value: header or body
	SearchModSeq                     // MODSEQ Number (RFC 7162 3.1.5): modseq at least Number
)

// The RFC 8514 4.2 keys, by the save date.
const (
	SearchSavedBefore       SearchOp = SearchModSeq + 1 + iota // SAVEDBEFORE Date
	SearchSavedOn                                              // SAVEDON Date
	SearchSavedSince                                           // SAVEDSINCE Date
	SearchSaveDateSupported                                    // SAVEDATESUPPORTED: every message (every mailbox keeps save dates)
	SearchOlder                                                // OLDER Number (RFC 5032): internal date at or before Date, Number seconds before the search
	SearchYounger                                              // YOUNGER Number: internal date after Date
	SearchEmailID                                              // EMAILID Value (RFC 8474 6): the message's object id is Value
	SearchThreadID                                             // THREADID Value: never matches (no thread ids)
)

// SearchKey is one node of a parsed SEARCH criteria tree.
type SearchKey struct {
	Op    SearchOp
	Field string // SearchHeader: the header field name
	// Address is set for BCC, CC, FROM and TO (not HEADER): they match
	// the envelope addresses (RFC 3501 6.4.4; AddressText), not the
	// header text.
	Address bool
	Value   string    // the string of text keys, the flag of flag keys
	Date    time.Time // date keys: the day, at midnight UTC
	Number  uint64    // LARGER, SMALLER, MODSEQ
	Set     NumSet    // SearchSeq, SearchUID
	// Saved marks a SearchUID that stands for "$", the saved result
	// (RFC 5182): FillSaved puts its UIDs in Set.
	Saved bool
	Sub   []SearchKey
}

// ErrSearch is wrapped by every error of ParseSearch (BAD to the client).
var ErrSearch = errors.New("invalid search criteria")

// TokenKind is the kind of one SEARCH argument token.
type TokenKind int

const (
	TokAtom   TokenKind = iota // an atom (keyword, number, sequence set, unquoted astring)
	TokString                  // a quoted string or a literal
	TokOpen                    // "("
	TokClose                   // ")"
)

// Token is one argument of a SEARCH command as the wire reader sees it.
type Token struct {
	Kind  TokenKind
	Value string
}

// LexSearch splits the arguments of a SEARCH command line (without
// literals, which the wire reader resolves) into tokens.
func LexSearch(s string) ([]Token, error) {
	var toks []Token
	p := mimeLexer{s: s}
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; c {
		case ' ':
			p.pos++
		case '(':
			toks = append(toks, Token{Kind: TokOpen})
			p.pos++
		case ')':
			toks = append(toks, Token{Kind: TokClose})
			p.pos++
		case '"':
			start := p.pos
			v, ok := lexQuoted(&p)
			if !ok {
				return nil, fmt.Errorf("%w: unterminated string at %d", ErrSearch, start)
			}
			toks = append(toks, Token{Kind: TokString, Value: v})
		default:
			start := p.pos
			for p.pos < len(p.s) && p.s[p.pos] != ' ' && p.s[p.pos] != '(' && p.s[p.pos] != ')' && p.s[p.pos] != '"' {
				p.pos++
			}
			toks = append(toks, Token{Kind: TokAtom, Value: p.s[start:p.pos]})
		}
	}
	return toks, nil
}

// lexQuoted reads an IMAP quoted string (RFC 9051 4.3: only \" and \\
// may be escaped).
func lexQuoted(p *mimeLexer) (string, bool) {
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if p.pos >= len(p.s) || (p.s[p.pos] != '"' && p.s[p.pos] != '\\') {
				return "", false
			}
			c = p.s[p.pos]
			p.pos++
		case '\r', '\n':
			return "", false
		}
		b.WriteByte(c)
	}
	return "", false
}

// maxSearchDepth bounds nesting of NOT, OR and parentheses.
const maxSearchDepth = 64

// ParseSearch parses search criteria (RFC 9051 6.4.4 and 9: search-key
// *(SP search-key)) into one SearchAnd key. Keywords are case-insensitive.
func ParseSearch(toks []Token) (*SearchKey, error) {
	p := searchParser{toks: toks, now: time.Now()}
	root := &SearchKey{Op: SearchAnd}
	for p.pos < len(p.toks) {
		k, err := p.key(0)
		if err != nil {
			return nil, err
		}
		root.Sub = append(root.Sub, k)
	}
	if len(root.Sub) == 0 {
		return nil, fmt.Errorf("%w: no search key", ErrSearch)
	}
	return root, nil
}

// validObjectID: RFC 8474 7, objectid = 1*255(ALPHA / DIGIT / "_" / "-").
func validObjectID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

type searchParser struct {
	toks []Token
	pos  int
	now  time.Time // WITHIN's intervals count back from the search's start
}

func (p *searchParser) next() (Token, error) {
	if p.pos >= len(p.toks) {
		return Token{}, fmt.Errorf("%w: missing argument", ErrSearch)
	}
	t := p.toks[p.pos]
	p.pos++
	return t, nil
}

// astring returns the next argument as a string (atom or string).
func (p *searchParser) astring() (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	if t.Kind != TokAtom && t.Kind != TokString {
		return "", fmt.Errorf("%w: expected a string", ErrSearch)
	}
	return t.Value, nil
}

func (p *searchParser) number() (uint64, error) {
	t, err := p.next()
	if err != nil {
		return 0, err
	}
	n, err := parseNumber(t.Value)
	if t.Kind != TokAtom || err != nil {
		return 0, fmt.Errorf("%w: expected a number, got %q", ErrSearch, t.Value)
	}
	return uint64(n), nil
}

func (p *searchParser) date() (time.Time, error) {
	s, err := p.astring()
	if err != nil {
		return time.Time{}, err
	}
	d, err := ParseDate(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrSearch, err)
	}
	return d, nil
}

// ParseDate parses an IMAP date ("1-Feb-1994", RFC 9051 9 date-text)
// into midnight UTC of that day.
func ParseDate(s string) (time.Time, error) {
	d, m, ok1 := strings.Cut(s, "-")
	m, y, ok2 := strings.Cut(m, "-")
	if !ok1 || !ok2 || len(d) < 1 || len(d) > 2 || len(m) != 3 || len(y) != 4 {
		return time.Time{}, fmt.Errorf("invalid date %q", s)
	}
	day, err1 := strconv.Atoi(d)
	year, err2 := strconv.Atoi(y)
	month := 0
	for i, name := range []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"} {
		if strings.EqualFold(m, name) {
			month = i + 1
		}
	}
	if err1 != nil || err2 != nil || month == 0 || day < 1 || day > 31 || d[0] == '-' || y[0] == '-' {
		return time.Time{}, fmt.Errorf("invalid date %q", s)
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("invalid date %q", s)
	}
	return t, nil
}

// flagKeyword maps the system flag keys (RFC 9051 6.4.4) to their flag.
func flagKeyword(word string) (string, SearchOp, bool) {
	op := SearchFlag
	if w, ok := strings.CutPrefix(word, "UN"); ok {
		op, word = SearchUnflag, w
	}
	switch word {
	case "ANSWERED":
		return `\Answered`, op, true
	case "DELETED":
		return `\Deleted`, op, true
	case "DRAFT":
		return `\Draft`, op, true
	case "FLAGGED":
		return `\Flagged`, op, true
	case "SEEN":
		return `\Seen`, op, true
	}
	return "", 0, false
}

// key parses one search-key.
func (p *searchParser) key(depth int) (SearchKey, error) {
	if depth > maxSearchDepth {
		return SearchKey{}, fmt.Errorf("%w: nested too deeply", ErrSearch)
	}
	t, err := p.next()
	if err != nil {
		return SearchKey{}, err
	}
	switch t.Kind {
	case TokOpen:
		k := SearchKey{Op: SearchAnd}
		for {
			if p.pos < len(p.toks) && p.toks[p.pos].Kind == TokClose {
				p.pos++
				break
			}
			if p.pos >= len(p.toks) {
				return SearchKey{}, fmt.Errorf("%w: missing )", ErrSearch)
			}
			sub, err := p.key(depth + 1)
			if err != nil {
				return SearchKey{}, err
			}
			k.Sub = append(k.Sub, sub)
		}
		if len(k.Sub) == 0 {
			return SearchKey{}, fmt.Errorf("%w: empty ()", ErrSearch)
		}
		return k, nil
	case TokClose:
		return SearchKey{}, fmt.Errorf("%w: unexpected )", ErrSearch)
	case TokString:
		return SearchKey{}, fmt.Errorf("%w: unexpected string %q", ErrSearch, t.Value)
	}
	word := strings.ToUpper(t.Value)
	if flag, op, ok := flagKeyword(word); ok {
		return SearchKey{Op: op, Value: flag}, nil
	}
	switch word {
	case "ALL":
		return SearchKey{Op: SearchAll}, nil
	case "RECENT":
		return SearchKey{Op: SearchRecent}, nil
	case "NEW":
		return SearchKey{Op: SearchNew}, nil
	case "OLD":
		return SearchKey{Op: SearchOld}, nil
	case "KEYWORD", "UNKEYWORD":
		flag, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		op := SearchFlag
		if word == "UNKEYWORD" {
			op = SearchUnflag
		}
		return SearchKey{Op: op, Value: flag}, nil
	case "SAVEDATESUPPORTED":
		return SearchKey{Op: SearchSaveDateSupported}, nil
	case "EMAILID", "THREADID":
		v, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		if !validObjectID(v) {
			return SearchKey{}, fmt.Errorf("%w: %s needs an objectid", ErrSearch, word)
		}
		op := SearchEmailID
		if word == "THREADID" {
			op = SearchThreadID
		}
		return SearchKey{Op: op, Value: v}, nil
	case "OLDER", "YOUNGER":
		// RFC 5032: interval = nz-number of seconds.
		n, err := p.number()
		if err != nil {
			return SearchKey{}, err
		}
		if n == 0 || n > 0xFFFFFFFF {
			return SearchKey{}, fmt.Errorf("%w: %s needs an nz-number of seconds", ErrSearch, word)
		}
		op := SearchOlder
		if word == "YOUNGER" {
			op = SearchYounger
		}
		return SearchKey{Op: op, Number: n, Date: p.now.Add(-time.Duration(n) * time.Second)}, nil
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		d, err := p.date()
		if err != nil {
			return SearchKey{}, err
		}
		op := map[string]SearchOp{"BEFORE": SearchBefore, "ON": SearchOn, "SINCE": SearchSince,
			"SENTBEFORE": SearchSentBefore, "SENTON": SearchSentOn, "SENTSINCE": SearchSentSince,
			"SAVEDBEFORE": SearchSavedBefore, "SAVEDON": SearchSavedOn, "SAVEDSINCE": SearchSavedSince}[word]
		return SearchKey{Op: op, Date: d}, nil
	case "LARGER", "SMALLER":
		n, err := p.number()
		if err != nil {
			return SearchKey{}, err
		}
		op := SearchLarger
		if word == "SMALLER" {
			op = SearchSmaller
		}
		return SearchKey{Op: op, Number: n}, nil
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		v, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		field := map[string]string{"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}[word]
		return SearchKey{Op: SearchHeader, Field: field, Value: v, Address: word != "SUBJECT"}, nil
	case "HEADER":
		field, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		v, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		return SearchKey{Op: SearchHeader, Field: field, Value: v}, nil
	case "BODY", "TEXT":
		v, err := p.astring()
		if err != nil {
			return SearchKey{}, err
		}
		op := SearchBody
		if word == "TEXT" {
			op = SearchText
		}
		return SearchKey{Op: op, Value: v}, nil
	case "NOT":
		sub, err := p.key(depth + 1)
		if err != nil {
			return SearchKey{}, err
		}
		return SearchKey{Op: SearchNot, Sub: []SearchKey{sub}}, nil
	case "OR":
		a, err := p.key(depth + 1)
		if err != nil {
			return SearchKey{}, err
		}
		b, err := p.key(depth + 1)
		if err != nil {
			return SearchKey{}, err
		}
		return SearchKey{Op: SearchOr, Sub: []SearchKey{a, b}}, nil
	case "UID":
		t, err := p.next()
		if err != nil {
			return SearchKey{}, err
		}
		if t.Kind == TokAtom && t.Value == "$" {
			return SearchKey{Op: SearchUID, Saved: true}, nil
		}
		set, err := ParseNumSet(t.Value)
		if err != nil || t.Kind != TokAtom {
			return SearchKey{}, fmt.Errorf("%w: UID %q", ErrSearch, t.Value)
		}
		return SearchKey{Op: SearchUID, Set: set}, nil
	case "MODSEQ":
		// RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer;
		// Petrel keeps one modseq per message, so the entry is ignored.
		if p.pos < len(p.toks) && p.toks[p.pos].Kind == TokString {
			p.pos++
			typ, err := p.astring()
			if err != nil {
				return SearchKey{}, err
			}
			switch strings.ToLower(typ) {
			case "priv", "shared", "all":
			default:
				return SearchKey{}, fmt.Errorf("%w: MODSEQ entry type %q", ErrSearch, typ)
			}
		}
		n, err := p.number()
		if err != nil {
			return SearchKey{}, err
		}
		return SearchKey{Op: SearchModSeq, Number: n}, nil
	}
	if t.Value == "$" {
		// RFC 5182: the saved result, as UIDs whatever the command.
		return SearchKey{Op: SearchUID, Saved: true}, nil
	}
	if set, err := ParseNumSet(t.Value); err == nil {
		return SearchKey{Op: SearchSeq, Set: set}, nil
	}
	return SearchKey{}, fmt.Errorf("%w: unknown key %q", ErrSearch, t.Value)
}

// Resolve replaces "*" in the sequence and UID sets of the tree with the
// mailbox's largest sequence number and UID (call it before Match).
func (k *SearchKey) Resolve(maxSeq, maxUID uint32) {
	switch k.Op {
	case SearchSeq:
		k.Set = k.Set.Resolve(maxSeq)
	case SearchUID:
		k.Set = k.Set.Resolve(maxUID)
	}
	for i := range k.Sub {
		k.Sub[i].Resolve(maxSeq, maxUID)
	}
}

// FillSaved gives every "$" key of the tree the saved result's UIDs.
func (k *SearchKey) FillSaved(uids NumSet) {
	if k.Saved {
		k.Set = uids
	}
	for i := range k.Sub {
		k.Sub[i].FillSaved(uids)
	}
}

// UsesSaved reports whether the tree has a "$" key.
func (k *SearchKey) UsesSaved() bool {
	if k.Saved {
		return true
	}
	for i := range k.Sub {
		if k.Sub[i].UsesSaved() {
			return true
		}
	}
	return false
}

// ReadsHeader reports whether the tree reads message headers (header
// fields, TEXT, sent dates), so that a server can fetch them in batches.
func (k *SearchKey) ReadsHeader() bool {
	switch k.Op {
	case SearchHeader, SearchText, SearchSentBefore, SearchSentOn, SearchSentSince:
		return true
	}
	for i := range k.Sub {
		if k.Sub[i].ReadsHeader() {
			return true
		}
	}
	return false
}

// HasModSeq reports whether the tree uses MODSEQ, in which case the
// SEARCH response carries the highest modseq (RFC 7162 3.1.5).
func (k *SearchKey) HasModSeq() bool {
	if k.Op == SearchModSeq {
		return true
	}
	for i := range k.Sub {
		if k.Sub[i].HasModSeq() {
			return true
		}
	}
	return false
}
