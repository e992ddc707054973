package imapmsg

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// officeZip builds an archive with the given members.
func officeZip(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const (
	docxBody = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:r><w:t>Quarterly</w:t></w:r><w:r><w:t xml:space="preserve"> report on </w:t></w:r><w:r><w:t>kittiwakes</w:t></w:r></w:p>
<w:p><w:r><w:instrText>HYPERLINK "hidden"</w:instrText><w:t>second</w:t><w:tab/><w:t>para&amp;graph</w:t></w:r></w:p>
</w:body></w:document>`
	xlsxStrings = `<?xml version="1.0" encoding="UTF-8"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="2" uniqueCount="2">
<si><t>Shearwater</t></si><si><r><t>Storm </t></r><r><t>petrel</t></r></si></sst>`
	odtContent = `<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">
<office:automatic-styles><style>not text</style></office:automatic-styles>
<office:body><office:text><text:h>Fulmar</text:h><text:p>glides<text:s/>over<text:tab/>waves</text:p></office:text></office:body>
</office:document-content>`
)

func slideXML(word string) string {
	return `<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>` + word +
		`</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>`
}

func TestOfficeText(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  officeKind
		files map[string]string
		want  string
	}{
		{"docx", ooxmlDoc, map[string]string{
			"word/document.xml": docxBody, "word/header1.xml": `<w:hdr xmlns:w="w"><w:p><w:r><w:t>Header text</w:t></w:r></w:p></w:hdr>`,
			"word/styles.xml": `<w:styles xmlns:w="w"><w:t>style junk</w:t></w:styles>`,
		}, "Quarterly report on kittiwakes\nsecond para&graph\nHeader text\n"},
		{"xlsx", ooxmlSheet, map[string]string{"xl/sharedStrings.xml": xlsxStrings, "xl/worksheets/sheet1.xml": `<v>0</v>`},
			"Shearwater\nStorm petrel\n"},
		{"pptx", ooxmlSlides, map[string]string{
			"ppt/slides/slide10.xml": slideXML("tenth"), "ppt/slides/slide2.xml": slideXML("second"),
			"ppt/slides/slide1.xml": slideXML("first"), "ppt/slides/_rels/slide1.xml.rels": `<a:t>rel</a:t>`,
		}, "first\nsecond\ntenth\n"},
		{"odt", odfDoc, map[string]string{"content.xml": odtContent, "styles.xml": `<text:p>styles</text:p>`},
			"Fulmar\nglides over waves\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := officeText(tc.kind, officeZip(t, tc.files), 1<<20)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := officeText(ooxmlDoc, []byte("not a zip"), 1<<20); got != "" {
		t.Errorf("not a zip: %q", got)
	}
	// A part that breaks off keeps the text before the damage.
	broken := officeZip(t, map[string]string{"word/document.xml": `<w:document xmlns:w="w"><w:p><w:t>kept</w:t></w:p><w:p><w:t>cut`})
	if got := officeText(ooxmlDoc, broken, 1<<20); !strings.HasPrefix(got, "kept\n") {
		t.Errorf("damaged part: %q", got)
	}
}

// TestOfficeTextBounds: a small archive that inflates to far more XML
// than officeMaxXML (a zip bomb) yields at most limit bytes of text and
// stops reading at the XML bound.
func TestOfficeTextBounds(t *testing.T) {
	para := `<w:p><w:r><w:t>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</w:t></w:r></w:p>`
	body := `<w:document xmlns:w="w"><w:body>` + strings.Repeat(para, (officeMaxXML/len(para))*3) + `</w:body></w:document>`
	data := officeZip(t, map[string]string{"word/document.xml": body})
	if len(data) > len(body)/50 {
		t.Fatalf("archive of %d bytes for %d of XML: not a bomb", len(data), len(body))
	}
	if got := officeText(ooxmlDoc, data, 1000); len(got) != 1000 {
		t.Errorf("limit 1000: got %d bytes", len(got))
	}
	got := officeText(ooxmlDoc, data, 1<<30)
	if max := officeMaxXML; len(got) >= max || len(got) == 0 {
		t.Errorf("unbounded limit: %d bytes of text from a bomb (XML bound %d)", len(got), max)
	}
	// More parts than officeMaxParts: the rest are not read.
	files := map[string]string{}
	for i := 1; i <= officeMaxParts+20; i++ {
		files[fmt.Sprintf("ppt/slides/slide%d.xml", i)] = slideXML(fmt.Sprint("w", i))
	}
	got = officeText(ooxmlSlides, officeZip(t, files), 1<<20)
	if n := strings.Count(got, "\n"); n != officeMaxParts {
		t.Errorf("%d slides read, want %d", n, officeMaxParts)
	}
}

func TestOfficeKindOf(t *testing.T) {
	for _, tc := range []struct {
		typ, sub, filename, name string
		want                     officeKind
	}{
		{"application", "vnd.openxmlformats-officedocument.wordprocessingml.document", "", "", ooxmlDoc},
		{"Application", "VND.OASIS.OPENDOCUMENT.SPREADSHEET", "", "", odfDoc},
		{"application", "octet-stream", "Report.DOCX", "", ooxmlDoc},
		{"application", "octet-stream", "", "deck.pptx", ooxmlSlides},
		{"application", "octet-stream", "x.pdf", "", notOffice},
		{"application", "pdf", "x.docx", "", notOffice},
		{"text", "plain", "x.docx", "", notOffice},
	} {
		p := &Part{Type: tc.typ, Subtype: tc.sub}
		if tc.filename != "" {
			p.DispParams = []Param{{Name: "filename", Value: tc.filename}}
		}
		if tc.name != "" {
			p.Params = []Param{{Name: "name", Value: tc.name}}
		}
		if got := officeKindOf(p); got != tc.want {
			t.Errorf("%s/%s %q %q: %v, want %v", tc.typ, tc.sub, tc.filename, tc.name, got, tc.want)
		}
	}
}

// TestIndexTextOfficeAttachment: a docx sent base64 as an attachment is
// indexed (and so searched by BODY) with FULL_TEXT_SEARCH_ATTACHMENTS,
// and not without it.
func TestIndexTextOfficeAttachment(t *testing.T) {
	docx := officeZip(t, map[string]string{"word/document.xml": docxBody})
	msg := "From: a@example.org\r\nSubject: minutes\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=minutes.docx\r\n" +
		"Content-Disposition: attachment; filename=minutes.docx\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(docx) + "\r\n--b--\r\n"
	r := strings.NewReader(msg)
	st, err := Parse(r, int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, attach := range []bool{true, false} {
		_, body, err := IndexText(r, st, TextOptions{Attachments: attach})
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(body, "\n")
		if got := strings.Contains(text, "kittiwakes"); got != attach {
			t.Errorf("attachments %v: docx text found %v in %q", attach, got, text)
		}
		if !strings.Contains(text, "see attached.") {
			t.Errorf("attachments %v: inline text missing from %q", attach, text)
		}
	}
}

// FuzzOfficeText feeds arbitrary archives to the extractor: it must not
// panic, and never return more than the limit.
func FuzzOfficeText(f *testing.F) {
	f.Add(officeZip(f, map[string]string{"word/document.xml": docxBody}), 64)
	f.Add(officeZip(f, map[string]string{"content.xml": "<a><body><p>x</p></body></a>"}), 8)
	f.Add([]byte("PK\x03\x04 not really"), 100)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		for kind := ooxmlDoc; kind <= odfDoc; kind++ {
			if got := officeText(kind, data, limit); len(got) > max(limit, 0) {
				t.Fatalf("kind %d: %d bytes over limit %d", kind, len(got), limit)
			}
		}
	})
}
