package imapmsg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
)

// ErrUnknownCTE is a part whose Content-Transfer-Encoding Petrel cannot
// decode (RFC 3516 4.3: NO [UNKNOWN-CTE]).
var ErrUnknownCTE = errors.New("unknown content transfer encoding")

// Binary returns the content of the part that path names with its
// transfer encoding undone (RFC 3516 BINARY[section-part]): base64 and
// quoted-printable are decoded, 7bit, 8bit and binary are the bytes as
// they are, and the whole message (no path) is BODY[]. A path that names
// no part is empty, as in Extract.
func (st *Structure) Binary(r io.ReaderAt, path []int) ([]byte, error) {
	if st.Shallow && len(path) > 0 {
		return nil, fmt.Errorf("imapmsg: binary section needs the full structure (Parse, not ParseHeader)")
	}
	if len(path) == 0 {
		return readWindow(r, 0, st.Size)
	}
	p := st.Find(path)
	if p == nil {
		return nil, nil
	}
	raw, err := readWindow(r, p.BodyOffset, p.EndOffset)
	if err != nil {
		return nil, err
	}
	switch enc := strings.ToLower(strings.TrimSpace(p.Encoding)); enc {
	case "", "7bit", "8bit", "binary":
		return raw, nil
	case "base64":
		return decodeBase64(raw), nil
	case "quoted-printable":
		// Broken quoted-printable yields what decoded before the error,
		// as Dovecot does for a part it can still show.
		out, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		return out, nil
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownCTE, enc)
	}
}

func readWindow(r io.ReaderAt, start, end int64) ([]byte, error) {
	b := make([]byte, end-start)
	n, err := r.ReadAt(b, start)
	if n == len(b) {
		return b, nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("imapmsg: reading part: %w", err)
}

// decodeBase64 decodes base64 leniently: RFC 2045 6.8 says characters
// outside the alphabet are ignored (line breaks, stray spaces), and
// decoding stops at the padding.
func decodeBase64(raw []byte) []byte {
	clean := make([]byte, 0, len(raw))
	for _, c := range raw {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			// Padding ends the data.
			for len(clean)%4 != 0 {
				clean = append(clean, '=')
			}
			return decodeClean(clean)
		}
	}
	// Unpadded input: drop a dangling sixth bit group.
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	return decodeClean(clean)
}

func decodeClean(clean []byte) []byte {
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, bytes.TrimRight(clean, "="))
	return out[:n]
}

// EncodeBinaryParts is RFC 3516 4.4 for a message APPENDed as literal8
// that holds NUL bytes: every leaf part whose body has a NUL is
// rewritten as base64 (its Content-Transfer-Encoding replaced), so that
// BODY[] stays a valid IMAP literal while BINARY[] returns the original
// bytes. ok is false when a NUL is outside any leaf body (in a header or
// between parts): such a message cannot be stored.
func EncodeBinaryParts(msg []byte) (out []byte, ok bool) {
	if bytes.IndexByte(msg, 0) < 0 {
		return msg, true
	}
	st := ParseBytes(msg)
	var leaves []*Part
	var walk func(p *Part)
	walk = func(p *Part) {
		switch {
		case p.IsMultipart():
			for _, c := range p.Children {
				walk(c)
			}
		case p.Message != nil && p.Message.EndOffset > p.Message.HeaderOffset:
			walk(p.Message)
		default:
			if bytes.IndexByte(msg[p.BodyOffset:p.EndOffset], 0) >= 0 {
				leaves = append(leaves, p)
			}
		}
	}
	walk(st.Root)
	out = make([]byte, 0, len(msg)*4/3+256)
	pos := int64(0)
	for _, p := range leaves {
		if p.HeaderOffset < pos {
			return nil, false // nested inside a part already rewritten
		}
		out = append(out, msg[pos:p.HeaderOffset]...)
		eachField(msg[p.HeaderOffset:p.BodyOffset], func(name, _, raw []byte) {
			if !strings.EqualFold(string(name), "Content-Transfer-Encoding") {
				out = append(out, raw...)
				if !bytes.HasSuffix(raw, []byte("\n")) {
					out = append(out, "\r\n"...)
				}
			}
		})
		out = append(out, "Content-Transfer-Encoding: base64\r\n\r\n"...)
		body := msg[p.BodyOffset:p.EndOffset]
		for len(body) > 0 {
			n := min(len(body), 57) // 76 characters a line (RFC 2045 6.8)
			out = base64.StdEncoding.AppendEncode(out, body[:n])
			out = append(out, "\r\n"...)
			body = body[n:]
		}
		pos = p.EndOffset
	}
	out = append(out, msg[pos:]...)
	if bytes.IndexByte(out, 0) >= 0 {
		return nil, false
	}
	return out, true
}
