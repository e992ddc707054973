package imapmsg

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Office documents (Office Open XML: docx, xlsx, pptx; OpenDocument:
// odt, ods, odp) are zip archives of XML. Their text is read with the
// standard library alone, for FULL_TEXT_SEARCH_ATTACHMENTS, as Dovecot
// reads them through Tika. PDF is not read: no well-kept pure-Go text
// extractor is available (docs/search.md).

// Bounds against hostile archives: a zip bomb inflates without end, and
// a document with thousands of parts costs a parse each.
const (
	officeMaxXML   = 16 << 20 // XML bytes inflated per document
	officeMaxParts = 500      // XML files read per document
)

// officeKind is the XML dialect of a document's text.
type officeKind int

const (
	notOffice   officeKind = iota
	ooxmlDoc               // docx: word/*.xml
	ooxmlSheet             // xlsx: xl/sharedStrings.xml
	ooxmlSlides            // pptx: ppt/slides/*.xml
	odfDoc                 // odt, ods, odp: content.xml
)

// officeKindOf tells an office document by its media type, or by its
// file name when it is sent as application/octet-stream (as many mailers
// do).
func officeKindOf(p *Part) officeKind {
	if !strings.EqualFold(p.Type, "application") {
		return notOffice
	}
	sub := strings.ToLower(p.Subtype)
	switch {
	case sub == "vnd.openxmlformats-officedocument.wordprocessingml.document":
		return ooxmlDoc
	case sub == "vnd.openxmlformats-officedocument.spreadsheetml.sheet":
		return ooxmlSheet
	case sub == "vnd.openxmlformats-officedocument.presentationml.presentation":
		return ooxmlSlides
	case strings.HasPrefix(sub, "vnd.oasis.opendocument."):
		return odfDoc
	case sub != "octet-stream":
		return notOffice
	}
	name, _ := paramValue(p.DispParams, "filename")
	if name == "" {
		name, _ = p.Param("name")
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".docx", ".docm":
		return ooxmlDoc
	case ".xlsx", ".xlsm":
		return ooxmlSheet
	case ".pptx", ".pptm":
		return ooxmlSlides
	case ".odt", ".ods", ".odp":
		return odfDoc
	}
	return notOffice
}

// officeText returns at most limit bytes of the document's text, one line
// per paragraph (or cell, or shared string); "" when data is not a
// readable archive of that kind. A damaged part ends its own text, not
// the document's.
func officeText(kind officeKind, data []byte, limit int) string {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil || limit <= 0 {
		return ""
	}
	var files []*zip.File
	for _, f := range zr.File {
		if officePart(kind, f.Name) {
			files = append(files, f)
		}
	}
	// Slides and headers in their numeric order (slide2 before slide10);
	// the main document before its headers and footers.
	sort.SliceStable(files, func(i, j int) bool { return partOrder(files[i].Name) < partOrder(files[j].Name) })
	if len(files) > officeMaxParts {
		files = files[:officeMaxParts]
	}
	w := &textWriter{limit: limit}
	xmlLeft := int64(officeMaxXML)
	for _, f := range files {
		if w.full() || xmlLeft <= 0 {
			break
		}
		rc, err := f.Open()
		if err != nil {
			continue
		}
		lr := &io.LimitedReader{R: rc, N: xmlLeft}
		extractXMLText(lr, kind, w)
		xmlLeft = lr.N
		rc.Close()
	}
	return w.b.String()
}

// officePart reports whether the archive member holds text of kind.
func officePart(kind officeKind, name string) bool {
	switch kind {
	case ooxmlDoc:
		switch name {
		case "word/document.xml", "word/footnotes.xml", "word/endnotes.xml":
			return true
		}
		return strings.HasPrefix(name, "word/header") || strings.HasPrefix(name, "word/footer")
	case ooxmlSheet:
		return name == "xl/sharedStrings.xml"
	case ooxmlSlides:
		return strings.HasPrefix(name, "ppt/slides/slide") && strings.HasSuffix(name, ".xml")
	case odfDoc:
		return name == "content.xml"
	}
	return false
}

// partOrder sorts "word/document.xml" first, then by name with its
// number compared as a number.
func partOrder(name string) string {
	if name == "word/document.xml" {
		return ""
	}
	base := strings.TrimSuffix(name, ".xml")
	i := len(base)
	for i > 0 && base[i-1] >= '0' && base[i-1] <= '9' {
		i--
	}
	if i == len(base) {
		return name
	}
	n, err := strconv.Atoi(base[i:])
	if err != nil {
		return name
	}
	return base[:i] + strconv.Itoa(100000+n) // fixed width up to 99,999 parts
}

// extractXMLText writes the text of one XML part: in Office Open XML the
// character data of t elements (w:t, a:t, and a shared string's t); in
// OpenDocument all character data of the body. Paragraph-like elements
// end a line, tabs and spacing elements give a space.
func extractXMLText(r io.Reader, kind officeKind, w *textWriter) {
	d := xml.NewDecoder(r)
	d.Strict = false
	inText := 0 // depth inside OOXML t elements
	odfBody := false
	for !w.full() {
		tok, err := d.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.newline()
			}
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch local := t.Name.Local; {
			case kind == odfDoc && local == "body":
				odfBody = true
			case kind != odfDoc && local == "t":
				inText++
			case local == "tab" || local == "s":
				w.space()
			case local == "br" || local == "line-break":
				w.newline()
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				if kind != odfDoc && inText > 0 {
					inText--
				}
			case "p", "h", "si", "table-row", "table-cell", "list-item", "tr":
				w.newline()
			case "body":
				odfBody = false
			}
		case xml.CharData:
			if inText > 0 || (kind == odfDoc && odfBody) {
				w.write(t)
			}
		}
	}
}

// textWriter collects extracted text up to limit bytes, without runs of
// blank lines.
type textWriter struct {
	b     strings.Builder
	limit int
}

func (w *textWriter) full() bool { return w.b.Len() >= w.limit }

func (w *textWriter) write(p []byte) {
	if n := w.limit - w.b.Len(); n < len(p) {
		p = p[:max(n, 0)]
	}
	w.b.Write(p)
}

func (w *textWriter) space() { w.write([]byte{' '}) }

func (w *textWriter) newline() {
	s := w.b.String()
	if s != "" && !strings.HasSuffix(s, "\n") {
		w.write([]byte{'\n'})
	}
}
