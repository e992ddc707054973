// Package mailaddr parses and normalises e-mail addresses and domain names
// the way Mailu does: lower-cased local parts for look-ups (case kept for
// addresses that leave Petrel), IDNA (punycode) domains, a
// recipient delimiter that is a set of characters, and SQL LIKE wildcards for
// aliases. It is a leaf package: stdlib and golang.org/x/net/idna only.
package mailaddr

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors. Each anti-relay trick has its own sentinel so callers can log which
// one a client tried; match them with errors.Is.
var (
	ErrNoAt           = errors.New("address has no @")
	ErrDoubleAt       = errors.New("address has more than one @")
	ErrEmptyLocal     = errors.New("empty local part")
	ErrLocalTooLong   = errors.New("local part longer than 64 octets")
	ErrEmptyDomain    = errors.New("empty domain")
	ErrBadDomain      = errors.New("invalid domain name")
	ErrAddressLiteral = errors.New("address literal domains are not accepted")
	ErrControlChar    = errors.New("control character in address")
	ErrInvalidUTF8    = errors.New("address is not valid UTF-8")
	ErrSyntax         = errors.New("malformed address")
	// ErrPercentHack: user%host@relay, the percent hack (RFC 1123 5.2.16
	// tolerated it; for us it is an open-relay trick).
	ErrPercentHack = errors.New("percent hack (% in local part)")
	// ErrBangPath: host!user@relay, UUCP bang path routing.
	ErrBangPath = errors.New("bang path (! in local part)")
	// ErrQuotedRouting: "user@host"@relay and friends.
	ErrQuotedRouting = errors.New("quoted local part contains @, % or !")
)

// Limits from RFC 5321 4.5.3.1 and RFC 1035 2.3.4.
const (
	maxLocalLen  = 64  // RFC 5321 4.5.3.1.1
	maxLabelLen  = 63  // RFC 1035 2.3.4
	maxDomainLen = 253 // RFC 1035 2.3.4 (255 octets on the wire = 253 characters)
)

// idnaProfile is the UTS 46 lookup profile without the CheckHyphens rule:
// Mailu encodes with Python's idna codec, which accepts ASCII labels such as
// "ab--cd" that CheckHyphens would refuse. Leading and trailing hyphens are
// checked by checkLabels instead. Built per call: no package-level state.
func idnaProfile() *idna.Profile {
	return idna.New(idna.MapForLookup(), idna.BidiRule(), idna.CheckHyphens(false))
}

// NormalizeDomain returns d in the form Mailu stores it (models.py::IdnaDomain):
// without a trailing dot, lower-case, IDNA A-labels (punycode).
func NormalizeDomain(d string) (string, error) {
	if err := checkChars(d); err != nil {
		return "", err
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", ErrEmptyDomain
	}
	if strings.HasPrefix(d, "[") || isIP(d) {
		// RFC 5321 4.1.3 address literals: never a hosted or relayable domain.
		return "", fmt.Errorf("%w: %q", ErrAddressLiteral, d)
	}
	a, plain := plainDomain(d)
	if !plain {
		var err error
		if a, err = idnaProfile().ToASCII(d); err != nil {
			return "", fmt.Errorf("%w: %q: %w", ErrBadDomain, d, err)
		}
		a = strings.ToLower(a)
	}
	if isIP(a) {
		return "", fmt.Errorf("%w: %q", ErrAddressLiteral, d)
	}
	if err := checkLabels(a); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrBadDomain, d, err)
	}
	return a, nil
}

// plainDomain returns d in lower case when it is only ASCII letters,
// digits, hyphens and dots and has no A-label ("xn--"): IDNA's ToASCII
// would give it back unchanged but for the case, and costs microseconds
// per call on every address of every message. Anything else goes through
// IDNA.
func plainDomain(d string) (string, bool) {
	upper := false
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		d = strings.ToLower(d)
	}
	if strings.HasPrefix(d, "xn--") || strings.Contains(d, ".xn--") {
		return "", false
	}
	return d, true
}

