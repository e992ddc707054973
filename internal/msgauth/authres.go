package msgauth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"
)

// Header returns the one Authentication-Results field (RFC 8601) for r,
// folded, with CRLF at the end: authserv-id, then spf (MAIL FROM and HELO),
// dkim (every signature), dmarc and iprev. Each result is on a line of
// its own, so folding never splits a quoted reason that contains "; ".
//
// The text is what go-msgauth's authres.Format writes for the same
// results (TestHeaderAsAuthres compares them), without its map of
// parameters and string concatenation per result: this runs for every
// message that reaches port 25.
func (r *Result) Header(remote string) string {
	var b strings.Builder
	b.Grow(512)
	b.WriteString("Authentication-Results: ")
	b.WriteString(clean(r.hostname))
	if r.SPF.Result != "" {
		writeResult(&b, "spf", r.SPF.Result, clean(r.SPF.Reason), "smtp.mailfrom", clean(r.SPF.Domain))
	}
	if r.SPFHelo.Result != "" {
		writeResult(&b, "spf", r.SPFHelo.Result, clean(r.SPFHelo.Reason), "smtp.helo", clean(r.SPFHelo.Domain))
	}
	if len(r.DKIM) == 0 {
		writeResult(&b, "dkim", None, "")
	}
	for _, d := range r.DKIM {
		writeResult(&b, "dkim", d.Result, clean(d.Reason), "header.d", clean(d.Domain), "header.i", clean(d.Identifier))
	}
	dmarc := r.DMARC.Result
	if dmarc == "" {
		dmarc = None
	}
	writeResult(&b, "dmarc", dmarc, clean(r.DMARC.Reason), "header.from", clean(r.DMARC.Domain))
	if r.DMARC.Policy != "" {
		// The policy the record asked for (RFC 8601 2.7.7 ptype policy).
		b.WriteString(" policy.dmarc=" + r.DMARC.Policy)
	}
	if r.IPRev.Result != "" {
		writeResult(&b, "iprev", r.IPRev.Result, clean(r.IPRev.Reason), "policy.iprev", clean(remote))
	}
	b.WriteString("\r\n")
	return b.String()
}

// writeResult writes one resinfo on a line of its own: method=result,
// the reason (a value, RFC 8601 2.2), then the properties (ptype.property
// = pvalue) given in name order. Empty ones are left out.
func writeResult(b *strings.Builder, method, result, reason string, props ...string) {
	b.WriteString(";\r\n\t")
	b.WriteString(method)
	b.WriteByte('=')
	b.WriteString(result)
	if reason != "" {
		b.WriteString(" reason=")
		writeValue(b, reason)
	}
	for i := 0; i+1 < len(props); i += 2 {
		if props[i+1] == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(props[i])
		b.WriteByte('=')
		if addressLike(props[i+1]) {
			b.WriteString(props[i+1])
		} else {
			writeValue(b, props[i+1])
		}
	}
}

// writeValue writes a token, or a quoted-string when s holds a space, a
// control character or a MIME tspecial (RFC 2045 5.1).
func writeValue(b *strings.Builder, s string) {
	if !strings.ContainsFunc(s, func(c rune) bool { return c <= ' ' || strings.ContainsRune(`()<>@,;:\"/[]?=`, c) }) {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	b.WriteString(strings.ReplaceAll(s, `"`, `\"`))
	b.WriteByte('"')
}

// addressLike reports whether a pvalue can go unquoted: letters, digits
// and the punctuation of addresses and domains, not ( ) = " (which a
// reader could take for a comment or the next property).
func addressLike(s string) bool {
	for _, c := range s {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && !strings.ContainsRune(`#$%&'*+,./-@[]\^_`+"`"+`{|}~`, c) {
			return false
		}
	}
	return true
}

// clean keeps header text on one line: control characters and non-ASCII
// bytes of invalid UTF-8 become spaces or are dropped, and the length is
// bounded.
func clean(s string) string {
	if len(s) <= 200 && printableASCII(s) {
		return s // the usual case, with nothing to change
	}
	return cleanAny(s)
}

// cleanAny is clean for any text.
func cleanAny(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// AuthservID returns the authserv-id an Authentication-Results field value
// claims (RFC 8601 2.2: leading CFWS, then a token or quoted-string), or ""
// when none can be read.
func AuthservID(value string) string {
	s := skipCFWS(value)
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(c)
			}
		}
		return "" // unterminated
	}
	end := strings.IndexAny(s, " \t\r\n;()\"")
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}

