package imapmsg

import (
	"strings"
)

// Envelope is the IMAP ENVELOPE of a message (RFC 9051 7.5.2): header
// values as written (unfolded, RFC 2047 encoded-words left encoded), ""
// for a missing field (NIL). Sender and ReplyTo default to From.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is one entry of an ENVELOPE address list (RFC 9051 7.5.2): a
// mailbox, or the start (GroupStart, Mailbox = group name) or end
// (GroupEnd) of an RFC 5322 group. "" is NIL.
type Address struct {
	Name, Route, Mailbox, Host string
	GroupStart, GroupEnd       bool
}

// Placeholders for broken addresses, as Dovecot writes them, so that
// clients always get a mailbox and a host.
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

// emptyEnvelope is the ENVELOPE of a message with no header, as
// (&Envelope{}).AppendIMAP writes it: every field NIL.
const emptyEnvelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

// envelopeIMAP returns the ENVELOPE of a message header block as written
// on the wire (see Part.Envelope).
func envelopeIMAP(header []byte) string {
	var buf [512]byte // on the stack: only the string is allocated
	return string(parseEnvelope(header).AppendIMAP(buf[:0]))
}

// parseEnvelope builds the envelope from a message header block.
func parseEnvelope(header []byte) *Envelope {
	env := &Envelope{}
	var from, sender, replyTo, to, cc, bcc string
	// The fields ENVELOPE reads, by name; a message's first field of
	// each name counts. Names are compared in place: a lower-cased copy
	// of every field name cost an allocation per field of every header.
	fields := [...]struct {
		name string
		dst  *string
	}{
		{"date", &env.Date}, {"subject", &env.Subject}, {"from", &from},
		{"sender", &sender}, {"reply-to", &replyTo}, {"to", &to}, {"cc", &cc},
		{"bcc", &bcc}, {"in-reply-to", &env.InReplyTo}, {"message-id", &env.MessageID},
	}
	var seen uint16 // bit i: fields[i] was found
	eachField(header, func(name, value, _ []byte) {
		for i, f := range fields {
			if len(name) == len(f.name) && seen&(1<<i) == 0 && strings.EqualFold(string(name), f.name) {
				seen |= 1 << i
				*f.dst = unfold(value)
				return
			}
		}
	})
	env.From = parseAddressList(from)
	env.Sender = parseAddressList(sender)
	env.ReplyTo = parseAddressList(replyTo)
	env.To = parseAddressList(to)
	env.Cc = parseAddressList(cc)
	env.Bcc = parseAddressList(bcc)
	// RFC 9051 7.5.2: sender and reply-to default to from.
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	return env
}

// addrToken is one lexical unit of an address header.
type addrToken struct {
	kind byte   // 'w' word (atom or quoted string), 'c' comment, or a special: < > @ , ; : [
	text string // the word (quotes removed) or the comment text
}

// lexAddresses splits an address header value into tokens (RFC 5322 3.2).
// Dots belong to words so that local parts, domains and initials stay one
// token; domain literals are words too.
func lexAddresses(s string) []addrToken {
	var toks []addrToken
	p := mimeLexer{s: s}
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.pos++
		case c == '(':
			toks = append(toks, addrToken{kind: 'c', text: strings.TrimSpace(p.comment())})
		case c == '"':
			toks = append(toks, addrToken{kind: 'q', text: p.quoted()})
		case c == '[':
			end := strings.IndexByte(p.s[p.pos:], ']')
			if end < 0 {
				end = len(p.s) - p.pos - 1
			}
			toks = append(toks, addrToken{kind: 'w', text: p.s[p.pos : p.pos+end+1]})
			p.pos += end + 1
		case strings.IndexByte("<>@,;:", c) >= 0:
			toks = append(toks, addrToken{kind: c})
			p.pos++
		case c == ')':
			p.pos++ // a stray comment end
		default:
			start := p.pos
			for p.pos < len(p.s) && strings.IndexByte(" \t\r\n()\"<>@,;:[", p.s[p.pos]) < 0 {
				p.pos++
			}
			toks = append(toks, addrToken{kind: 'w', text: p.s[start:p.pos]})
		}
	}
	return toks
}

// parseAddressList parses an address list leniently: whatever it cannot
// understand still yields an address with placeholders rather than an
// error, as mail clients expect (and as Dovecot does).
func parseAddressList(s string) []Address {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	a := addrParser{toks: lexAddresses(s)}
	var out []Address
	for a.pos < len(a.toks) {
		switch a.peek() {
		case ',', ';', '>':
			a.pos++
			continue
		}
		out = a.entry(out)
	}
	return out
}

