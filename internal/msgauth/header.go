package msgauth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// maxHeaderBytes bounds the header block held in memory while signing.
// Postfix truncates headers past header_size_limit (100 KiB); we allow more
// but not without limit.
const maxHeaderBytes = 1 << 20

var (
	// ErrHeaderTooLarge: the header block exceeds maxHeaderBytes.
	ErrHeaderTooLarge = errors.New("message header too large")
	// ErrNoFrom: the message has no usable From header field.
	ErrNoFrom = errors.New("no From address")
	// ErrBadHeader: the message starts with a folded line. A field
	// prepended to it (DKIM-Signature) would swallow that line, so it
	// cannot be signed.
	ErrBadHeader = errors.New("message starts with a continuation line")
)

// header is a message's header block as read: raw bytes (including the
// blank line that ends it, when there is one) and its fields in order.
type header struct {
	raw      []byte
	fields   []field
	complete bool // the blank line was seen (false: the message is all header)
}

type field struct {
	name  string // as written
	value string // unfolded, without the name and colon
}

// readHeader reads the header block from br up to and including the empty
// line (RFC 5322 2.1). Lines may end in CRLF or LF. A line without a colon is
// kept in raw but yields no field, as DKIM verifiers skip it too.
func readHeader(br *bufio.Reader) (*header, error) {
	h := &header{}
	var cur *field
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A very long line: gather it in pieces.
			buf := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(h.raw)+len(buf) <= maxHeaderBytes {
				line, err = br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if len(h.raw)+len(line) > maxHeaderBytes {
			return nil, ErrHeaderTooLarge
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read header: %w", err)
		}
		h.raw = append(h.raw, line...)
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		switch {
		case len(line) > 0 && text == "" && (err == nil):
			h.complete = true
			return h, nil
		case text == "":
			// EOF (possibly after a bare CR): a message with no body.
		case text[0] == ' ' || text[0] == '\t':
			if len(h.raw) == len(line) {
				return nil, ErrBadHeader
			}
			if cur != nil {
				cur.value += text // RFC 5322 2.2.3 unfolding: drop the CRLF only
			}
		default:
			cur = nil
			if i := strings.IndexByte(text, ':'); i > 0 {
				name := strings.TrimRight(text[:i], " \t")
				h.fields = append(h.fields, field{name: name, value: text[i+1:]})
				cur = &h.fields[len(h.fields)-1]
			}
		}
		if errors.Is(err, io.EOF) {
			return h, nil
		}
	}
}

// count returns how many fields are named name (case-insensitive).
func (h *header) count(name string) int {
	n := 0
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			n++
		}
	}
	return n
}

// get returns the first field named name.
func (h *header) get(name string) (string, bool) {
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

// FromDomain returns the domain of the first address in a From header field
// value, normalised as Mailu stores domains (IDNA A-label, lower case).
func FromDomain(value string) (string, error) {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		// The display name is not needed: accept any charset undecoded
		// rather than fail on one the standard library does not know.
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	list, err := p.ParseList(value)
	if err != nil || len(list) == 0 {
		return "", fmt.Errorf("%w: %q", ErrNoFrom, value)
	}
	addr := list[0].Address
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", fmt.Errorf("%w: %q", ErrNoFrom, value)
	}
	d, err := mailaddr.NormalizeDomain(addr[i+1:])
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoFrom, err)
	}
	return d, nil
}
