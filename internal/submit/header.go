package submit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxHeaderBytes bounds the header block a submission may have. Postfix
// truncates past header_size_limit (100 KiB); Petrel allows more but not
// without limit, and stays below msgauth's own bound (1 MiB) so that the
// fields Prepare adds never make a signable header unsignable.
const MaxHeaderBytes = 1000 << 10

// ErrHeaderTooLarge: the header block exceeds MaxHeaderBytes.
var ErrHeaderTooLarge = errors.New("message header too large")

// field is one header field as the client wrote it.
type field struct {
	name string // as written, without trailing blanks
	raw  []byte // every line of the field, with its line ends
}

// header is a message's header block.
type header struct {
	fields []field
	// rest is a body line read while looking for the header's end: a
	// line that is not a header field, which the client sent without the
	// empty line in front.
	rest []byte
}

// readHeader reads the header block from br (RFC 5322 2.1, 2.2). A line
// that is neither a field nor the continuation of one ends the header and
// is kept in rest: it is the first body line, and the caller puts the
// empty line in front of it that the client left out.
func readHeader(br *bufio.Reader) (*header, error) {
	h := &header{}
	size := 0
	for {
		line, err := readLine(br, MaxHeaderBytes-size)
		size += len(line)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		switch {
		case len(line) == 0:
			return h, nil // end of the message
		case isBlank(line):
			return h, nil
		case line[0] == ' ' || line[0] == '\t':
			if len(h.fields) == 0 {
				h.rest = line // a folded line cannot start a header
				return h, nil
			}
			f := &h.fields[len(h.fields)-1]
			f.raw = append(f.raw, line...)
		default:
			name, ok := fieldName(line)
			if !ok {
				h.rest = line
				return h, nil
			}
			h.fields = append(h.fields, field{name: name, raw: line})
		}
		if errors.Is(err, io.EOF) {
			return h, nil
		}
	}
}

// readLine reads one line with its line end, refusing to hold more than
// limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > limit {
			return nil, ErrHeaderTooLarge
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read header: %w", err)
		}
		return buf, err
	}
}

func isBlank(line []byte) bool {
	s := string(line)
	return s == "\r\n" || s == "\n"
}

// fieldName returns the name of a field line: printable US-ASCII other
// than the colon (RFC 5322 2.2 ftext), then the colon. Blanks before the
// colon (RFC 5322 4.5 obs-optional) are allowed and dropped from the name.
func fieldName(line []byte) (string, bool) {
	i := strings.IndexByte(string(line), ':')
	if i <= 0 {
		return "", false
	}
	name := strings.TrimRight(string(line[:i]), " \t")
	if name == "" {
		return "", false
	}
	for j := range len(name) {
		if c := name[j]; c < 33 || c > 126 {
			return "", false
		}
	}
	return name, true
}

// has reports whether a field named name is present (case-insensitive).
func (h *header) has(name string) bool {
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

// get returns the value of the first field named name, unfolded.
func (h *header) get(name string) (string, bool) {
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			v := string(f.raw[strings.IndexByte(string(f.raw), ':')+1:])
			return strings.NewReplacer("\r\n", "", "\n", "").Replace(v), true
		}
	}
	return "", false
}

// scrubbed lists the fields Mailu's outclean cleanup service drops from
// every submitted message (core/postfix/conf/outclean_header_filter.cf,
// from Mail-in-a-Box): trace and client fields that reveal the sender's
// address, software or keys. Received goes entirely, Petrel's own
// included, as since Mailu PR #2002.
func scrubbed(name string) bool {
	switch strings.ToLower(name) {
	case "received", "user-agent", "x-enigmail", "x-mailer", "x-originating-ip", "x-pgp-agent":
		return true
	}
	return false
}

// mimeVersionCut returns how much of a MIME-Version field to keep when a
// comment follows the version, as outclean's
// /^\s*(Mime-Version:\s*[0-9\.]+)\s.+/ REPLACE $1 does: "MIME-Version: 1.0
// (Mac OS X Mail 16.0 \(3731\))" names the client. It returns -1 when the
// field stays as it is.
func mimeVersionCut(raw []byte) int {
	s := string(raw)
	i := strings.IndexByte(s, ':') + 1
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start := i
	for i < len(s) && (s[i] == '.' || '0' <= s[i] && s[i] <= '9') {
		i++
	}
	if i == start || i == len(s) || !isSpace(s[i]) {
		return -1
	}
	if strings.TrimSpace(s[i:]) == "" {
		return -1 // only trailing blanks: nothing to hide
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
