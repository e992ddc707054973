package imapmsg

import (
	"html"
	"io"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxPreview is RFC 8970 3.1's limit, in characters.
const maxPreview = 256

// previewRead bounds the encoded bytes one preview reads: 256 characters
// never need more.
const previewRead = 16 << 10

// Preview is the RFC 8970 preview of a message: the start of its first
// text/plain part that is not an attachment (else of its first text/html
// part, tags removed), decoded, with white space collapsed and quoted
// lines (">") left out, at most 256 characters. "" when the message has
// no such text.
func Preview(r io.ReaderAt, st *Structure) string {
	if st == nil || st.Root == nil {
		return ""
	}
	p := findText(st.Root, "plain")
	isHTML := false
	if p == nil {
		p, isHTML = findText(st.Root, "html"), true
	}
	if p == nil {
		return ""
	}
	q := *p
	q.EndOffset = min(q.EndOffset, q.BodyOffset+previewRead)
	text, err := decodePart(r, &q)
	if err != nil {
		return ""
	}
	if isHTML {
		text = htmlText(text)
	}
	return collapse(text)
}

// findText is the first inline text/sub leaf, depth first, not inside
// an attached message.
func findText(p *Part, sub string) *Part {
	switch {
	case p.IsMultipart():
		for _, c := range p.Children {
			if t := findText(c, sub); t != nil {
				return t
			}
		}
	case strings.EqualFold(p.Type, "text") && strings.EqualFold(p.Subtype, sub) &&
		!strings.EqualFold(p.Disposition, "attachment"):
		return p
	}
	return nil
}

var (
	htmlDrop = regexp.MustCompile(`(?is)<(script|style|head)\b.*?</(script|style|head)\s*>|<!--.*?-->`)
	htmlTag  = regexp.MustCompile(`(?s)<[^>]*>`)
)

// htmlText reduces HTML to its text: scripts, styles and comments go,
// tags become spaces, entities are decoded.
func htmlText(s string) string {
	s = htmlDrop.ReplaceAllString(s, " ")
	s = htmlTag.ReplaceAllString(s, " ")
	return html.UnescapeString(s)
}

// collapse drops quoted lines, turns every run of white space and
// control characters into one space and cuts at maxPreview characters.
func collapse(s string) string {
	var b strings.Builder
	n, space := 0, false
	for line := range strings.Lines(s) {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), ">") {
			continue
		}
		for _, c := range line {
			if c == utf8.RuneError || unicode.IsSpace(c) || unicode.IsControl(c) {
				space = b.Len() > 0
				continue
			}
			if space {
				if n+1 >= maxPreview {
					return b.String()
				}
				b.WriteByte(' ')
				n++
				space = false
			}
			b.WriteRune(c)
			n++
			if n == maxPreview {
				return b.String()
			}
		}
	}
	return b.String()
}
