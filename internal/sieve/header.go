package sieve

import (
	"bytes"
	"mime"
	"strings"

	"github.com/migadu/go-sieve/interp"
)

// field is one header field: its name, its value unfolded (RFC 5228 2.4.2.2
// compares unfolded values) and its raw lines.
type field struct {
	name  string
	value string
	raw   []byte
}

// parseHeader splits a header block into fields; lines that are not fields
// (no colon) are kept as they are, with an empty name.
func parseHeader(h []byte) []field {
	var out []field
	for len(h) > 0 {
		end := nextLine(h)
		// Continuation lines start with white space (RFC 5322 2.2.3).
		for end < len(h) && (h[end] == ' ' || h[end] == '\t') {
			end += nextLine(h[end:])
		}
		raw := h[:end]
		h = h[end:]
		line := bytes.TrimRight(raw, "\r\n")
		if len(line) == 0 {
			break // the empty line that ends the header
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			out = append(out, field{raw: raw})
			continue
		}
		v := string(value)
		if strings.ContainsAny(v, "\r\n") {
			v = unfold.Replace(v)
		}
		out = append(out, field{name: string(bytes.TrimSpace(name)), value: strings.TrimSpace(v), raw: raw})
	}
	return out
}

var unfold = strings.NewReplacer("\r\n", "", "\n", "", "\r", "")

// nextLine is the length of the first line of b, line end included.
func nextLine(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i + 1
	}
	return len(b)
}

// EditHeader applies editheader actions (RFC 5293) to a header block
// (without its final empty line) and returns the new block, also without
// it. Values edits name
// were seen unfolded, as parseHeader gives them.
func EditHeader(header []byte, edits []interp.HeaderEdit) []byte {
	fields := parseHeader(header)
	for _, e := range edits {
		switch e.Action {
		case "add":
			f := field{name: e.FieldName, value: e.Value, raw: newField(e.FieldName, e.Value)}
			if e.Last {
				fields = append(fields, f)
			} else {
				fields = append([]field{f}, fields...)
			}
		case "delete":
			fields = deleteFields(fields, e)
		}
	}
	var b bytes.Buffer
	for _, f := range fields {
		b.Write(f.raw)
		if !bytes.HasSuffix(f.raw, []byte("\n")) {
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

func deleteFields(fields []field, e interp.HeaderEdit) []field {
	var idx []int // positions of the named fields, top to bottom
	for i, f := range fields {
		if strings.EqualFold(f.name, e.FieldName) {
			idx = append(idx, i)
		}
	}
	drop := map[int]bool{}
	switch {
	case e.Index > 0:
		n := e.Index - 1
		if e.Last {
			n = len(idx) - e.Index
		}
		if n >= 0 && n < len(idx) {
			drop[idx[n]] = true
		}
	case e.Value != "":
		for _, i := range idx {
			if fields[i].value == e.Value {
				drop[i] = true
				break
			}
		}
	default:
		for _, i := range idx {
			drop[i] = true
		}
	}
	out := fields[:0:0]
	for i, f := range fields {
		if !drop[i] {
			out = append(out, f)
		}
	}
	return out
}

// newField writes "Name: value" CRLF; non-ASCII values become RFC 2047
// encoded-words (RFC 5293 4), line breaks become spaces.
func newField(name, value string) []byte {
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, value)
	for i := 0; i < len(value); i++ {
		if value[i] >= 0x80 {
			value = mime.QEncoding.Encode("utf-8", value)
			break
		}
	}
	return []byte(name + ": " + value + "\r\n")
}

// ErrorField is the header field a copy kept after a failed run carries,
// so the user sees why their script did not apply.
const ErrorField = "X-Sieve-Error"

// ErrorHeader is the ErrorField line for a failure of the named script.
func ErrorHeader(script string, err error) []byte {
	msg := strings.Join(strings.Fields(script+": "+err.Error()), " ")
	if len(msg) > 900 {
		msg = msg[:900]
	}
	return newField(ErrorField, msg+"; message kept in INBOX")
}
