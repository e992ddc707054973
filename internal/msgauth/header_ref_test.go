package msgauth

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// readHeaderRef is readHeader as it was before it read the block first
// and split it once (one string per line then): the reference that
// FuzzReadHeaderRef holds the faster one to.
func readHeaderRef(br *bufio.Reader) (*header, error) {
	h := &header{}
	var raw []byte
	done := func() (*header, error) { h.text = string(raw); return h, nil }
	var cur *field
	for {
		line, err := nextLine(br, len(raw)) // the line reading did not change
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		raw = append(raw, line...)
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		switch {
		case len(line) > 0 && text == "" && (err == nil):
			h.complete = true
			return done()
		case text == "":
		case text[0] == ' ' || text[0] == '\t':
			if len(raw) == len(line) {
				return nil, ErrBadHeader
			}
			if cur != nil {
				cur.value += text
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
			return done()
		}
	}
}

// FuzzReadHeaderRef: readHeader gives the reference's fields, raw bytes,
// completeness and errors, on any input.
func FuzzReadHeaderRef(f *testing.F) {
	for _, s := range []string{
		"From: a@b\r\nDKIM-Signature: v=1;\r\n\ta=rsa-sha256;\r\n b=x\r\nX:\r\n\r\nbody",
		" folded first\r\n\r\n",
		"no colon\nA: 1\n  more\n\nbody\n",
		"A: 1\r\n\tcont\r",
		"A:\r\r\nB :x\r\n",
		"",
		"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, gerr := readHeader(bufio.NewReaderSize(bytes.NewReader(msg), 16))
		want, werr := readHeaderRef(bufio.NewReaderSize(bytes.NewReader(msg), 16))
		if !errors.Is(gerr, werr) && (gerr == nil || werr == nil || gerr.Error() != werr.Error()) {
			t.Fatalf("error %v, reference %v", gerr, werr)
		}
		if gerr != nil {
			return
		}
		if got.text != want.text || got.complete != want.complete {
			t.Fatalf("text %q complete %v, reference %q %v", got.text, got.complete, want.text, want.complete)
		}
		if len(got.fields) != len(want.fields) || (len(got.fields) > 0 && !reflect.DeepEqual(got.fields, want.fields)) {
			t.Fatalf("fields %q, reference %q", got.fields, want.fields)
		}
	})
}
