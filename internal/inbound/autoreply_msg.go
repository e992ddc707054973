package inbound

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"

	"github.com/petrelmail/petrel/internal/sieve"
	"github.com/petrelmail/petrel/internal/store"
)

// Limits of the reply message.
const (
	// maxReplySubject: longer subjects are cut (Dovecot:
	// SIEVE_MAX_SUBJECT_HEADER_CODEPOINTS).
	maxReplySubject = 256
	// maxReplyName bounds display names (Mailu: displayed_name is 160).
	maxReplyName = 160
	// maxReferences: a longer References field keeps its newest ids.
	maxReferences = 2000
)

// replyInput is what a reply is made of.
type replyInput struct {
	user      *store.User
	envSender string
	orig      *textproto.Header
	now       time.Time
	messageID string // without the angle brackets
	// vacation, when set, is a Sieve vacation action: its subject, body
	// and :mime replace the user's reply_* fields, and from (already
	// checked to be the user's address) the default From.
	vacation *sieve.Vacation
	from     string
}

// buildReply writes the reply message (RFC 3834 3, as Dovecot's vacation
// writes it).
func buildReply(in replyInput) ([]byte, error) {
	u := in.user
	if u.Email == "" {
		return nil, errors.New("user without address")
	}
	var b bytes.Buffer
	// Mailu: `:from "\"<displayed_name>\" <email>"` when a display name is
	// set, otherwise the user's address.
	from := u.Email
	if name := clip(oneLine(u.DisplayedName), maxReplyName); name != "" {
		from = formatAddress(name, u.Email)
	}
	subject, text := replySubject(u.ReplySubject, in.orig), u.ReplyBody
	if v := in.vacation; v != nil {
		subject, text = replySubject(v.Subject, in.orig), v.Reason
		if in.from != "" {
			from = in.from
		}
	}
	writeField(&b, "From", from)
	writeField(&b, "To", replyTo(in.orig, in.envSender))
	writeField(&b, "Subject", encodeText(subject))
	// RFC 5322 3.3 date-time.
	writeField(&b, "Date", in.now.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	writeField(&b, "Message-ID", "<"+in.messageID+">")
	// RFC 3834 3.1.5: In-Reply-To and References of the original.
	origID := firstMsgID(in.orig.Get("Message-Id"))
	refs := strings.Join(strings.Fields(in.orig.Get("References")), " ")
	if origID != "" {
		writeField(&b, "In-Reply-To", origID)
		if refs != "" {
			refs += " " + origID
		} else {
			refs = origID
		}
	}
	if refs != "" {
		writeField(&b, "References", trimReferences(refs))
	}
	// RFC 3834 5: a response is marked auto-replied; Precedence and
	// X-Auto-Response-Suppress keep older responders quiet (Dovecot).
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "Precedence", "bulk")
	writeField(&b, "X-Auto-Response-Suppress", "All")
	writeField(&b, "MIME-Version", "1.0")
	if in.vacation != nil && in.vacation.Mime {
		// RFC 5230 4.4: the reason is a whole MIME entity, header included.
		b.WriteString(crlfText(text))
		return b.Bytes(), nil
	}
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	body := crlfText(text)
	if isSevenBit(body) {
		writeField(&b, "Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(body)
		return b.Bytes(), nil
	}
	writeField(&b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, fmt.Errorf("inbound: auto-reply body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("inbound: auto-reply body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// replyTo is the To field: Mailu sets sieve_vacation_to_header_ignore_envelope,
// so Dovecot takes the first valid address of Sender, Resent-From or From
// (the envelope may be an SRS address), and the envelope sender only when
// none has one. The reply itself is always sent to the envelope sender.
func replyTo(h *textproto.Header, envSender string) string {
	for _, k := range []string{"Sender", "Resent-From", "From"} {
		v := h.Get(k)
		if v == "" {
			continue
		}
		addrs, err := parseAddressList(v)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if strings.IndexByte(a.Address, '@') <= 0 {
				continue
			}
			name := clip(oneLine(a.Name), maxReplyName)
			if strings.Contains(name, "=?") || !utf8.ValidString(name) {
				name = "" // a name that did not decode is better left out
			}
			return formatAddress(name, a.Address)
		}
	}
	return "<" + envSender + ">"
}

// replySubject is the user's reply_subject (or vacation's :subject); when
// it is empty, Dovecot's default: "Auto: " and the original subject, or
// "Automated reply".
func replySubject(subject string, h *textproto.Header) string {
	s := oneLine(subject)
	if s == "" {
		s = "Automated reply"
		orig := h.Get("Subject")
		dec := &mime.WordDecoder{CharsetReader: charset.Reader}
		if d, err := dec.DecodeHeader(orig); err == nil {
			orig = d
		}
		if orig = oneLine(orig); orig != "" {
			s = "Auto: " + orig
		}
	}
	return clip(s, maxReplySubject)
}

// clip cuts s to n characters, the last three of them "...".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// oneLine makes text safe for a header field: control characters (CR and
// LF above all) become spaces, runs of white space one space, and invalid
// UTF-8 is replaced.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// maxEncodedWord keeps each RFC 2047 encoded-word short enough that a
// field name and one word fit the 76 characters RFC 2047 2 allows on a
// line holding encoded-words.
const maxEncodedWord = 60

// encodeText encodes unstructured text (Subject) for a header field.
func encodeText(s string) string { return encodeWords(s, 'q') }

// encodeWords returns s as it is when it is plain ASCII, else as RFC 2047
// encoded-words ('q' or 'b') of at most maxEncodedWord characters, each
// holding whole characters (RFC 2047 5(3)), separated by spaces (which
// decoders drop between encoded-words) so that writeField can fold there.
func encodeWords(s string, kind byte) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < 0x80
	}
	// ASCII that looks like an encoded-word is encoded too, or readers
	// would decode it.
	if ascii && !strings.Contains(s, "=?") {
		return s
	}
	const overhead = len("=?utf-8?q?") + len("?=")
	var words []string
	var b strings.Builder
	start, size := 0, 0
	flush := func(end int) {
		b.Reset()
		b.WriteString("=?utf-8?")
		b.WriteByte(kind)
		b.WriteByte('?')
		if kind == 'b' {
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(s[start:end])))
		} else {
			writeQ(&b, s[start:end])
		}
		b.WriteString("?=")
		words = append(words, b.String())
		start, size = end, 0
	}
	for i, r := range s {
		n := utf8.RuneLen(r)
		if n < 0 {
			n = 3 // U+FFFD for an invalid byte
		}
		cost := 3 * n
		if kind == 'q' && r < 0x80 && r >= ' ' && r != '=' && r != '?' && r != '_' && r != 0x7f {
			cost = 1
		}
		if kind == 'b' {
			cost = n // base64 size is checked on the byte count below
		}
		full := size+cost > maxEncodedWord-overhead
		if kind == 'b' {
			full = (size+cost+2)/3*4 > maxEncodedWord-overhead
		}
		if full && i > start {
			flush(i)
		}
		size += cost
	}
	flush(len(s))
	return strings.Join(words, " ")
}

