package imapmsg

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Limits that keep a hostile message from costing more than a normal one
// (Dovecot's message_max_nested_mime_parts / max_total_mime_parts).
const (
	maxDepth       = 100
	maxParts       = 10000
	maxHeaderBytes = 256 << 10 // header bytes kept for parsing; the rest is skipped, not lost
	readBufSize    = 64 << 10
	headerBufSize  = 4096 // ReadHeader's buffer: it reads little past the header
)

// Structure is the parsed shape of one message. It holds no reference to
// the message bytes and is never modified after Parse, so it can be
// cached per stored body and shared between sessions.
type Structure struct {
	Size int64 // RFC822.SIZE: the message in octets
	Root *Part // the message itself; Root.Envelope is its ENVELOPE
	// Shallow marks a structure from ParseHeader: the root's header,
	// envelope and MIME fields are known, its parts and lines are not.
	Shallow bool
}

// Part is one MIME entity: the message, a part of a multipart, or the
// message inside a message/rfc822 part. Offsets are absolute positions in
// the message: the header is [HeaderOffset, BodyOffset) including the empty
// line that ends it, the body is [BodyOffset, EndOffset), without the line
// break that belongs to a following boundary (RFC 2046 5.1.1).
type Part struct {
	Type, Subtype string  // as written ("text", "plain" when missing or unparsable)
	Params        []Param // Content-Type parameters; text/* always has a charset
	ID            *string // Content-ID (nil: NIL)
	Description   *string // Content-Description
	Encoding      string  // Content-Transfer-Encoding, "7bit" when missing
	MD5           *string // Content-MD5
	Disposition   string  // Content-Disposition value, "" when missing
	DispParams    []Param
	Language      []string // Content-Language tags
	Location      *string  // Content-Location

	HeaderOffset, BodyOffset, EndOffset int64
	Lines                               int64 // line breaks in the body (text/* and message/rfc822 report it)

	Children []*Part // the parts of a multipart (never empty for one)
	// Message is the encapsulated message of a message/rfc822 or
	// message/global part; its HeaderOffset is this part's BodyOffset. A
	// part with a transfer encoding other than 7bit/8bit/binary is not
	// parsed and gets an empty message, as Dovecot reports it.
	Message *Part
	// Envelope is the ENVELOPE of a message entity (the Root and every
	// Message) as written on the wire (RFC 9051 7.5.2), "" on other
	// parts. It is rendered once, when the part is parsed: the IMAP
	// server keeps parsed structures in its caches, one per message, and
	// only ever writes the envelope out, so one string costs less than
	// half the bytes of the struct, address lists and string per value
	// it replaces, gives the collector nothing to trace, and FETCH
	// ENVELOPE copies it.
	Envelope string
}

// Size is the body size in octets (body-fld-octets).
func (p *Part) Size() int64 { return p.EndOffset - p.BodyOffset }

// IsMultipart reports whether the part is a multipart with children.
func (p *Part) IsMultipart() bool { return len(p.Children) > 0 }

// MediaType is "type/subtype" in lower case.
func (p *Part) MediaType() string { return strings.ToLower(p.Type + "/" + p.Subtype) }

// Param returns the value of the Content-Type parameter name.
func (p *Part) Param(name string) (string, bool) { return paramValue(p.Params, name) }

// Parse scans the message in r (size octets) once and returns its
// structure. Only read errors fail; malformed MIME is reported the way
// real servers report it (see the package comment).
func Parse(r io.ReaderAt, size int64) (*Structure, error) {
	if size < 0 {
		return nil, fmt.Errorf("imapmsg: negative size %d", size)
	}
	p := &parser{sc: newScanner(r, size, &parseBufs)}
	defer p.sc.release()
	root := &Part{}
	p.parts = 1
	p.parseEntity(root, 0, nil, defaultText, true)
	if p.sc.err != nil {
		return nil, fmt.Errorf("imapmsg: reading message: %w", p.sc.err)
	}
	return &Structure{Size: size, Root: root}, nil
}