// skipCFWS removes leading white space and (nested) comments.
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(s, "(") {
			return s
		}
		depth := 0
		i := 0
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if i >= len(s) {
			return ""
		}
		s = s[i+1:]
	}
}

// FieldFilter picks header fields: those named in Names (in any case)
// for which Match, when set, also returns true given the name and the
// unfolded value. Only fields of those names are parsed for Match, so a
// filter costs nothing for the others.
type FieldFilter struct {
	Names []string
	Match func(name, value string) bool // nil: every field named in Names
}

// Or picks the fields either filter picks.
func (f FieldFilter) Or(g FieldFilter) FieldFilter {
	if len(f.Names) == 0 {
		return g
	}
	if len(g.Names) == 0 {
		return f
	}
	return FieldFilter{
		Names: append(append([]string(nil), f.Names...), g.Names...),
		Match: func(name, value string) bool { return f.picks(name, value) || g.picks(name, value) },
	}
}

// Drop picks every field with one of names.
func Drop(names ...string) FieldFilter { return FieldFilter{Names: names} }

// picks decides on a field already split.
func (f FieldFilter) picks(name, value string) bool {
	if !f.named([]byte(name)) {
		return false
	}
	return f.Match == nil || f.Match(name, value)
}

// named reports whether a field name is one of f's (ASCII case-folded:
// field names are printable ASCII, RFC 5322 2.2).
func (f FieldFilter) named(name []byte) bool {
	for _, n := range f.Names {
		if asciiEqualFold(name, n) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
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

// ClaimsUs picks the Authentication-Results fields whose authserv-id is
// hostname: RFC 8601 5 has a receiver delete such fields from outside,
// since only it may write them. Fields of other authserv-ids are kept.
func ClaimsUs(hostname string) FieldFilter {
	return FieldFilter{Names: []string{"Authentication-Results"}, Match: func(_, value string) bool {
		id := AuthservID(value)
		return id != "" && strings.EqualFold(strings.TrimSuffix(id, "."), strings.TrimSuffix(hostname, "."))
	}}
}

// fieldCap is how much of one header field CopyWithout holds to decide
// on it; a longer field is decided on its first fieldCap bytes (the name
// and the start of the value, where an authserv-id is) and streamed.
const fieldCap = 64 << 10

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// fieldPool holds CopyWithout's field buffers and the DKIM verifier's
// canonical headers; one grown past fieldPoolMax is left to the collector.
var fieldPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

const fieldPoolMax = 16 << 10

// CopyWithout copies a message from src to dst without the header fields
// drop picks (Match sees the first fieldCap bytes of a longer field's
// value). The body is copied unchanged. It returns how many fields it
// dropped.
func CopyWithout(dst io.Writer, src io.Reader, drop FieldFilter) (int, error) {
	return filterHeader(dst, src, drop, true)
}

// HeaderHas reports whether the header of the message in src has a field
// f picks; it reads no further than the header.
func HeaderHas(src io.Reader, f FieldFilter) (bool, error) {
	n, err := filterHeader(io.Discard, src, f, false)
	return n > 0, err
}

// Opener is a message that can be read from its start again and again,
// such as a spool.
type Opener interface {
	Open() (io.ReadCloser, error)
}

// OpenedHas is HeaderHas on a new reader of m; a filter that names no
// field is answered without reading.
func OpenedHas(m Opener, f FieldFilter) (bool, error) {
	if len(f.Names) == 0 {
		return false, nil
	}
	rc, err := m.Open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return HeaderHas(rc, f)
}

// filterHeader is CopyWithout; without withBody it stops at the end of
// the header.
func filterHeader(dst io.Writer, src io.Reader, drop FieldFilter, withBody bool) (int, error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(src)
	cur := fieldPool.Get().(*[]byte)
	c := fieldCopier{dst: dst, drop: drop, cur: (*cur)[:0]}
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
		if cap(c.cur) <= fieldPoolMax {
			*cur = c.cur[:0]
			fieldPool.Put(cur)
		}
	}()
	atLineStart := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, io.EOF) {
			return c.dropped, fmt.Errorf("msgauth: read message: %w", err)
		}
		if atLineStart && isBlank(line) && (len(line) > 0 || err != nil) {
			// The end of the header (or of a message that is all header).
			if werr := c.finish(); werr != nil {
				return c.dropped, werr
			}
			if _, werr := dst.Write(line); werr != nil {
				return c.dropped, werr
			}
			if len(line) == 0 || !withBody {
				return c.dropped, nil
			}
			_, err = io.Copy(dst, br)
			return c.dropped, err
		}
		if atLineStart && !(len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && c.inField) {
			// A new field (RFC 5322 2.2); a folded line continues the last.
			if werr := c.finish(); werr != nil {
				return c.dropped, werr
			}
			c.inField = true
		}
		if werr := c.add(line); werr != nil {
			return c.dropped, werr
		}
		atLineStart = len(line) > 0 && line[len(line)-1] == '\n'
		if errors.Is(err, io.EOF) {
			return c.dropped, c.finish()
		}
	}
}

