package imapmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Specifier is the text part of a section (RFC 9051 6.4.5).
type Specifier string

const (
	SpecNone            Specifier = ""
	SpecHeader          Specifier = "HEADER"
	SpecHeaderFields    Specifier = "HEADER.FIELDS"
	SpecHeaderFieldsNot Specifier = "HEADER.FIELDS.NOT"
	SpecText            Specifier = "TEXT"
	SpecMIME            Specifier = "MIME"
)

// Section is a BODY[<section>] spec: a part path ("1.2.3", none for the
// whole message) and a specifier. Fields are the HEADER.FIELDS names as the
// client wrote them.
type Section struct {
	Part      []int
	Specifier Specifier
	Fields    []string
}

// Partial is the <origin.count> of a BODY[] fetch.
type Partial struct {
	Offset int64
	Count  int64
}

// ErrSection is wrapped by every error of ParseSection and ParsePartial.
var ErrSection = errors.New("invalid section")

// maxPartNumber bounds one part number: no message has more parts than
// Parse accepts anyway.
const maxPartNumber = 1 << 20

// ParseSection parses the text between the brackets of BODY[...]:
// section-spec in RFC 9051 9 (Formal Syntax). Keywords are case-insensitive;
// header field names are atoms or quoted strings.
func ParseSection(spec string) (Section, error) {
	var sec Section
	s := spec
	for s != "" && s[0] >= '0' && s[0] <= '9' {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 1 || n > maxPartNumber || s[0] == '0' {
			return Section{}, fmt.Errorf("%w: part number %q", ErrSection, s[:i])
		}
		sec.Part = append(sec.Part, n)
		s = s[i:]
		if s == "" {
			return sec, nil
		}
		if s[0] != '.' || len(s) == 1 {
			return Section{}, fmt.Errorf("%w: %q", ErrSection, spec)
		}
		s = s[1:]
	}
	if s == "" {
		return sec, nil
	}
	word, rest, _ := strings.Cut(s, " ")
	switch Specifier(strings.ToUpper(word)) {
	case SpecHeader:
		sec.Specifier = SpecHeader
	case SpecText:
		sec.Specifier = SpecText
	case SpecMIME:
		if len(sec.Part) == 0 {
			return Section{}, fmt.Errorf("%w: MIME needs a part number", ErrSection)
		}
		sec.Specifier = SpecMIME
	case SpecHeaderFields, SpecHeaderFieldsNot:
		sec.Specifier = Specifier(strings.ToUpper(word))
		fields, err := parseHeaderList(rest)
		if err != nil {
			return Section{}, err
		}
		sec.Fields = fields
		return sec, nil
	default:
		return Section{}, fmt.Errorf("%w: %q", ErrSection, spec)
	}
	if rest != "" || strings.Contains(s, " ") {
		return Section{}, fmt.Errorf("%w: junk after %s", ErrSection, sec.Specifier)
	}
	return sec, nil
}

// parseHeaderList parses header-list: "(" header-fld-name *(SP header-fld-name) ")".
func parseHeaderList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return nil, fmt.Errorf("%w: header list %q", ErrSection, s)
	}
	p := mimeLexer{s: s[1 : len(s)-1]}
	var fields []string
	for {
		for p.pos < len(p.s) && p.s[p.pos] == ' ' {
			p.pos++
		}
		if p.pos >= len(p.s) {
			break
		}
		var f string
		if p.s[p.pos] == '"' {
			f = p.quoted()
		} else {
			start := p.pos
			for p.pos < len(p.s) && p.s[p.pos] != ' ' {
				p.pos++
			}
			f = p.s[start:p.pos]
		}
		if !validFieldName(f) {
			return nil, fmt.Errorf("%w: header field name %q", ErrSection, f)
		}
		fields = append(fields, f)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty header list", ErrSection)
	}
	return fields, nil
}

