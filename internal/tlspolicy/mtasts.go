package tlspolicy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MTA-STS (RFC 8461): the TXT record at _mta-sts.<domain> announces a
// policy by id; the policy itself is a small text file served over HTTPS
// with a certificate valid for mta-sts.<domain>.

// Mode is an MTA-STS policy mode (RFC 8461 5).
type Mode string

const (
	ModeEnforce Mode = "enforce" // deliver only to listed MX hosts over verified TLS
	ModeTesting Mode = "testing" // deliver anyway, report failures (TLS-RPT)
	ModeNone    Mode = "none"    // the domain withdrew its policy
)

// Limits of RFC 8461.
const (
	MaxPolicySize = 64 * 1024              // 3.3: "reasonable" limit; 64 KiB as mox and Postfix's resolver
	MaxMaxAge     = 31557600 * time.Second // 3.2: at most a year
)

// Policy is a parsed MTA-STS policy.
type Policy struct {
	Mode   Mode
	MX     []string // host names or "*.domain" patterns, lower case
	MaxAge time.Duration
	Text   string // the policy as fetched, for TLS-RPT's policy-string
}

// ErrNoRecord means the domain publishes no (valid) MTA-STS TXT record.
var ErrNoRecord = errors.New("no MTA-STS record")

// ParseRecord parses the TXT records found at _mta-sts.<domain> and
// returns the policy id. RFC 8461 3.1: records not starting with
// "v=STSv1" are ignored; more than one STSv1 record, or a malformed one,
// means no policy (ErrNoRecord wrapped with the reason).
func ParseRecord(txts []string) (string, error) {
	var id string
	found := 0
	var bad error
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		found++
		fields := strings.Split(t, ";")
		if strings.TrimSpace(fields[0]) != "v=STSv1" {
			bad = fmt.Errorf("%w: version field %q", ErrNoRecord, fields[0])
			continue
		}
		id = ""
		for _, f := range fields[1:] {
			f = strings.Trim(f, " \t")
			if f == "" {
				continue
			}
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				bad = fmt.Errorf("%w: field %q has no value", ErrNoRecord, f)
				break
			}
			if k == "id" {
				if !validID(v) {
					bad = fmt.Errorf("%w: id %q is not 1-32 letters and digits", ErrNoRecord, v)
					break
				}
				id = v
			}
		}
		if id == "" && bad == nil {
			bad = fmt.Errorf("%w: record has no id", ErrNoRecord)
		}
	}
	switch {
	case found == 0:
		return "", ErrNoRecord
	case found > 1:
		return "", fmt.Errorf("%w: %d STSv1 records (RFC 8461 3.1 allows one)", ErrNoRecord, found)
	case bad != nil:
		return "", bad
	}
	return id, nil
}

func validID(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ParsePolicy parses a policy file (RFC 8461 3.2). Lines end in CRLF or
// LF; unknown keys are ignored; version, mode and max_age are required
// and mx is required unless the mode is none.
func ParsePolicy(text string) (*Policy, error) {
	if len(text) > MaxPolicySize {
		return nil, fmt.Errorf("policy larger than %d bytes", MaxPolicySize)
	}
	p := &Policy{Text: text}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no key: value", i+1)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k != "mx" && seen[k] {
			return nil, fmt.Errorf("line %d: %s given twice", i+1, k)
		}
		seen[k] = true
		switch k {
		case "version":
			if v != "STSv1" {
				return nil, fmt.Errorf("line %d: version %q is not STSv1", i+1, v)
			}
			if i != 0 {
				return nil, fmt.Errorf("line %d: version must be the first line", i+1)
			}
		case "mode":
			switch Mode(v) {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode = Mode(v)
			default:
				return nil, fmt.Errorf("line %d: unknown mode %q", i+1, v)
			}
		case "max_age":
			if v == "" || len(v) > 10 || strings.TrimLeft(v, "0123456789") != "" {
				return nil, fmt.Errorf("line %d: max_age %q is not a number of seconds", i+1, v)
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			if n > int64(MaxMaxAge/time.Second) {
				n = int64(MaxMaxAge / time.Second) // 3.2: at most 31557600
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			mx := strings.ToLower(strings.TrimSuffix(v, "."))
			if !validMXPattern(mx) {
				return nil, fmt.Errorf("line %d: mx %q is not a host name or *.domain", i+1, v)
			}
			p.MX = append(p.MX, mx)
		}
	}
	switch {
	case !seen["version"]:
		return nil, errors.New("no version line")
	case p.Mode == "":
		return nil, errors.New("no mode line")
	case !seen["max_age"]:
		return nil, errors.New("no max_age line")
	case p.Mode != ModeNone && len(p.MX) == 0:
		return nil, errors.New("no mx line")
	}
	return p, nil
}

// validMXPattern accepts a host name, optionally with "*." first.
func validMXPattern(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// MatchesMX reports whether host is one of the policy's mx patterns. RFC
// 8461 4.1: "*.example.com" matches exactly one label in its place.
func (p *Policy) MatchesMX(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, m := range p.MX {
		if rest, ok := strings.CutPrefix(m, "*."); ok {
			if first, tail, ok := strings.Cut(host, "."); ok && first != "" && tail == rest {
				return true
			}
			continue
		}
		if m == host {
			return true
		}
	}
	return false
}
