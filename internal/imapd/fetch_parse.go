package imapd

import (
	"strconv"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// fetchKind is one FETCH data item (RFC 9051 6.4.5).
type fetchKind int

const (
	fetchUID fetchKind = iota
	fetchFlags
	fetchInternalDate
	fetchSize
	fetchEnvelope
	fetchBodyStructure
	fetchBody // BODY without a section: the non-extensible BODYSTRUCTURE
	fetchSection
	fetchModSeq
	fetchSaveDate // RFC 8514 4.1
	fetchEmailID  // RFC 8474 5.1
	fetchThreadID // RFC 8474 5.2
	fetchPreview  // RFC 8970 3
	// RFC 3516 BINARY[part]<partial> and BINARY.SIZE[part]: the part's
	// content with its transfer encoding undone.
	fetchBinary
	fetchBinarySize
)

// fetchItem is one requested data item.
type fetchItem struct {
	kind fetchKind
	// For fetchSection (and fetchBinary, fetchBinarySize): the name the response uses ("BODY[1.MIME]<0>",
	// "RFC822.TEXT"), the section, the partial range and whether the
	// fetch leaves \Seen alone (BODY.PEEK, RFC822.HEADER).
	name    string
	section imapmsg.Section
	partial *imapmsg.Partial
	peek    bool
}

// fetchRequest is a parsed FETCH command.
type fetchRequest struct {
	set          numSet
	items        []fetchItem
	changedSince uint64 // RFC 7162 3.3.1 CHANGEDSINCE; 0 if absent
	hasChanged   bool
	vanished     bool // RFC 7162 3.6 VANISHED modifier
	// saveDates are the save dates of the fetched UIDs, loaded once
	// when the request has SAVEDATE (RFC 8514).
	saveDates map[uint32]time.Time
}

// has reports whether the request asks for an item of kind k.
func (r *fetchRequest) has(k fetchKind) bool {
	for _, it := range r.items {
		if it.kind == k {
			return true
		}
	}
	return false
}

// setsSeen reports whether the request reads a body without PEEK (RFC
// 9051 6.4.5: BODY[section] implicitly sets \Seen).
func (r *fetchRequest) setsSeen() bool {
	for _, it := range r.items {
		if (it.kind == fetchSection || it.kind == fetchBinary) && !it.peek {
			return true
		}
	}
	return false
}

// need is how much of each message the request reads.
func (r *fetchRequest) need() need {
	n := needNothing
	for _, it := range r.items {
		switch it.kind {
		case fetchEnvelope:
			n = max(n, needHeader)
		case fetchBodyStructure, fetchBody, fetchPreview:
			n = needStructure
		case fetchSection, fetchBinary, fetchBinarySize:
			if len(it.section.Part) > 0 {
				n = needStructure
			} else {
				n = max(n, needHeader)
			}
		}
	}
	return n
}

// bytes is which message bytes the request's sections read: none, only
// the root's header block, or more.
func (r *fetchRequest) bytes() wantBytes {
	w := bytesNone
	for _, it := range r.items {
		if it.kind == fetchPreview || it.kind == fetchBinary || it.kind == fetchBinarySize {
			return bytesAll
		}
		if it.kind != fetchSection {
			continue
		}
		switch it.section.Specifier {
		case imapmsg.SpecHeader, imapmsg.SpecHeaderFields, imapmsg.SpecHeaderFieldsNot:
			if len(it.section.Part) == 0 {
				w = max(w, bytesHeader)
				continue
			}
		}
		return bytesAll
	}
	return w
}

// previewModifier reads one RFC 8970 preview-mod.
func (r *fetchRequest) previewModifier(d *decoder) bool {
	if !strings.EqualFold(d.Atom(), "LAZY") {
		d.fail("Unknown PREVIEW modifier")
		return false
	}
	return true
}

// parseFetch reads the arguments of FETCH / UID FETCH:
// sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att
// *(SP fetch-att) ")") [SP "(" fetch-modifier *(SP fetch-modifier) ")"].
func parseFetch(d *decoder) (*fetchRequest, error) {
	req := &fetchRequest{}
	d.SP()
	req.set = d.SeqSetOrSaved()
	d.SP()
	if d.Is('(') {
		d.List(func() bool { return req.item(d) })
	} else if d.Err() == nil {
		switch name := upperASCII(d.run(fetchNameChar)); name {
		// RFC 9051 6.4.5: the macros, valid only on their own.
		case "ALL":
			req.simple(fetchFlags, fetchInternalDate, fetchSize, fetchEnvelope)
		case "FAST":
			req.simple(fetchFlags, fetchInternalDate, fetchSize)
		case "FULL":
			req.simple(fetchFlags, fetchInternalDate, fetchSize, fetchEnvelope, fetchBody)
		default:
			req.named(d, name)
		}
	}
	if d.Accept(' ') {
		d.List(func() bool {
			switch upperASCII(d.Atom()) {
			case "CHANGEDSINCE":
				d.SP()
				req.changedSince = d.Number64()
				req.hasChanged = true
			case "VANISHED":
				req.vanished = true
			case "LAZY":
				// "FETCH 1 PREVIEW (LAZY)": the item's own modifier.
				if !req.has(fetchPreview) || len(req.items) != 1 {
					d.fail("Unknown FETCH modifier")
					return false
				}
			default:
				d.fail("Unknown FETCH modifier")
				return false
			}
			return d.Err() == nil
		})
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	if len(req.items) == 0 {
		return nil, bad("No FETCH items")
	}
	return req, nil
}

// fetchNameChar is the alphabet of data item names: atom characters up
// to the "[" of a section.
func fetchNameChar(c byte) bool { return isAtomChar(c) && c != '[' }

func (r *fetchRequest) simple(kinds ...fetchKind) {
	for _, k := range kinds {
		if !r.has(k) {
			r.items = append(r.items, fetchItem{kind: k})
		}
	}
}

// item reads one fetch-att inside the parenthesised list.
func (r *fetchRequest) item(d *decoder) bool {
	if n := len(r.items); d.Is('(') && n > 0 && r.items[n-1].kind == fetchPreview {
		// RFC 8970 3: PREVIEW's modifiers, "(LAZY)". Petrel makes the
		// preview from the message at once, so LAZY changes nothing.
		return d.List(func() bool { return r.previewModifier(d) })
	}
	name := upperASCII(d.run(fetchNameChar))
	if name == "" {
		d.fail("Expected a FETCH item")
		return false
	}
	r.named(d, name)
	return d.Err() == nil
}

// named handles a data item whose name has been read.
func (r *fetchRequest) named(d *decoder, name string) {
	switch name {
	case "UID":
		r.simple(fetchUID)
	case "FLAGS":
		r.simple(fetchFlags)
	case "INTERNALDATE":
		r.simple(fetchInternalDate)
	case "RFC822.SIZE":
		r.simple(fetchSize)
	case "ENVELOPE":
		r.simple(fetchEnvelope)
	case "BODYSTRUCTURE":
		r.simple(fetchBodyStructure)
	case "MODSEQ":
		r.simple(fetchModSeq)
	case "SAVEDATE":
		r.simple(fetchSaveDate)
	case "EMAILID":
		r.simple(fetchEmailID)
	case "THREADID":
		r.simple(fetchThreadID)
	case "PREVIEW":
		r.simple(fetchPreview)
	case "RFC822":
		r.items = append(r.items, fetchItem{kind: fetchSection, name: "RFC822"})
	case "RFC822.HEADER":
		r.items = append(r.items, fetchItem{kind: fetchSection, name: "RFC822.HEADER",
			section: imapmsg.Section{Specifier: imapmsg.SpecHeader}, peek: true})
	case "RFC822.TEXT":
		r.items = append(r.items, fetchItem{kind: fetchSection, name: "RFC822.TEXT",
			section: imapmsg.Section{Specifier: imapmsg.SpecText}})
	case "BODY", "BODY.PEEK":
		if !d.Is('[') {
			if name == "BODY.PEEK" {
				d.fail("BODY.PEEK needs a section")
				return
			}
			r.simple(fetchBody)
			return
		}
		it := fetchItem{kind: fetchSection, peek: name == "BODY.PEEK"}
		it.section, it.partial = parseSectionArg(d)
		if d.Err() != nil {
			return
		}
		it.name = "BODY[" + it.section.String() + "]"
		if it.partial != nil {
			it.name += "<" + strconv.FormatInt(it.partial.Offset, 10) + ">"
		}
		r.items = append(r.items, it)
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		// RFC 3516 4.1: section-binary = "[" [section-part] "]".
		it := fetchItem{kind: fetchBinary, peek: name == "BINARY.PEEK"}
		if name == "BINARY.SIZE" {
			it.kind = fetchBinarySize
		}
		it.section, it.partial = parseSectionArg(d)
		if d.Err() != nil {
			return
		}
		if it.section.Specifier != imapmsg.SpecNone || (it.kind == fetchBinarySize && it.partial != nil) {
			d.fail("Invalid binary section")
			return
		}
		if it.kind == fetchBinarySize {
			it.name = "BINARY.SIZE[" + it.section.String() + "]"
		} else {
			it.name = "BINARY[" + it.section.String() + "]"
		}
		if it.partial != nil {
			it.name += "<" + strconv.FormatInt(it.partial.Offset, 10) + ">"
		}
		r.items = append(r.items, it)
	default:
		d.fail("Unknown FETCH item")
	}
}

// parseSectionArg reads "[" section-spec "]" ["<" number "." nz-number ">"].
// Header field names may be atoms, quoted strings or literals.
func parseSectionArg(d *decoder) (imapmsg.Section, *imapmsg.Partial) {
	d.Expect('[', `"["`)
	spec := d.run(isAtomChar)
	var fields []string
	if d.Accept(' ') {
		d.List(func() bool {
			fields = append(fields, d.AString())
			return d.Err() == nil
		})
	}
	d.Expect(']', `"]"`)
	if d.Err() != nil {
		return imapmsg.Section{}, nil
	}
	if len(fields) > 0 {
		var b []byte
		for i, f := range fields {
			if i > 0 {
				b = append(b, ' ')
			}
			b = imapmsg.AppendString(b, f)
		}
		spec += " (" + string(b) + ")"
	}
	sec, err := imapmsg.ParseSection(spec)
	if err != nil || strings.ContainsAny(strings.Join(fields, ""), "\r\n") {
		d.fail("Invalid section")
		return imapmsg.Section{}, nil
	}
	if !d.Accept('<') {
		return sec, nil
	}
	digits := d.run(func(c byte) bool { return c >= '0' && c <= '9' || c == '.' })
	d.Expect('>', `">"`)
	p, err := imapmsg.ParsePartial(digits)
	if d.Err() == nil && err != nil {
		d.fail("Invalid partial range")
	}
	return sec, &p
}
