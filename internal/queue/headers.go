package queue

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
)

// maxDSNHeaders bounds the original headers a DSN quotes.
const maxDSNHeaders = 64 << 10

// readHeaders returns the header block of a message (without the blank
// line that ends it) with CRLF line endings, cut at a field boundary when
// it is longer than limit, and with over-long lines shortened to the
// 998-octet limit of RFC 5322 2.1.1.
func readHeaders(r io.Reader, limit int) ([]byte, error) {
	br := bufio.NewReaderSize(r, 4096)
	var out bytes.Buffer
	fieldStart := 0 // where the field being read starts in out
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An over-long line: keep its start, skip the rest.
			line = bytes.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		full := err == nil
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			break // the blank line, or the end of the message
		}
		text = bytes.ReplaceAll(text, []byte("\r"), []byte(" ")) // no bare CR in the DSN
		if len(text) > 998 {
			text = text[:998]
		}
		if text[0] != ' ' && text[0] != '\t' {
			fieldStart = out.Len()
		}
		if out.Len()+len(text)+2 > limit {
			out.Truncate(fieldStart)
			break
		}
		out.Write(text)
		out.WriteString("\r\n")
		if !full {
			break
		}
	}
	return out.Bytes(), nil
}

// headerValue returns the unfolded value of the first field called name.
func headerValue(hdr []byte, name string) string {
	var val strings.Builder
	in := false
	for _, line := range strings.Split(string(hdr), "\r\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if in {
				val.WriteString(" " + strings.TrimSpace(line))
			}
			continue
		}
		if in {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			in = true
			val.WriteString(strings.TrimSpace(v))
		}
	}
	return val.String()
}

// isDSN reports whether headers belong to a delivery report: no DSN is
// ever sent about one (RFC 3464 1, RFC 5321 6.1 against mail loops).
func isDSN(hdr []byte) bool {
	mt, params, err := mime.ParseMediaType(headerValue(hdr, "Content-Type"))
	if err != nil {
		return false
	}
	return mt == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status")
}
