package imapmsg

import (
	"bytes"
	"strings"
)

// eachField calls fn for every field of a header block: name is the field
// name with trailing whitespace trimmed (nil for a line without a colon),
// value what follows the colon up to the end of the field (folding CRLFs
// kept) and raw every byte of the field, line terminators included. The
// terminating empty line is not a field.
func eachField(block []byte, fn func(name, value, raw []byte)) {
	start, valStart := -1, -1
	var name []byte
	flush := func(end int) {
		if start < 0 {
			return
		}
		var value []byte
		if valStart >= 0 {
			value = block[valStart:end]
		}
		fn(name, value, block[start:end])
		start = -1
	}
	pos := 0
	for pos < len(block) {
		end := len(block)
		if i := bytes.IndexByte(block[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := block[pos:end]
		first := line[0]
		if first == ' ' || first == '\t' {
			if start < 0 { // a continuation without a field: keep it as a nameless one
				start, valStart, name = pos, -1, nil
			}
			pos = end
			continue // RFC 5322 2.2.3: folded into the field before it
		}
		flush(pos)
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			return // RFC 5322 2.1: the empty line ends the header
		}
		start = pos
		if c := bytes.IndexByte(content, ':'); c >= 0 {
			name = bytes.TrimRight(content[:c], " \t")
			valStart = pos + c + 1
		} else {
			name, valStart = nil, -1
		}
		pos = end
	}
	flush(pos)
}

// unfold removes the CR and LF characters of a folded header value and
// trims the whitespace around it (RFC 5322 2.2.3).
func unfold(v []byte) string {
	if bytes.IndexAny(v, "\r\n") < 0 {
		return string(bytes.TrimSpace(v))
	}
	out := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(bytes.TrimSpace(out))
}

// Param is one MIME parameter (RFC 2045 5.1) as written, with RFC 2231
// continuations joined: name*0="a"; name*1="b" is name="ab", and a
// joined extended parameter keeps its star (filename* = us-ascii'en'x).
type Param struct {
	Name  string
	Value string
}

// parseMIMEValue splits a Content-Type or Content-Disposition value into
// the leading value and its parameters. It never fails: junk between
// parameters is skipped. The leading value is "" when there is none.
func parseMIMEValue(s string) (string, []Param) {
	p := mimeLexer{s: s}
	p.skipCFWS()
	value := p.until(";")
	value = strings.TrimSpace(stripComments(value))
	var params []Param
	for p.pos < len(p.s) {
		if p.s[p.pos] != ';' {
			p.pos++
			continue
		}
		p.pos++
		p.skipCFWS()
		eq := strings.IndexAny(p.s[p.pos:], "=;")
		if eq < 0 || p.s[p.pos+eq] == ';' {
			if eq < 0 {
				p.pos = len(p.s)
			} else {
				p.pos += eq
			}
			continue // a parameter without a value
		}
		name := strings.TrimSpace(p.s[p.pos : p.pos+eq])
		p.pos += eq + 1
		p.skipCFWS()
		var v string
		if p.pos < len(p.s) && p.s[p.pos] == '"' {
			v = p.quoted()
		} else {
			start := p.pos
			for p.pos < len(p.s) && !strings.ContainsRune("; \t\r\n(", rune(p.s[p.pos])) {
				p.pos++
			}
			v = p.s[start:p.pos]
		}
		p.skipCFWS()
		if name != "" {
			params = append(params, Param{Name: name, Value: v})
		}
	}
	return value, joinContinuations(params)
}

// joinContinuations merges RFC 2231 3 continuations (name*0, name*1*...)
// into one parameter at the place of the first segment.
func joinContinuations(params []Param) []Param {
	has := false
	for _, p := range params {
		if _, _, ok := continuation(p.Name); ok {
			has = true
			break
		}
	}
	if !has {
		return params
	}
	out := make([]Param, 0, len(params))
	index := map[string]int{} // lower-case base name -> position in out
	for _, p := range params {
		base, ext, ok := continuation(p.Name)
		if !ok {
			out = append(out, p)
			continue
		}
		key := strings.ToLower(base)
		if i, seen := index[key]; seen {
			out[i].Value += p.Value
			continue
		}
		name := base
		if ext {
			name += "*"
		}
		index[key] = len(out)
		out = append(out, Param{Name: name, Value: p.Value})
	}
	return out
}

// continuation reports whether name is an RFC 2231 segment "base*N" or
// "base*N*", returning the base name and whether the segment is extended.
func continuation(name string) (base string, ext bool, ok bool) {
	n := strings.TrimSuffix(name, "*")
	ext = len(n) != len(name)
	star := strings.LastIndexByte(n, '*')
	if star <= 0 || star == len(n)-1 {
		return "", false, false
	}
	for _, c := range n[star+1:] {
		if c < '0' || c > '9' {
			return "", false, false
		}
	}
	return n[:star], ext, true
}

// mimeLexer walks a structured header value.
type mimeLexer struct {
	s   string
	pos int
}

// skipCFWS skips whitespace and RFC 5322 comments (nested).
func (p *mimeLexer) skipCFWS() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.pos++
		case c == '(':
			p.comment()
		default:
			return
		}
	}
}

// comment consumes a comment starting at p.pos and returns its text.
func (p *mimeLexer) comment() string {
	depth := 0
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '\\':
			if p.pos < len(p.s) {
				b.WriteByte(p.s[p.pos])
				p.pos++
			}
			continue
		case '(':
			depth++
			if depth == 1 {
				continue
			}
		case ')':
			depth--
			if depth == 0 {
				return b.String()
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// quoted consumes a quoted string starting at p.pos (the opening quote)
// and returns its content with quoted-pairs resolved. An unterminated
// string runs to the end.
func (p *mimeLexer) quoted() string {
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String()
		case '\\':
			if p.pos < len(p.s) {
				c = p.s[p.pos]
				p.pos++
			}
		case '\r', '\n':
			continue // folding inside a quoted string
		}
		b.WriteByte(c)
	}
	return b.String()
}

// until returns the text up to (not including) the first byte in stop
// outside quotes and comments and leaves p.pos there.
func (p *mimeLexer) until(stop string) string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case strings.IndexByte(stop, c) >= 0:
			return p.s[start:p.pos]
		case c == '"':
			p.quoted()
		case c == '(':
			p.comment()
		default:
			p.pos++
		}
	}
	return p.s[start:]
}

// stripComments removes RFC 5322 comments from a structured value.
func stripComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	p := mimeLexer{s: s}
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '(' {
			p.comment()
			continue
		}
		b.WriteByte(c)
		p.pos++
	}
	return b.String()
}

// paramValue returns the value of the first parameter called name.
func paramValue(params []Param, name string) (string, bool) {
	for _, p := range params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}
