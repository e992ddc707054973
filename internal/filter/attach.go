package filter

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"sync"

	"github.com/emersion/go-message"
)

// ForbiddenExtensions is Mailu's forbidden_file_extension.map (rspamd
// multimap FORBIDDEN_FILE_EXTENSION, a prefilter that rejects with
// "Forbidden attachment extension"): executables, scripts, disk images
// and installers.
var ForbiddenExtensions = []string{
	"ace", "ade", "adp", "apk", "appx", "appxbundle", "arj", "bat", "bin", "cab", "chm", "class",
	"cmd", "com", "cpl", "diagcab", "diagcfg", "diagpack", "dll", "ex", "ex_", "exe", "hlp", "hta",
	"img", "ins", "iso", "isp", "jar", "jnlp", "js", "jse", "lib", "lnk", "lzh", "mde", "msc",
	"msi", "msix", "msixbundle", "msp", "mst", "msu", "nsh", "ocx", "ovl", "pif", "ps1", "r01",
	"r14", "r18", "r25", "scr", "sct", "shb", "shs", "sys", "vb", "vbe", "vbs", "vbscript", "vdl",
	"vhd", "vxd", "wsc", "wsf", "wsh", "xll",
}

// Limits of the attachment scan: a message with more parts or deeper
// nesting is scanned up to the limit (the rest is left to clamd/rspamd);
// an archive or Office file larger than maxInspect is not opened.
const (
	maxParts   = 500
	maxDepth   = 20
	maxInspect = 32 << 20
	maxMembers = 5000
)

// attachFinding is what the attachment scan found.
type attachFinding struct {
	Forbidden string // the offending file name ("" if none)
	Macro     string // the Office file with macros ("" if none)
}

// attachScanner checks attachment names against the forbidden list and,
// with macros on, Office files for VBA projects.
type attachScanner struct {
	forbidden map[string]bool
	macros    bool
}

func newAttachScanner(exts []string, macros bool) *attachScanner {
	m := make(map[string]bool, len(exts))
	for _, e := range exts {
		m[strings.ToLower(strings.TrimPrefix(e, "."))] = true
	}
	return &attachScanner{forbidden: m, macros: macros}
}

// forbiddenName reports whether a file name has a forbidden extension.
// Like rspamd's filename map, only the last extension counts
// ("invoice.pdf.exe" is forbidden, "setup.exe.txt" is not).
func (a *attachScanner) forbiddenName(name string) bool {
	name = strings.ToLower(strings.TrimRight(strings.TrimSpace(name), ". "))
	ext := path.Ext(strings.ReplaceAll(name, "\\", "/"))
	return ext != "" && a.forbidden[ext[1:]]
}

// scan walks the MIME tree of r. A message that does not parse as MIME is
// not refused here (clamd and rspamd still see it).
func (a *attachScanner) scan(r io.Reader) (attachFinding, error) {
	br := scanReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		scanReaders.Put(br)
	}()
	if plainText(br) {
		return attachFinding{}, nil
	}
	return a.scanMIME(br)
}

// scanMIME is scan without the fast path. message.Read keeps a
// *bufio.Reader as it is when it is big enough.
func (a *attachScanner) scanMIME(r io.Reader) (attachFinding, error) {
	ent, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		if ent == nil {
			return attachFinding{}, nil
		}
	}
	var f attachFinding
	parts := 0
	err = a.walk(ent, 0, &parts, &f)
	return f, err
}

var errStop = errors.New("stop")

// scanReaders hold the top of a message while plainText looks at its
// header: a header that fits is decided without parsing it as MIME.
var scanReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, scanPeek) }}

const scanPeek = 16 << 10

// plainText reports, from the header at the top of br (peeked, not
// consumed), whether walk would return at once for this message: a
// single text part without a file name. That is most mail, and then
// the MIME parse is skipped. It answers false whenever it is not sure
// (a header larger than the buffer, repeated fields, a Content-Disposition,
// anything that may hold a name), and walk decides.
func plainText(br *bufio.Reader) bool {
	data, err := br.Peek(scanPeek)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return false
	}
	var ctype string
	types, first, inType := 0, true, false
	for {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return false // the header does not end inside the buffer
		}
		data = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return false
			}
			if inType {
				ctype += " " + string(bytes.TrimSpace(line))
			}
			continue
		}
		first = false
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !fieldName(name) {
			return false // not a plain header line: let the parser judge
		}
		inType = bytes.EqualFold(name, []byte("Content-Type"))
		switch {
		case bytes.EqualFold(name, []byte("Content-Disposition")):
			return false
		case inType:
			if types++; types > 1 {
				return false
			}
			ctype = string(bytes.TrimSpace(value))
		}
	}
	ctype = strings.TrimSpace(ctype)
	// partFileName finds a name in a parameter, an RFC 2231 one, or the
	// raw text: any "name" at all goes to walk.
	if strings.Contains(strings.ToLower(ctype), "name") {
		return false
	}
	// go-message: no Content-Type is text/plain; an unparsable one is
	// compared as it is.
	mt := "text/plain"
	if ctype != "" {
		if t, _, err := mime.ParseMediaType(ctype); err == nil {
			mt = t
		} else {
			mt = ctype
		}
	}
	return strings.HasPrefix(mt, "text/")
}