// writeQ writes s in RFC 2047 4.2 "Q" encoding, keeping only letters,
// digits and a few safe characters literal.
func writeQ(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c > ' ' && c < 0x7f && c != '=' && c != '?' && c != '_':
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
}

// formatAddress writes name <addr>: quoted when the name is ASCII (as
// Mailu writes the display name), otherwise as B encoded-words, whose
// alphabet is safe in a phrase (RFC 2047 5(3); Q would let '"' through).
func formatAddress(name, addr string) string {
	a := (&mail.Address{Address: addr}).String()
	if name == "" {
		return a
	}
	if enc := encodeWords(name, 'b'); enc != name {
		return enc + " " + a
	}
	return (&mail.Address{Name: name, Address: addr}).String()
}

// firstMsgID returns the first "<...>" of a Message-ID field.
func firstMsgID(v string) string {
	i := strings.IndexByte(v, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(v[i:], '>')
	if j < 0 {
		return ""
	}
	id := v[i : i+j+1]
	if strings.ContainsAny(id, " \t\r\n") || len(id) < 3 {
		return ""
	}
	return id
}

// trimReferences keeps the newest ids of an overlong References field
// (RFC 5322 3.6.4 lets a responder shorten it).
func trimReferences(refs string) string {
	for len(refs) > maxReferences {
		i := strings.IndexByte(refs, ' ')
		if i < 0 {
			return refs
		}
		refs = refs[i+1:]
	}
	return refs
}

// writeField writes "Name: value" CRLF, folded at spaces before 78
// characters where it can be (RFC 5322 2.1.1).
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	fresh := true // no word on this line yet: never fold there
	for _, w := range strings.Split(value, " ") {
		if !fresh && len(line)+1+len(w) > 78 {
			b.WriteString(line)
			b.WriteString("\r\n")
			line = ""
		}
		line += " " + w
		fresh = false
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

// crlfText gives text CRLF line ends and a final CRLF.
func crlfText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// isSevenBit reports whether body can go as 7bit: ASCII without NUL and
// no line over 998 characters (RFC 5322 2.1.1, RFC 2045 2.7).
func isSevenBit(body string) bool {
	n := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c >= 0x80 || c == 0 {
			return false
		}
		if c == '\n' {
			n = 0
			continue
		}
		if n++; n > 998 {
			return false
		}
	}
	return true
}
