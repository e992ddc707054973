package imapmsg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// maxDecodedPart bounds how much decoded text one part contributes to a
// BODY or TEXT search.
const maxDecodedPart = 32 << 20

// decodeHeaderValue decodes RFC 2047 encoded-words; a value that cannot
// be decoded is returned as written.
func decodeHeaderValue(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := dec.DecodeHeader(v)
	if err != nil {
		return v
	}
	return out
}

// bodyText returns the case-folded decoded text of every text part under
// p, and the decoded headers of encapsulated messages (they are part of
// the outer message's body). With header, p's own header is included.
func bodyText(r io.ReaderAt, p *Part, header bool) ([]string, error) {
	var out []string
	if header {
		h := make([]byte, p.BodyOffset-p.HeaderOffset)
		if _, err := r.ReadAt(h, p.HeaderOffset); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading header: %w", err)
		}
		out = append(out, headerText(h))
	}
	switch {
	case p.IsMultipart():
		for _, c := range p.Children {
			t, err := bodyText(r, c, false)
			if err != nil {
				return nil, err
			}
			out = append(out, t...)
		}
	case p.Message != nil:
		t, err := bodyText(r, p.Message, true)
		if err != nil {
			return nil, err
		}
		out = append(out, t...)
	case strings.EqualFold(p.Type, "text"):
		t, err := decodePart(r, p)
		if err != nil {
			return nil, err
		}
		out = append(out, fold(t))
	}
	return out, nil
}

// decodePart returns the text of a leaf part with its transfer encoding
// and charset undone. Broken encodings yield what could be decoded.
func decodePart(r io.ReaderAt, p *Part) (string, error) {
	raw := make([]byte, min(p.Size(), maxDecodedPart))
	if _, err := r.ReadAt(raw, p.BodyOffset); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading part: %w", err)
	}
	var dec io.Reader
	switch strings.ToLower(p.Encoding) {
	case "quoted-printable":
		dec = quotedprintable.NewReader(bytes.NewReader(raw))
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(raw))
	default:
		dec = bytes.NewReader(raw)
	}
	data, _ := io.ReadAll(io.LimitReader(dec, maxDecodedPart)) // keep what decoded before an error
	cs, _ := p.Param("charset")
	switch strings.ToLower(cs) {
	case "", "utf-8", "utf8", "us-ascii":
		return string(data), nil
	}
	cr, err := charset.Reader(cs, bytes.NewReader(data))
	if err != nil {
		return string(data), nil // unknown charset: search the bytes as they are
	}
	text, _ := io.ReadAll(cr)
	if !utf8.Valid(text) {
		return string(data), nil
	}
	return string(text), nil
}
