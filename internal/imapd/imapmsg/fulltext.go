package imapmsg

import (
	"io"
	"strings"

	"golang.org/x/net/html"
)

// MaxIndexText bounds the text of one message that BODY and TEXT see
// when full-text search is on, and that the index holds.
const MaxIndexText = 4 << 20

// BodyIndex is implemented by a MessageView whose BODY and TEXT keys go
// through a full-text index (docs/search.md). When it is on, the body
// text those keys compare is IndexText's, not the raw text parts: HTML
// is reduced to its text, and attachments count only when indexed.
type BodyIndex interface {
	// MayContain reports false only when the index shows that neither
	// the header nor the body text holds needle (RFC 9051 6.4.4 TEXT);
	// true when it may, or when the message is not indexed.
	MayContain(needle string) bool
	// IndexedBodyText returns the body text BODY compares (IndexText's
	// body); ok false when full-text search is off.
	IndexedBodyText() (text []string, ok bool, err error)
}

// TextOptions say what IndexText takes from a message.
type TextOptions struct {
	// Attachments includes text parts marked as attachments and the
	// text of office documents (docx, xlsx, pptx, odt, ods, odp:
	// officetext.go) (FULL_TEXT_SEARCH_ATTACHMENTS); only inline text
	// parts otherwise.
	Attachments bool
}

// IndexText is what full-text search indexes of a message and compares
// BODY and TEXT with: header is the decoded fields as TEXT sees them
// (one "name: value" line each, folded), body the folded text of the
// text parts (charset and transfer encoding undone, HTML reduced to its
// text) and of encapsulated messages with their headers. Together they
// are at most MaxIndexText bytes.
func IndexText(r io.ReaderAt, st *Structure, opt TextOptions) (header string, body []string, err error) {
	root := st.Root
	h := make([]byte, root.BodyOffset-root.HeaderOffset)
	if _, err := r.ReadAt(h, root.HeaderOffset); err != nil && err != io.EOF {
		return "", nil, err
	}
	header = headerText(h)
	budget := MaxIndexText - len(header)
	if budget < 0 {
		return header[:MaxIndexText], nil, nil
	}
	body, err = indexParts(r, root, opt, false, &budget)
	return header, body, err
}

// headerText is a header block as TEXT's header half compares it.
func headerText(h []byte) string {
	var b strings.Builder
	fields := decodeFields(h)
	for i := range fields {
		f := &fields[i]
		f.decode()
		b.WriteString(fold(string(f.name)))
		b.WriteString(": ")
		b.WriteString(f.value)
		b.WriteByte('\n')
	}
	return b.String()
}

func indexParts(r io.ReaderAt, p *Part, opt TextOptions, withHeader bool, budget *int) ([]string, error) {
	var out []string
	add := func(s string) {
		if *budget <= 0 {
			return
		}
		if len(s) > *budget {
			s = s[:*budget]
		}
		*budget -= len(s)
		out = append(out, s)
	}
	if withHeader {
		h := make([]byte, p.BodyOffset-p.HeaderOffset)
		if _, err := r.ReadAt(h, p.HeaderOffset); err != nil && err != io.EOF {
			return nil, err
		}
		add(headerText(h))
	}
	switch {
	case p.IsMultipart():
		for _, c := range p.Children {
			t, err := indexParts(r, c, opt, false, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, t...)
		}
	case p.Message != nil:
		t, err := indexParts(r, p.Message, opt, true, budget)
		if err != nil {
			return nil, err
		}
		out = append(out, t...)
	case opt.Attachments && officeKindOf(p) != notOffice:
		data, err := decodePart(r, p)
		if err != nil {
			return nil, err
		}
		add(fold(officeText(officeKindOf(p), []byte(data), *budget)))
	case strings.EqualFold(p.Type, "text"):
		if strings.EqualFold(p.Disposition, "attachment") && !opt.Attachments {
			return out, nil
		}
		t, err := decodePart(r, p)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(p.Subtype, "html") {
			t = HTMLText(t)
		}
		add(fold(t))
	}
	return out, nil
}

// htmlBlocks are the elements that start a new line when shown, so that
// their texts are not run together into one word.
var htmlBlocks = map[string]bool{
	"address": true, "article": true, "aside": true, "blockquote": true, "br": true, "dd": true,
	"div": true, "dl": true, "dt": true, "fieldset": true, "figcaption": true, "figure": true,
	"footer": true, "form": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true,
	"h6": true, "header": true, "hr": true, "li": true, "main": true, "nav": true, "ol": true,
	"p": true, "pre": true, "section": true, "table": true, "td": true, "th": true, "tr": true,
	"ul": true, "title": true, "img": true,
}

// HTMLText reduces an HTML document to the text a reader sees: tags,
// comments, scripts and styles gone, character references decoded, a
// line break where a block starts or ends (inline tags join their
// neighbours, as shown: <b>Pe</b>trel is "Petrel").
func HTMLText(doc string) string {
	z := html.NewTokenizer(strings.NewReader(doc))
	var b strings.Builder
	skip := 0 // inside script or style
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String()
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if tag == "script" || tag == "style" {
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
				continue
			}
			if htmlBlocks[tag] {
				b.WriteByte('\n')
			}
		}
	}
}