type addrParser struct {
	toks []addrToken
	pos  int
}

func (a *addrParser) peek() byte {
	if a.pos < len(a.toks) {
		return a.toks[a.pos].kind
	}
	return 0
}

// phrase collects words (and comments) up to the next special. It
// returns the words joined by spaces and the last comment seen.
func (a *addrParser) phrase() (words []string, comment string) {
	for a.pos < len(a.toks) {
		t := a.toks[a.pos]
		switch t.kind {
		case 'w', 'q':
			words = append(words, t.text)
		case 'c':
			comment = t.text
		default:
			return words, comment
		}
		a.pos++
	}
	return words, comment
}

// entry parses a group or a mailbox and appends it.
func (a *addrParser) entry(out []Address) []Address {
	start := a.pos
	words, _ := a.phrase()
	switch a.peek() {
	case ':':
		// RFC 5322 3.4: display-name ":" [group-list] ";"
		a.pos++
		out = append(out, Address{Mailbox: strings.Join(words, " "), GroupStart: true})
		for a.pos < len(a.toks) && a.peek() != ';' {
			if a.peek() == ',' || a.peek() == '>' {
				a.pos++
				continue
			}
			out = a.mailbox(out)
		}
		if a.peek() == ';' {
			a.pos++
		}
		return append(out, Address{GroupEnd: true})
	default:
		a.pos = start
		return a.mailbox(out)
	}
}

// mailbox parses name-addr or addr-spec (RFC 5322 3.4) and appends it.
func (a *addrParser) mailbox(out []Address) []Address {
	start := a.pos
	words, comment := a.phrase()
	addr := Address{}
	switch a.peek() {
	case '<':
		a.pos++
		addr.Name = strings.Join(words, " ")
		addr.Route = a.route()
		addr.Mailbox, addr.Host = a.addrSpec()
		if a.peek() == '>' {
			a.pos++
		}
		if addr.Name == "" {
			addr.Name = a.trailingComment(comment)
		}
	case ',', ';', 0:
		if len(words) == 0 {
			return out // only comments: nothing to report
		}
		fallthrough
	case '@':
		// addr-spec: the words were the local part. Words that are
		// separated by spaces in an obsolete local part are joined.
		a.pos = start
		addr.Mailbox, addr.Host = a.addrSpec()
		addr.Name = a.trailingComment(comment)
	default: // ':' inside a group, '>' stray: skip it
		a.pos++
		return out
	}
	if addr.Mailbox == "" {
		addr.Mailbox = missingMailbox
	}
	if addr.Host == "" {
		addr.Host = missingDomain
	}
	return append(out, addr)
}

// trailingComment returns the comment after an address (its display name
// in the old "user@host (Name)" style) or the comment seen before it.
func (a *addrParser) trailingComment(before string) string {
	if a.pos < len(a.toks) && a.toks[a.pos].kind == 'c' {
		c := a.toks[a.pos].text
		a.pos++
		return c
	}
	return before
}

// route parses an obsolete source route ("@a,@b:") and returns it as
// IMAP's adl ("@a,@b"), or "".
func (a *addrParser) route() string {
	if a.peek() != '@' {
		return ""
	}
	save := a.pos
	var hops []string
	for a.peek() == '@' {
		a.pos++
		if a.peek() != 'w' {
			break
		}
		hops = append(hops, "@"+a.toks[a.pos].text)
		a.pos++
		for a.peek() == ',' {
			a.pos++
		}
	}
	if a.peek() != ':' || len(hops) == 0 {
		a.pos = save
		return ""
	}
	a.pos++
	return strings.Join(hops, ",")
}

// addrSpec parses local-part "@" domain; comments are skipped.
func (a *addrParser) addrSpec() (local, domain string) {
	var lp []string
	for a.pos < len(a.toks) {
		t := a.toks[a.pos]
		if t.kind == 'w' || t.kind == 'q' {
			lp = append(lp, t.text)
		} else if t.kind != 'c' {
			break
		}
		a.pos++
	}
	local = strings.Join(lp, "")
	if a.peek() != '@' {
		return local, ""
	}
	a.pos++
	var dom []string
	for a.pos < len(a.toks) {
		t := a.toks[a.pos]
		if t.kind == 'w' {
			dom = append(dom, t.text)
		} else if t.kind != 'c' {
			break
		}
		a.pos++
		if a.pos < len(a.toks) && a.toks[a.pos].kind == 'c' {
			break // a comment after the domain is a display name
		}
	}
	return local, strings.Join(dom, "")
}