// ParseBytes is Parse over a byte slice.
func ParseBytes(b []byte) *Structure {
	s, _ := Parse(bytes.NewReader(b), int64(len(b))) // a bytes.Reader does not fail
	return s
}

// ParseHeader reads only the message header and returns a shallow
// structure: enough for ENVELOPE and for sections without a part number
// (BODY[], HEADER, HEADER.FIELDS, TEXT), without reading the body.
// BODYSTRUCTURE and part numbers need Parse.
func ParseHeader(r io.ReaderAt, size int64) (*Structure, error) {
	header, err := ReadHeader(r, size)
	if err != nil {
		return nil, err
	}
	root := &Part{BodyOffset: int64(len(header)), EndOffset: size}
	applyMIME(root, header, defaultText)
	root.Envelope = envelopeIMAP(header)
	return &Structure{Size: size, Root: root, Shallow: true}, nil
}

// HeaderOnly returns a structure with what ParseHeader would give for
// the same message and no part tree, so that a cache of headers does not
// keep whole trees alive: st itself when it is shallow or a single part
// (then the structure caches share it), otherwise a shallow copy of the
// root without its parts (the envelope and MIME fields are shared).
func (st *Structure) HeaderOnly() *Structure {
	if st.Shallow || (len(st.Root.Children) == 0 && st.Root.Message == nil) {
		return st
	}
	root := *st.Root
	root.Children, root.Message, root.Lines = nil, nil, 0
	return &Structure{Size: st.Size, Root: &root, Shallow: true}
}

// ReadHeader returns the header block of the message in r (size octets),
// up to and including the empty line that ends it, reading little more.
func ReadHeader(r io.ReaderAt, size int64) ([]byte, error) {
	p := &parser{sc: newScanner(r, size, &headerBufs)}
	defer p.sc.release()
	header, _ := p.readHeader(nil)
	if p.sc.err != nil {
		return nil, fmt.Errorf("imapmsg: reading header: %w", p.sc.err)
	}
	return header, nil
}

// boundaryHit is a boundary delimiter line that ended a part.
type boundaryHit struct {
	idx       int   // which active boundary (index into the stack)
	close     bool  // "--boundary--"
	lineStart int64 // where the delimiter line starts
	lfsBefore int64 // line feeds before lineStart
	prevTerm  int   // length of the line break before the delimiter (0, 1 or 2)
}

type defaultKind int

const (
	defaultText    defaultKind = iota // text/plain; charset=us-ascii (RFC 2045 5.2)
	defaultMessage                    // message/rfc822 inside multipart/digest (RFC 2046 5.1.5)
)

type parser struct {
	sc    *scanner
	parts int
}

// parseEntity parses the entity whose header starts at the scanner's
// position and returns the boundary line that ended it (nil at the end).
// message says whether the entity is a message (the root or the content
// of a message/rfc822 part), which gets an envelope.
func (p *parser) parseEntity(part *Part, depth int, bounds []string, def defaultKind, message bool) *boundaryHit {
	sc := p.sc
	part.HeaderOffset = sc.off
	header, hit := p.readHeader(bounds)
	part.BodyOffset = sc.off
	applyMIME(part, header, def)
	if hit != nil {
		endAtHeader(part, hit)
		p.finish(part, header, message)
		return hit
	}
	lfStart := sc.lfs
	boundary, _ := part.Param("boundary")
	switch {
	case strings.EqualFold(part.Type, "multipart") && boundary != "" && depth < maxDepth && p.parts < maxParts:
		hit = p.parseMultipart(part, depth, append(bounds[:len(bounds):len(bounds)], boundary))
	case strings.EqualFold(part.Type, "multipart"):
		hit = sc.skipBody(bounds) // no usable boundary: one empty part (Dovecot)
	case isMessageType(part) && identityEncoding(part.Encoding) && depth < maxDepth && p.parts < maxParts:
		inner := &Part{}
		p.parts++
		hit = p.parseEntity(inner, depth+1, bounds, defaultText, true)
		part.Message = inner
	default:
		hit = sc.skipBody(bounds)
	}
	if hit != nil && hit.lineStart == part.BodyOffset {
		endAtHeader(part, hit)
	} else {
		part.EndOffset, part.Lines = p.end(part.BodyOffset, lfStart, hit)
	}
	for _, c := range part.Children {
		clamp(c, part.EndOffset)
	}
	if part.Message != nil {
		clamp(part.Message, part.EndOffset)
	}
	p.finish(part, header, message)
	return hit
}

