package mailaddr

import (
	"fmt"
	"strings"
)

// maxPathInput bounds the work spent on one path. RFC 5321 4.5.3.1.3 allows
// 256 octets; a source route may add more, so leave generous room.
const maxPathInput = 1024

// Path is a parsed SMTP reverse-path or forward-path (RFC 5321 4.1.2).
type Path struct {
	// Null is the null reverse-path "<>" (bounces, MAIL FROM:<>).
	Null bool
	// Local is the local part without quotes, source route or escapes, case
	// preserved: RFC 5321 2.4 makes it case-sensitive for relaying. Use
	// Normalized for lookups.
	Local string
	// Domain is normalised: lower-case ASCII, IDNA A-labels, no trailing dot.
	Domain string
}

// Addr returns the path as it goes on the wire without angle brackets: the
// local part is quoted when it is not a dot-string. Null gives "".
func (p Path) Addr() string {
	if p.Null {
		return ""
	}
	return quoteLocal(p.Local) + "@" + p.Domain
}

// Normalized returns the lookup key Mailu uses (models.py::IdnaEmail): the
// lower-cased local part as is (unquoted) and the normalised domain. Null
// gives "".
func (p Path) Normalized() string {
	if p.Null {
		return ""
	}
	return strings.ToLower(p.Local) + "@" + p.Domain
}

// String is Addr in angle brackets, as in a log line or a reply.
func (p Path) String() string { return "<" + p.Addr() + ">" }

// ParsePath parses the address a go-smtp Session receives in Mail or Rcpt.
// go-smtp v0.25.1 (parse.go) hands it over without angle brackets, with a
// leading source route already cut and with quotes and backslashes of a
// quoted local part removed ("a b"@x arrives as a b@x); the null path <>
// arrives as "". ParsePath also accepts the raw forms (angle brackets,
// "@a,@b:" routes, quoted local parts), so it can be used on any path text.
//
// Source routes are ignored (RFC 5321 4.1.1.3, 3.6.1); the final mailbox is
// returned and must be checked by the caller like any other address. Routing
// tricks that could make Petrel an open relay are errors: the percent hack,
// bang paths, @ % ! in a quoted local part, address literals, a second @.
// UTF-8 local parts and domains are allowed (RFC 6531 SMTPUTF8).
func ParsePath(s string) (Path, error) {
	if len(s) > maxPathInput {
		return Path{}, fmt.Errorf("%w: longer than %d octets", ErrSyntax, maxPathInput)
	}
	if err := checkChars(s); err != nil {
		return Path{}, err
	}
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return Path{Null: true}, nil
	}
	if s[0] == '@' {
		var err error
		if s, err = stripRoute(s); err != nil {
			return Path{}, err
		}
		if s == "" {
			return Path{}, fmt.Errorf("%w: no mailbox after source route", ErrSyntax)
		}
	}
	local, domain, err := splitPath(s)
	if err != nil {
		return Path{}, err
	}
	if len(local) > maxLocalLen {
		return Path{}, fmt.Errorf("%w: %q", ErrLocalTooLong, s)
	}
	if domain == "" {
		return Path{}, fmt.Errorf("%w: %q", ErrEmptyDomain, s)
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Path{}, err
	}
	return Path{Local: local, Domain: d}, nil
}

// stripRoute removes an RFC 5321 A-d-l ("@a,@b:") in front of the mailbox.
func stripRoute(s string) (string, error) {
	i := 0
	for {
		if i >= len(s) || s[i] != '@' {
			return "", fmt.Errorf("%w: malformed source route", ErrSyntax)
		}
		i++
		if i < len(s) && s[i] == '[' { // address literal, may contain ':'
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return "", fmt.Errorf("%w: malformed source route", ErrSyntax)
			}
			i += j + 1
		} else {
			for i < len(s) && s[i] != ',' && s[i] != ':' {
				i++
			}
		}
		if i >= len(s) {
			return "", fmt.Errorf("%w: malformed source route", ErrSyntax)
		}
		switch s[i] {
		case ':':
			return s[i+1:], nil
		case ',':
			i++
		default:
			return "", fmt.Errorf("%w: malformed source route", ErrSyntax)
		}
	}
}

// splitPath splits a mailbox into its unquoted local part and its domain and
// applies the anti-relay rules to the local part.
func splitPath(s string) (local, domain string, err error) {
	if s[0] == '"' {
		end := closingQuote(s)
		if end < 0 {
			return "", "", fmt.Errorf("%w: unterminated quoted local part", ErrSyntax)
		}
		local = unescapeQuoted(s[1:end])
		rest := s[end+1:]
		if !strings.HasPrefix(rest, "@") {
			if rest == "" {
				return "", "", fmt.Errorf("%w: %q", ErrNoAt, s)
			}
			return "", "", fmt.Errorf("%w: text after quoted local part", ErrSyntax)
		}
		domain = rest[1:]
		if local == "" {
			return "", "", fmt.Errorf("%w: %q", ErrEmptyLocal, s)
		}
		if strings.ContainsAny(local, "@%!") {
			return "", "", quotedTrick(local, s)
		}
		if strings.IndexByte(domain, '@') >= 0 {
			return "", "", fmt.Errorf("%w: %q", ErrDoubleAt, s)
		}
		return local, domain, nil
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%w: %q", ErrNoAt, s)
	}
	local, domain = s[:at], s[at+1:]
	if strings.IndexByte(domain, '@') >= 0 {
		// Also what "user@host"@relay looks like after go-smtp removed the quotes.
		return "", "", fmt.Errorf("%w: %q", ErrDoubleAt, s)
	}
	if local == "" {
		return "", "", fmt.Errorf("%w: %q", ErrEmptyLocal, s)
	}
	if strings.IndexByte(local, '%') >= 0 {
		return "", "", fmt.Errorf("%w: %q", ErrPercentHack, s)
	}
	if strings.IndexByte(local, '!') >= 0 {
		return "", "", fmt.Errorf("%w: %q", ErrBangPath, s)
	}
	return local, domain, nil
}

// quotedTrick names the routing character hidden in a quoted local part; the
// error matches ErrQuotedRouting and, for % and !, the specific trick too.
func quotedTrick(local, s string) error {
	switch {
	case strings.IndexByte(local, '%') >= 0:
		return fmt.Errorf("%w: %w: %q", ErrQuotedRouting, ErrPercentHack, s)
	case strings.IndexByte(local, '!') >= 0:
		return fmt.Errorf("%w: %w: %q", ErrQuotedRouting, ErrBangPath, s)
	}
	return fmt.Errorf("%w: %q", ErrQuotedRouting, s)
}

// unescapeQuoted removes the backslashes of quoted-pairs (RFC 5321 4.1.2).
func unescapeQuoted(q string) string {
	if strings.IndexByte(q, '\\') < 0 {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '\\' && i+1 < len(q) {
			i++
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// quoteLocal returns local as a dot-string when it is one, else as a
// quoted-string with " and \ escaped (RFC 5321 4.1.2).
func quoteLocal(local string) string {
	if isDotString(local) {
		return local
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isDotString reports whether s is Atom *("." Atom) with RFC 6531's UTF-8
// extension of atext.
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, c == '.',
			'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