// validFieldName accepts RFC 5322 field names (printable ASCII but colon).
func validFieldName(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// String returns the section as the FETCH response echoes it.
func (s Section) String() string {
	var b strings.Builder
	for i, n := range s.Part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if s.Specifier != SpecNone {
		if len(s.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(s.Specifier))
	}
	if len(s.Fields) > 0 {
		b.WriteString(" (")
		for i, f := range s.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			if isToken(f) {
				b.WriteString(f)
			} else {
				b.Write(AppendString(nil, f))
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// ParsePartial parses the text between < and > of a partial fetch:
// origin "." count, both numbers, count non-zero (RFC 9051 9).
func ParsePartial(s string) (Partial, error) {
	o, c, ok := strings.Cut(s, ".")
	if !ok {
		return Partial{}, fmt.Errorf("%w: partial %q", ErrSection, s)
	}
	off, err1 := parseNumber(o)
	count, err2 := parseNumber(c)
	if err1 != nil || err2 != nil || count == 0 {
		return Partial{}, fmt.Errorf("%w: partial %q", ErrSection, s)
	}
	return Partial{Offset: off, Count: count}, nil
}

// parseNumber parses an RFC 9051 number64 (digits only).
func parseNumber(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, ErrSection
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrSection
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// Apply narrows a section to the partial range. An origin past the end
// gives an empty section (RFC 9051 6.4.5: an empty string).
func (p Partial) Apply(sr *io.SectionReader) *io.SectionReader {
	size := sr.Size()
	start := min(p.Offset, size)
	n := min(p.Count, size-start)
	return io.NewSectionReader(sr, start, n)
}

// Find returns the part a part path names, or nil when there is none
// (RFC 9051 6.4.5). Part 1 of a non-multipart entity is the entity itself;
// a number after a message/rfc822 part goes into its encapsulated message.
func (st *Structure) Find(path []int) *Part {
	p := st.Root
	atMessage := true // p is a message entity, not a part of a multipart
	for i, n := range path {
		more := i < len(path)-1
		switch {
		case p.IsMultipart():
			if n < 1 || n > len(p.Children) {
				return nil
			}
			p = p.Children[n-1]
			atMessage = false
		case n != 1:
			return nil
		case atMessage && more && p.Message == nil:
			// Part 1 of a single-part message is its body, which has
			// no parts of its own (Dovecot: BODY[1.1] is empty).
			return nil
		}
		atMessage = false
		if more && p.Message != nil {
			p = p.Message
			atMessage = true
		}
	}
	return p
}

// Extract returns section sec of the message in r, which st describes.
// A section that names no part, or a specifier that does not apply to the
// part (HEADER of a text part), is empty, as in Dovecot. Only
// HEADER.FIELDS reads the message; every other section is a window on r.
func (st *Structure) Extract(r io.ReaderAt, sec Section) (*io.SectionReader, error) {
	if st.Shallow && len(sec.Part) > 0 {
		return nil, fmt.Errorf("imapmsg: section %s needs the full structure (Parse, not ParseHeader)", sec)
	}
	p := st.Find(sec.Part)
	if p == nil {
		return window(r, 0, 0), nil
	}
	if len(sec.Part) == 0 && sec.Specifier == SpecNone {
		return io.NewSectionReader(r, 0, st.Size), nil
	}
	msg := p // the message whose header and text HEADER/TEXT name
	if len(sec.Part) > 0 {
		msg = p.Message
	}
	switch sec.Specifier {
	case SpecNone:
		return window(r, p.BodyOffset, p.EndOffset), nil
	case SpecMIME:
		return window(r, p.HeaderOffset, p.BodyOffset), nil
	}
	if msg == nil {
		return window(r, 0, 0), nil
	}
	switch sec.Specifier {
	case SpecHeader:
		return window(r, msg.HeaderOffset, msg.BodyOffset), nil
	case SpecText:
		return window(r, msg.BodyOffset, msg.EndOffset), nil
	case SpecHeaderFields, SpecHeaderFieldsNot:
		// One allocation for the header and the fields kept of it, which
		// are at most all of it and the blank line (and a line end the
		// last field may lack): header fields are what mail clients
		// fetch of every message when they sync.
		n := msg.BodyOffset - msg.HeaderOffset
		buf := make([]byte, 2*n+4)
		header := buf[:n]
		if _, err := r.ReadAt(header, msg.HeaderOffset); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("imapmsg: reading header: %w", err)
		}
		out := filterHeader(buf[n:n], header, sec.Fields, sec.Specifier == SpecHeaderFieldsNot)
		return io.NewSectionReader(bytes.NewReader(out), 0, int64(len(out))), nil
	}
	return nil, fmt.Errorf("%w: specifier %q", ErrSection, sec.Specifier)
}

func window(r io.ReaderAt, start, end int64) *io.SectionReader {
	return io.NewSectionReader(r, start, end-start)
}

// filterHeader keeps the fields named in names (or all others when not),
// as written, in their order, followed by the empty line (RFC 9051 6.4.5:
// the subset of the header, including the blank line), appended to out.
func filterHeader(out, header []byte, names []string, not bool) []byte {
	eachField(header, func(name, _, raw []byte) {
		listed := false
		for _, n := range names {
			if name != nil && strings.EqualFold(string(name), n) {
				listed = true
				break
			}
		}
		if listed != not {
			out = append(out, raw...)
			if !bytes.HasSuffix(raw, []byte("\n")) {
				out = append(out, "\r\n"...)
			}
		}
	})
	return append(out, "\r\n"...)
}
