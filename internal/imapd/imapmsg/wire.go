package imapmsg

import (
	"strconv"
	"strings"
)

// maxQuoted is the longest string written as a quoted string; longer ones
// (and any with 8-bit, CR or LF) are literals, which every client reads.
const maxQuoted = 1024

// AppendString appends s as an IMAP string (RFC 9051 4.3): quoted when it
// is short 7-bit text, a literal otherwise. NUL, which neither may carry,
// is dropped.
func AppendString(b []byte, s string) []byte {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	quote := len(s) <= maxQuoted
	for i := 0; quote && i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c == '\r' || c == '\n' {
			quote = false
		}
	}
	if !quote {
		b = append(b, '{')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, "}\r\n"...)
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendNString appends s, or NIL when it is empty.
func appendNString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "NIL"...)
	}
	return AppendString(b, s)
}

// appendOptString appends *s, or NIL when s is nil.
func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "NIL"...)
	}
	return AppendString(b, *s)
}

// AppendIMAP appends the envelope in RFC 9051 7.5.2 syntax.
func (e *Envelope) AppendIMAP(b []byte) []byte {
	b = append(b, '(')
	b = appendNString(b, e.Date)
	b = append(b, ' ')
	b = appendNString(b, e.Subject)
	for _, list := range [][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		b = append(b, ' ')
		b = appendAddresses(b, list)
	}
	b = append(b, ' ')
	b = appendNString(b, e.InReplyTo)
	b = append(b, ' ')
	b = appendNString(b, e.MessageID)
	return append(b, ')')
}

func appendAddresses(b []byte, list []Address) []byte {
	if len(list) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range list {
		switch {
		case a.GroupEnd:
			b = append(b, "(NIL NIL NIL NIL)"...)
		case a.GroupStart:
			b = append(b, "(NIL NIL "...)
			b = AppendString(b, a.Mailbox)
			b = append(b, " NIL)"...)
		default:
			b = append(b, '(')
			b = appendNString(b, a.Name)
			b = append(b, ' ')
			b = appendNString(b, a.Route)
			b = append(b, ' ')
			b = appendNString(b, a.Mailbox)
			b = append(b, ' ')
			b = appendNString(b, a.Host)
			b = append(b, ')')
		}
	}
	return append(b, ')')
}

// AppendBodyStructure appends FETCH BODYSTRUCTURE (extended) or BODY
// (not extended) of the message (RFC 9051 7.5.2).
func (s *Structure) AppendBodyStructure(b []byte, extended bool) []byte {
	return s.Root.AppendIMAP(b, extended)
}

// AppendEnvelope appends FETCH ENVELOPE of the message.
func (s *Structure) AppendEnvelope(b []byte) []byte {
	return append(b, s.Root.Envelope...)
}

// AppendIMAP appends the body structure of the part (RFC 9051 body), with
// the extension data when extended.
func (p *Part) AppendIMAP(b []byte, extended bool) []byte {
	b = append(b, '(')
	if p.IsMultipart() {
		// body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
		for _, c := range p.Children {
			b = c.AppendIMAP(b, extended)
		}
		b = append(b, ' ')
		b = AppendString(b, p.Subtype)
		if extended {
			b = append(b, ' ')
			b = appendParams(b, p.Params)
			b = p.appendExtTail(b)
		}
		return append(b, ')')
	}
	b = AppendString(b, p.Type)
	b = append(b, ' ')
	b = AppendString(b, p.Subtype)
	b = append(b, ' ')
	b = appendParams(b, p.Params)
	b = append(b, ' ')
	b = appendOptString(b, p.ID)
	b = append(b, ' ')
	b = appendOptString(b, p.Description)
	b = append(b, ' ')
	b = AppendString(b, p.Encoding)
	b = append(b, ' ')
	b = strconv.AppendInt(b, p.Size(), 10)
	switch {
	case p.Message != nil && strings.EqualFold(p.Subtype, "rfc822"):
		// body-type-msg: envelope, body and lines of the encapsulated
		// message. message/global (RFC 6532) is parsed the same way but
		// written as a basic part: IMAP4rev1's grammar (RFC 3501) has
		// body-type-msg for MESSAGE/RFC822 only.
		b = append(b, ' ')
		b = append(b, p.Message.Envelope...)
		b = append(b, ' ')
		b = p.Message.AppendIMAP(b, extended)
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Lines, 10)
	case strings.EqualFold(p.Type, "text"):
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Lines, 10)
	}
	if extended {
		// body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
		b = append(b, ' ')
		b = appendOptString(b, p.MD5)
		b = p.appendExtTail(b)
	}
	return append(b, ')')
}

// appendExtTail appends SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
func (p *Part) appendExtTail(b []byte) []byte {
	b = append(b, ' ')
	if p.Disposition == "" {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		b = AppendString(b, p.Disposition)
		b = append(b, ' ')
		b = appendParams(b, p.DispParams)
		b = append(b, ')')
	}
	b = append(b, ' ')
	if len(p.Language) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		for i, l := range p.Language {
			if i > 0 {
				b = append(b, ' ')
			}
			b = AppendString(b, l)
		}
		b = append(b, ')')
	}
	b = append(b, ' ')
	return appendOptString(b, p.Location)
}

func appendParams(b []byte, params []Param) []byte {
	if len(params) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for i, p := range params {
		if i > 0 {
			b = append(b, ' ')
		}
		b = AppendString(b, p.Name)
		b = append(b, ' ')
		b = AppendString(b, p.Value)
	}
	return append(b, ')')
}