// fieldName is RFC 5322's field-name: printable ASCII but the colon.
func fieldName(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
	}
	return len(b) > 0
}

func (a *attachScanner) walk(e *message.Entity, depth int, parts *int, f *attachFinding) error {
	*parts++
	if *parts > maxParts || depth > maxDepth {
		return nil
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if message.IsUnknownCharset(err) || message.IsUnknownEncoding(err) {
					if p == nil {
						continue
					}
				} else {
					return nil // a broken multipart ends the scan, not the message
				}
			}
			if err := a.walk(p, depth+1, parts, f); err != nil {
				return err
			}
			if f.Forbidden != "" || f.Macro != "" {
				return nil
			}
		}
	}
	name := partFileName(e.Header)
	if name != "" && a.forbiddenName(name) {
		f.Forbidden = name
		return nil
	}
	mt, _, _ := e.Header.ContentType()
	if strings.HasPrefix(mt, "text/") && name == "" {
		return nil
	}
	if mt == "message/rfc822" && depth < maxDepth {
		inner, err := message.Read(e.Body)
		if inner == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
			return nil
		}
		return a.walk(inner, depth+1, parts, f)
	}
	// Look inside: archives for forbidden names, Office files for macros.
	head := make([]byte, 8)
	n, _ := io.ReadFull(e.Body, head)
	head = head[:n]
	isZip := bytes.HasPrefix(head, []byte("PK\x03\x04"))
	isOLE := bytes.Equal(head, oleMagic)
	if !isZip && !(isOLE && a.macros) {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(io.MultiReader(bytes.NewReader(head), e.Body), maxInspect+1))
	if err != nil || len(data) > maxInspect {
		return nil
	}
	if isZip {
		zf, macro := a.inspectZip(data)
		if zf != "" {
			f.Forbidden = name + "/" + zf
		} else if macro && a.macros {
			f.Macro = name
		}
		return nil
	}
	if oleHasMacros(data) {
		f.Macro = name
	}
	return nil
}

// partFileName is the attachment's name: Content-Disposition filename,
// else Content-Type name (RFC 2183, RFC 2231 and, as clients write it,
// RFC 2047 encoded words).
func partFileName(h message.Header) string {
	name := ""
	if _, params, err := h.ContentDisposition(); err == nil {
		name = params["filename"]
	}
	if name == "" {
		if _, params, err := h.ContentType(); err == nil {
			name = params["name"]
		}
	}
	if name == "" {
		// A parameter mime cannot parse: look for the raw value.
		for _, k := range []string{"Content-Disposition", "Content-Type"} {
			v := strings.ToLower(h.Get(k))
			for _, p := range []string{"filename=", "name="} {
				if i := strings.Index(v, p); i >= 0 {
					raw := h.Get(k)[i+len(p):]
					if j := strings.IndexByte(raw, ';'); j >= 0 {
						raw = raw[:j]
					}
					name = strings.Trim(strings.TrimSpace(raw), `"`)
					break
				}
			}
			if name != "" {
				break
			}
		}
	}
	if strings.Contains(name, "=?") {
		if d, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
			name = d
		}
	}
	return name
}

// inspectZip returns the first member with a forbidden name and whether
// the archive is an OOXML document with a VBA project (word/vbaProject.bin,
// xl/vbaProject.bin, ppt/vbaProject.bin: the macro storage of .docm, .xlsm,
// .pptm and of renamed .docx files).
func (a *attachScanner) inspectZip(data []byte) (forbidden string, macro bool) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", false
	}
	// An OOXML document (.docx, .xlsm, ...) is a zip too, but its parts
	// are not files for the user: embeddings/oleObject1.bin and
	// vbaProject.bin must not count as forbidden ".bin" attachments.
	ooxml := false
	for i, zf := range zr.File {
		if i >= maxMembers {
			break
		}
		if zf.Name == "[Content_Types].xml" {
			ooxml = true
			break
		}
	}
	for i, zf := range zr.File {
		if i >= maxMembers {
			break
		}
		if !ooxml && a.forbiddenName(zf.Name) {
			return zf.Name, false
		}
		base := strings.ToLower(path.Base(zf.Name))
		if base == "vbaproject.bin" || base == "vbadata.xml" {
			macro = true
		}
		if a.macros && !macro && strings.HasSuffix(base, ".bin") && zf.UncompressedSize64 <= maxInspect {
			// Embedded OLE objects (word/embeddings/*.bin) may carry
			// their own VBA storage.
			if rc, err := zf.Open(); err == nil {
				b, err := io.ReadAll(io.LimitReader(rc, maxInspect))
				rc.Close()
				if err == nil && bytes.HasPrefix(b, oleMagic) && oleHasMacros(b) {
					macro = true
				}
			}
		}
	}
	return "", macro
}

func (f attachFinding) String() string {
	switch {
	case f.Forbidden != "":
		return fmt.Sprintf("forbidden attachment %q", f.Forbidden)
	case f.Macro != "":
		return fmt.Sprintf("Office document with macros %q", f.Macro)
	}
	return ""
}