// finish completes a parsed part: the envelope of a message entity and
// the placeholders IMAP's grammar needs.
func (p *parser) finish(part *Part, header []byte, message bool) {
	if message {
		part.Envelope = envelopeIMAP(header)
	}
	if strings.EqualFold(part.Type, "multipart") && len(part.Children) == 0 {
		// RFC 9051 body-type-mpart needs at least one part.
		empty := &Part{HeaderOffset: part.EndOffset, BodyOffset: part.EndOffset, EndOffset: part.EndOffset}
		applyMIME(empty, nil, defaultText)
		part.Children = []*Part{empty}
	}
	if isMessageType(part) && part.Message == nil {
		// body-type-msg needs an envelope and a body even when the
		// encapsulated message is encoded and so not parsed.
		empty := &Part{HeaderOffset: part.BodyOffset, BodyOffset: part.BodyOffset, EndOffset: part.BodyOffset}
		applyMIME(empty, nil, defaultText)
		empty.Envelope = emptyEnvelope
		part.Message = empty
	}
}

// end returns where a body that started at bodyStart (with lfStart line
// feeds before it) ends, given what ended it, and its line count.
func (p *parser) end(bodyStart, lfStart int64, hit *boundaryHit) (int64, int64) {
	if hit == nil {
		return p.sc.off, p.sc.lfs - lfStart
	}
	end := hit.lineStart - int64(hit.prevTerm)
	lfs := hit.lfsBefore
	if hit.prevTerm > 0 {
		lfs-- // RFC 2046 5.1.1: the CRLF before the delimiter is part of it
	}
	if end <= bodyStart {
		return bodyStart, 0
	}
	return end, lfs - lfStart
}

// endAtHeader ends a part whose delimiter follows its header directly:
// the line break before the delimiter belongs to the delimiter even there,
// so the header loses it (a part "Content-Type: x CRLF CRLF --b" has the
// header "Content-Type: x CRLF" and no body, as in Dovecot).
func endAtHeader(part *Part, hit *boundaryHit) {
	end := max(hit.lineStart-int64(hit.prevTerm), part.HeaderOffset)
	part.BodyOffset, part.EndOffset, part.Lines = end, end, 0
}

// clamp keeps a part that ended at the same boundary as its parent (a
// header cut short by the delimiter) inside the parent.
func clamp(part *Part, limit int64) {
	if part.EndOffset <= limit {
		return
	}
	part.HeaderOffset = min(part.HeaderOffset, limit)
	part.BodyOffset = min(part.BodyOffset, limit)
	part.EndOffset = limit
	for _, c := range part.Children {
		clamp(c, limit)
	}
	if part.Message != nil {
		clamp(part.Message, limit)
	}
}

// parseMultipart parses the body of a multipart whose boundary is the last
// one in bounds.
func (p *parser) parseMultipart(part *Part, depth int, bounds []string) *boundaryHit {
	own := len(bounds) - 1
	def := defaultText
	if strings.EqualFold(part.Subtype, "digest") {
		def = defaultMessage
	}
	hit := p.sc.skipBody(bounds) // the preamble
	for hit != nil && hit.idx == own && !hit.close {
		child := &Part{}
		part.Children = append(part.Children, child)
		p.parts++
		if p.parts >= maxParts {
			// Too many parts: the rest of this multipart is one opaque part.
			child.HeaderOffset = p.sc.off
			child.BodyOffset = p.sc.off
			applyMIME(child, nil, defaultText)
			lfStart := p.sc.lfs
			hit = p.sc.skipBody(bounds[:own])
			child.EndOffset, child.Lines = p.end(child.BodyOffset, lfStart, hit)
			return hit
		}
		hit = p.parseEntity(child, depth+1, bounds, def, false)
	}
	if hit != nil && hit.idx == own && hit.close {
		hit = p.sc.skipBody(bounds[:own]) // the epilogue
	}
	return hit
}

