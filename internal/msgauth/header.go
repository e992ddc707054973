package msgauth

import (
	"bufio"
	"bytes"
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

// header is a message's header block as read: its text (including the
// blank line that ends it, when there is one) and its fields in order.
type header struct {
	text     string // the bytes as read; the fields' strings share it
	fields   []field
	complete bool // the blank line was seen (false: the message is all header)
}

type field struct {
	name  string // as written
	value string // unfolded, without the name and colon
}

// readHeader reads the header block from br up to and including the empty
// line (RFC 5322 2.1). Lines may end in CRLF or LF. A line without a colon is
// kept in the text but yields no field, as DKIM verifiers skip it too.
func readHeader(br *bufio.Reader) (*header, error) {
	h := &header{}
	var raw strings.Builder // becomes text without a copy
	raw.Grow(headerSize(br))
	for {
		line, err := nextLine(br, raw.Len())
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if raw.Len() == 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return nil, ErrBadHeader
		}
		raw.Write(line)
		if err == nil && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			h.complete = true // the blank line
			break
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	h.text = raw.String()
	h.fields = parseFields(h.text)
	return h, nil
}

// nextLine reads one line of a header block from br, gathering a line
// longer than br's buffer; have is how many header bytes came before it.
// The error is nil, io.EOF (the line is the last) or the reason to stop.
func nextLine(br *bufio.Reader, have int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A very long line: gather it in pieces.
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && have+len(buf) <= maxHeaderBytes {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if have+len(line) > maxHeaderBytes {
		return nil, ErrHeaderTooLarge
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return line, err
}

// headerGuess is the room readHeader makes for a header whose end is not
// in br's buffer: most fit, so raw grows without a copy.
const headerGuess = 2 << 10

// headerSize is the size of the header block when its end is already in
// br's buffer (the usual case), else headerGuess.
func headerSize(br *bufio.Reader) int {
	br.Peek(1) // fills the buffer; an error is readHeader's to see
	b, _ := br.Peek(br.Buffered())
	if len(b) > 0 && (b[0] == '\n' || b[0] == '\r') {
		return 2 // an empty header: the blank line alone
	}
	end := -1
	if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
		end = i + 3
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	if end < 0 {
		return headerGuess
	}
	return end
}

// parseFields splits a header block into its fields, their names and
// values substrings of s; only a folded value is a string of its own.
func parseFields(s string) []field {
	fields := make([]field, 0, 16)
	var unfolded []byte // the folded value being joined, when folded
	folded := false
	end := func() {
		if folded {
			fields[len(fields)-1].value = string(unfolded)
			folded = false
		}
	}
	inField := false
	for s != "" {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line = s[:i+1]
		}
		s = s[len(line):]
		text := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case text == "":
			// The blank line, or a bare CR at the end of the input.
		case text[0] == ' ' || text[0] == '\t':
			if inField {
				// RFC 5322 2.2.3 unfolding: drop the CRLF only.
				if !folded {
					unfolded = append(unfolded[:0], fields[len(fields)-1].value...)
					folded = true
				}
				unfolded = append(unfolded, text...)
			}
		default:
			end()
			inField = false
			if i := strings.IndexByte(text, ':'); i > 0 {
				fields = append(fields, field{name: strings.TrimRight(text[:i], " \t"), value: text[i+1:]})
				inField = true
			}
		}
	}
	end()
	return fields
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