// fieldCopier holds the header field being copied.
type fieldCopier struct {
	dst      io.Writer
	drop     FieldFilter
	dropped  int
	cur      []byte // the field so far, while it is under fieldCap
	inField  bool
	decided  bool // over fieldCap: decided on, now streamed
	dropping bool
}

func (c *fieldCopier) add(p []byte) error {
	if c.decided {
		if c.dropping {
			return nil
		}
		_, err := c.dst.Write(p)
		return err
	}
	c.cur = append(c.cur, p...)
	if len(c.cur) <= fieldCap {
		return nil
	}
	c.decided = true
	return c.decide()
}

// decide drops or writes what is held of the field.
func (c *fieldCopier) decide() error {
	c.dropping = false
	if i := bytes.IndexByte(c.cur, ':'); i > 0 && c.drop.named(bytes.TrimRight(c.cur[:i], " \t")) {
		// Only a field of a wanted name is split (two allocations).
		name, value, ok := splitField(c.cur)
		c.dropping = ok && (c.drop.Match == nil || c.drop.Match(name, value))
	}
	var err error
	if c.dropping {
		c.dropped++
	} else {
		_, err = c.dst.Write(c.cur)
	}
	c.cur = c.cur[:0]
	return err
}

// finish ends the current field.
func (c *fieldCopier) finish() error {
	var err error
	if !c.decided && len(c.cur) > 0 {
		err = c.decide()
	}
	c.cur = c.cur[:0]
	c.decided, c.dropping, c.inField = false, false, false
	return err
}

func isBlank(line []byte) bool {
	return len(line) == 0 || bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n"))
}

// splitField splits a raw header field into its name and unfolded value.
func splitField(raw []byte) (name, value string, ok bool) {
	i := bytes.IndexByte(raw, ':')
	if i <= 0 {
		return "", "", false
	}
	name = string(bytes.TrimRight(raw[:i], " \t"))
	rest := bytes.TrimRight(raw[i+1:], "\r\n")
	if bytes.IndexByte(rest, '\n') < 0 {
		// One line, the usual case: one allocation, for the value.
		return name, string(bytes.TrimSpace(rest)), true
	}
	v := strings.ReplaceAll(string(rest), "\r\n", "")
	v = strings.ReplaceAll(v, "\n", "")
	return name, strings.TrimSpace(v), true
}