func isIP(s string) bool {
	// Without a colon (IPv6) only digits and dots can be an address; the
	// parser's error for a domain would cost an allocation each time.
	if !strings.Contains(s, ":") && strings.Trim(s, "0123456789.") != "" {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// checkLabels applies the DNS length rules and the LDH hyphen rule to an
// ASCII domain.
func checkLabels(a string) error {
	if len(a) > maxDomainLen {
		return fmt.Errorf("longer than %d characters", maxDomainLen)
	}
	for l := range strings.SplitSeq(a, ".") {
		switch {
		case l == "":
			return errors.New("empty label")
		case len(l) > maxLabelLen:
			return fmt.Errorf("label longer than %d characters", maxLabelLen)
		case l[0] == '-' || l[len(l)-1] == '-':
			return errors.New("label starts or ends with a hyphen")
		}
	}
	return nil
}

// checkChars rejects invalid UTF-8 and control characters (C0, DEL, C1):
// no bare CR or LF may reach a header or a log line.
func checkChars(s string) error {
	if !utf8.ValidString(s) {
		return ErrInvalidUTF8
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: %q", ErrControlChar, s)
		}
	}
	return nil
}

// Normalize returns addr as Mailu stores and looks it up (models.py::IdnaEmail):
// the local part lower-cased with strings.ToLower, the domain through
// NormalizeDomain. A quoted local part is kept with its quotes. Use it for
// look-ups; an address that leaves Petrel keeps its case (NormalizeRemote).
func Normalize(addr string) (string, error) {
	return normalize(addr, true)
}

// NormalizeRemote returns addr with its domain normalised (NormalizeDomain)
// and its local part exactly as given: RFC 5321 2.4, only the receiving host
// may interpret the case of a local part, so a recipient that is relayed
// keeps it. Normalize of the result is the look-up key.
func NormalizeRemote(addr string) (string, error) {
	return normalize(addr, false)
}

// NormalizeBoth returns both forms of addr with one IDNA conversion: key
// as Normalize (for look-ups) and asGiven as NormalizeRemote (for an
// address that is relayed).
func NormalizeBoth(addr string) (key, asGiven string, err error) {
	if asGiven, err = normalize(addr, false); err != nil {
		return "", "", err
	}
	local, domain := Split(asGiven)
	folded := strings.ToLower(local)
	if len(folded) > maxLocalLen {
		return "", "", fmt.Errorf("%w: %q", ErrLocalTooLong, addr)
	}
	return folded + "@" + domain, asGiven, nil
}

func normalize(addr string, fold bool) (string, error) {
	if err := checkChars(addr); err != nil {
		return "", err
	}
	at, err := unquotedAt(addr)
	if err != nil {
		return "", err
	}
	local := addr[:at]
	if local == "" {
		return "", ErrEmptyLocal
	}
	// RFC 5321 4.5.3.1.1 counts the octets as sent, before any folding
	// (which can change the length of non-ASCII text).
	if len(local) > maxLocalLen {
		return "", fmt.Errorf("%w: %q", ErrLocalTooLong, addr)
	}
	if fold {
		// The folded form is also a key that must parse again.
		if local = strings.ToLower(local); len(local) > maxLocalLen {
			return "", fmt.Errorf("%w: %q", ErrLocalTooLong, addr)
		}
	}
	d, err := NormalizeDomain(addr[at+1:])
	if err != nil {
		return "", err
	}
	return local + "@" + d, nil
}

// unquotedAt returns the index of the only @ outside a leading quoted string.
func unquotedAt(addr string) (int, error) {
	start := 0
	if strings.HasPrefix(addr, `"`) {
		end := closingQuote(addr)
		if end < 0 {
			return 0, fmt.Errorf("%w: unterminated quoted local part", ErrSyntax)
		}
		start = end + 1
	}
	i := strings.IndexByte(addr[start:], '@')
	if i < 0 {
		return 0, ErrNoAt
	}
	at := start + i
	if strings.IndexByte(addr[at+1:], '@') >= 0 {
		return 0, fmt.Errorf("%w: %q", ErrDoubleAt, addr)
	}
	return at, nil
}

// closingQuote returns the index of the quote that ends the quoted string
// starting at s[0], honouring backslash quoted-pairs (RFC 5321 4.1.2), or -1.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// Split cuts addr at its last @. Without an @ the whole string is the local
// part and domain is "".
func Split(addr string) (local, domain string) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}

// StripDelimiter removes a subaddress: Mailu's RECIPIENT_DELIMITER is a set of
// characters and the local part is cut at the first of any of them, but only
// when something remains before it (Mailu: models.py Email.resolve_destination).
func StripDelimiter(local, delimiters string) string {
	if delimiters == "" {
		return local
	}
	if i := strings.IndexAny(local, delimiters); i > 0 {
		return local[:i]
	}
	return local
}