// readHeader reads header lines up to and including the empty line that
// ends them. A boundary line also ends them (a part without a body); it is
// returned. At most maxHeaderBytes are kept.
func (p *parser) readHeader(bounds []string) ([]byte, *boundaryHit) {
	sc := p.sc
	var header []byte
	for {
		line, ok := sc.next()
		if !ok {
			return header, nil
		}
		if len(bounds) > 0 {
			if hit := sc.match(line, bounds); hit != nil {
				return header, hit
			}
		}
		if len(header)+len(line.head) <= maxHeaderBytes && line.full {
			header = append(header, line.head...)
		}
		if line.blank() {
			return header, nil
		}
	}
}

func isMessageType(part *Part) bool {
	return strings.EqualFold(part.Type, "message") &&
		(strings.EqualFold(part.Subtype, "rfc822") || strings.EqualFold(part.Subtype, "global"))
}

// identityEncoding reports whether a message/* part can be parsed as it
// is (RFC 2046 5.2.1 allows only 7bit, 8bit and binary).
func identityEncoding(enc string) bool {
	switch strings.ToLower(enc) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// applyMIME fills a part's MIME fields from its header block.
func applyMIME(part *Part, header []byte, def defaultKind) {
	var ctype string
	var haveType bool
	eachField(header, func(name, value, _ []byte) {
		if name == nil || len(name) < 8 || !strings.EqualFold(string(name[:8]), "content-") {
			return
		}
		v := unfold(value)
		switch strings.ToLower(string(name[8:])) {
		case "type":
			if !haveType {
				ctype, haveType = v, true
			}
		case "transfer-encoding":
			if part.Encoding == "" {
				part.Encoding = strings.TrimSpace(stripComments(v))
			}
		case "id":
			setOnce(&part.ID, v)
		case "description":
			setOnce(&part.Description, v)
		case "md5":
			setOnce(&part.MD5, v)
		case "location":
			setOnce(&part.Location, v)
		case "disposition":
			if part.Disposition == "" {
				part.Disposition, part.DispParams = parseMIMEValue(v)
			}
		case "language":
			if part.Language == nil {
				part.Language = parseLanguage(v)
			}
		}
	})
	if part.Encoding == "" {
		part.Encoding = "7bit"
	}
	if haveType {
		value, params := parseMIMEValue(ctype)
		if t, s, ok := strings.Cut(value, "/"); ok {
			t, s = strings.TrimSpace(t), strings.TrimSpace(s)
			if isToken(t) && isToken(s) {
				part.Type, part.Subtype, part.Params = t, s, params
			}
		}
	}
	if part.Type == "" {
		if def == defaultMessage && !haveType {
			part.Type, part.Subtype = "message", "rfc822"
		} else {
			part.Type, part.Subtype, part.Params = "text", "plain", nil
		}
	}
	if strings.EqualFold(part.Type, "text") {
		if _, ok := part.Param("charset"); !ok {
			part.Params = append(part.Params, Param{Name: "charset", Value: "us-ascii"})
		}
	}
}

func setOnce(dst **string, v string) {
	if *dst == nil {
		*dst = &v
	}
}

// parseLanguage splits a Content-Language value (RFC 3282) into tags.
func parseLanguage(v string) []string {
	var tags []string
	for _, t := range strings.Split(stripComments(v), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// isToken reports whether s is a non-empty RFC 2045 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}
