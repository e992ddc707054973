package imapd

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 5.1.3): IMAP4rev1 clients send and expect
// non-ASCII mailbox names this way; IMAP4rev2 uses UTF-8 (RFC 9051 5.1).
// Names are stored as UTF-8.

var utf7Enc = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

var errBadUTF7 = errors.New("mailbox name is not valid modified UTF-7")

// encodeUTF7 turns a UTF-8 name into modified UTF-7.
func encodeUTF7(s string) string {
	var b strings.Builder
	var run []rune // non-ASCII characters waiting to be encoded
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 2*len(u))
		for i, x := range u {
			buf[2*i] = byte(x >> 8)
			buf[2*i+1] = byte(x)
		}
		b.WriteByte('&')
		b.WriteString(utf7Enc.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// decodeUTF7 turns a modified UTF-7 name into UTF-8.
func decodeUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return "", errBadUTF7
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errBadUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errBadUTF7
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := utf7Enc.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", errBadUTF7
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if r == utf8.RuneError || (r >= 0x20 && r <= 0x7e) {
				// Unpaired surrogates, or ASCII that must be sent as itself.
				return "", errBadUTF7
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
