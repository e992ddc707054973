package imapmsg

import "strings"

// StoredField is one of the header fields a server can keep precomputed
// per message so that SEARCH need not read the header block (see
// SearchFields and FieldSource). The order is the store's
// (store.HeaderField).
type StoredField int

const (
	StoredSubject   StoredField = iota // SUBJECT, HEADER Subject
	StoredFrom                         // FROM (envelope addresses)
	StoredTo                           // TO
	StoredCc                           // CC
	StoredBcc                          // BCC
	StoredMessageID                    // HEADER Message-ID
	NumStoredFields
)

// FieldSep joins the values of a field that occurs more than once: NUL,
// which no IMAP search string holds (RFC 9051 4.3: CHAR8 excludes it), so
// no needle matches across two occurrences.
const FieldSep = "\x00"

// FieldSource is implemented by a MessageView that has a message's
// stored fields (SearchFields' values). ok false means it does not have
// this one (for example a value too long to store): the header is read.
// value is only read during the call, so a source can hand out its own
// bytes instead of a copy per message.
type FieldSource interface {
	StoredField(f StoredField) (value []byte, ok bool)
}

// storedFieldNames are the header field names behind each StoredField.
var storedFieldNames = [NumStoredFields]string{"Subject", "From", "To", "Cc", "Bcc", "Message-ID"}

// SearchFields computes, from a header block, the values that SEARCH
// compares for each StoredField: case-folded, decoded (RFC 2047), the
// address fields as their envelope addresses (AddressText), several
// occurrences joined by FieldSep; "" when the field is absent.
func SearchFields(header []byte) [NumStoredFields]string {
	var parts [NumStoredFields][]string
	eachField(header, func(name, value, _ []byte) {
		if name == nil {
			return
		}
		for f, n := range storedFieldNames {
			if equalFold(name, n) {
				parts[f] = append(parts[f], fieldText(StoredField(f), unfold(value)))
				return
			}
		}
	})
	var out [NumStoredFields]string
	for f := range parts {
		out[f] = strings.Join(parts[f], FieldSep)
	}
	return out
}

// fieldText is the folded search text of one occurrence of field f with
// the unfolded value raw.
func fieldText(f StoredField, raw string) string {
	switch f {
	case StoredFrom, StoredTo, StoredCc, StoredBcc:
		return fold(AddressText(raw))
	}
	return fold(decodeHeaderValue(raw))
}

// AddressText is an address header as SEARCH FROM, TO, CC and BCC see it:
// RFC 3501 6.4.4 compares them with the envelope structure, so the text
// is the parsed addresses written out again, "name <mailbox@host>" or
// "mailbox@host", names decoded (RFC 2047), comments and quoting gone,
// groups as "name: ...;", separated by ", ". That is what Dovecot
// matches (message_address_write), so "FROM smith" finds the name or the
// mailbox and "FROM example.org" the host.
func AddressText(raw string) string {
	list := parseAddressList(raw)
	var b strings.Builder
	for i, a := range list {
		if i > 0 && !a.GroupEnd && !list[i-1].GroupStart {
			b.WriteString(", ")
		}
		switch {
		case a.GroupStart:
			b.WriteString(decodeHeaderValue(a.Mailbox))
			b.WriteString(": ")
		case a.GroupEnd:
			b.WriteString(";")
		default:
			if a.Name != "" {
				b.WriteString(decodeHeaderValue(a.Name))
				b.WriteString(" <")
			}
			b.WriteString(a.Mailbox)
			b.WriteString("@")
			b.WriteString(a.Host)
			if a.Name != "" {
				b.WriteString(">")
			}
		}
	}
	return b.String()
}

// storedField returns the StoredField that answers a HEADER key (field
// name, address semantics), or -1 when none does.
func storedField(name string, address bool) StoredField {
	for f, n := range storedFieldNames {
		if !strings.EqualFold(name, n) {
			continue
		}
		switch sf := StoredField(f); sf {
		case StoredFrom, StoredTo, StoredCc, StoredBcc:
			if address {
				return sf
			}
		default:
			if !address {
				return sf
			}
		}
	}
	return -1
}

// storedKey returns the StoredField that answers k, or -1 when k must
// read the header: an empty value asks whether the field exists at all
// (RFC 9051 6.4.4), which the stored text does not tell.
func storedKey(k *SearchKey) StoredField {
	if k.Op != SearchHeader || k.Value == "" || strings.Contains(k.Value, FieldSep) {
		return -1
	}
	return storedField(k.Field, k.Address)
}

// StoredFields lists the stored fields the tree can use, each once.
func (k *SearchKey) StoredFields() []StoredField {
	var seen [NumStoredFields]bool
	var out []StoredField
	var walk func(k *SearchKey)
	walk = func(k *SearchKey) {
		if f := storedKey(k); f >= 0 && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
		for i := range k.Sub {
			walk(&k.Sub[i])
		}
	}
	walk(k)
	return out
}

// NeedsHeader is ReadsHeader for a server whose messages have every
// stored field: whether some key must still read header blocks.
func (k *SearchKey) NeedsHeader() bool {
	switch k.Op {
	case SearchText, SearchSentBefore, SearchSentOn, SearchSentSince:
		return true
	case SearchHeader:
		return storedKey(k) < 0
	}
	for i := range k.Sub {
		if k.Sub[i].NeedsHeader() {
			return true
		}
	}
	return false
}
