package mailaddr

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{"example.com", "example.com", nil},
		{"Example.COM.", "example.com", nil},
		{"Bücher.example", "xn--bcher-kva.example", nil},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example", nil},
		{"faß.de", "xn--fa-hia.de", nil},          // non-transitional (IDNA 2008)
		{"例え.テスト", "xn--r8jz45g.xn--zckzah", nil}, // Japanese labels
		{"ab--cd.example", "ab--cd.example", nil}, // Python's idna codec accepts it, so do we
		{"localhost", "localhost", nil},
		{strings.Repeat("a", 63) + ".example", strings.Repeat("a", 63) + ".example", nil},
		{"", "", ErrEmptyDomain},
		{".", "", ErrEmptyDomain},
		{"a..b", "", ErrBadDomain},
		{".example.com", "", ErrBadDomain},
		{"example.com..", "", ErrBadDomain},
		{strings.Repeat("a", 64) + ".example", "", ErrBadDomain},
		{strings.Repeat("abcdefghi.", 25) + "example", "", ErrBadDomain}, // 257 > 253
		{"-a.example", "", ErrBadDomain},
		{"a-.example", "", ErrBadDomain},
		{"a_b.example", "", ErrBadDomain},
		{"ex ample.com", "", ErrBadDomain},
		{"ex%ample.com", "", ErrBadDomain},
		{"xn--abc.example", "", ErrBadDomain}, // invalid punycode
		{"[1.2.3.4]", "", ErrAddressLiteral},
		{"[IPv6:2001:db8::1]", "", ErrAddressLiteral},
		{"1.2.3.4", "", ErrAddressLiteral},
		{"2001:db8::1", "", ErrAddressLiteral},
		{"１.２.３.４", "", ErrAddressLiteral}, // full-width digits map to an IP
		{"exa\nmple.com", "", ErrControlChar},
		{"exa\x00mple.com", "", ErrControlChar},
		{"exa\xffmple.com", "", ErrInvalidUTF8},
	}
	for _, tt := range tests {
		got, err := NormalizeDomain(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("NormalizeDomain(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{"User@Example.COM", "user@example.com", nil},
		{"Üser@Bücher.example", "üser@xn--bcher-kva.example", nil},
		{"a+tag@example.com.", "a+tag@example.com", nil},
		{`"Quoted@Local"@example.com`, `"quoted@local"@example.com`, nil},
		{strings.Repeat("x", 64) + "@example.com", strings.Repeat("x", 64) + "@example.com", nil},
		{"no-at.example.com", "", ErrNoAt},
		{"", "", ErrNoAt},
		{"a@b@example.com", "", ErrDoubleAt},
		{`"a@b"@c@example.com`, "", ErrDoubleAt},
		{"@example.com", "", ErrEmptyLocal},
		{"user@", "", ErrEmptyDomain},
		{strings.Repeat("x", 65) + "@example.com", "", ErrLocalTooLong},
		{"user@[1.2.3.4]", "", ErrAddressLiteral},
		{"user@exa_mple.com", "", ErrBadDomain},
		{"us\rer@example.com", "", ErrControlChar},
		{"us\xc3er@example.com", "", ErrInvalidUTF8},
		{`"unterminated@example.com`, "", ErrSyntax},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Normalize(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestNormalizeRemoteKeepsLocalCase: RFC 5321 2.4, only the receiving host
// may interpret the case of a local part, so an address that leaves Petrel
// keeps it; the domain is normalised as for a look-up.
func TestNormalizeRemoteKeepsLocalCase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{"CaseCheck.MiXeD@Remote.Example", "CaseCheck.MiXeD@remote.example", nil},
		{"Üser@Bücher.example.", "Üser@xn--bcher-kva.example", nil},
		{`"Quoted Local"@Example.com`, `"Quoted Local"@example.com`, nil},
		{"plain@example.com", "plain@example.com", nil},
		{"no-at.example.com", "", ErrNoAt},
		{"a@b@example.com", "", ErrDoubleAt},
		{"@example.com", "", ErrEmptyLocal},
		{strings.Repeat("X", 65) + "@example.com", "", ErrLocalTooLong},
		{"user@[1.2.3.4]", "", ErrAddressLiteral},
		{"Us\rer@example.com", "", ErrControlChar},
	}
	for _, tt := range tests {
		got, err := NormalizeRemote(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("NormalizeRemote(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeRemote(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		// The look-up key of the kept form is the folded address.
		if n, err := Normalize(got); err != nil || n != strings.ToLower(got) {
			t.Errorf("Normalize(%q) = %q, %v", got, n, err)
		}
		key, asGiven, err := NormalizeBoth(tt.in)
		if want, _ := Normalize(tt.in); err != nil || key != want || asGiven != got {
			t.Errorf("NormalizeBoth(%q) = %q, %q, %v; want %q, %q", tt.in, key, asGiven, err, want, got)
		}
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, local, domain string }{
		{"a@b.example", "a", "b.example"},
		{"a", "a", ""},
		{`"x@y"@b.example`, `"x@y"`, "b.example"},
		{"@b", "", "b"},
		{"a@", "a", ""},
	}
	for _, tt := range tests {
		l, d := Split(tt.in)
		if l != tt.local || d != tt.domain {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", tt.in, l, d, tt.local, tt.domain)
		}
	}
}

func TestStripDelimiter(t *testing.T) {
	t.Parallel()
	tests := []struct{ local, delims, want string }{
		{"user+tag", "+", "user"},
		{"user+tag", "", "user+tag"},
		{"user-tag+x", "+-", "user"}, // first of any delimiter in the set
		{"user+tag-x", "-+", "user"}, // order of the set does not matter
		{"+tag", "+", "+tag"},        // nothing left before it: keep
		{"user", "+", "user"},
		{"a+b+c", "+", "a"},
		{"üser§tag", "§", "üser"}, // multi-byte delimiter
		{"user+", "+", "user"},
	}
	for _, tt := range tests {
		if got := StripDelimiter(tt.local, tt.delims); got != tt.want {
			t.Errorf("StripDelimiter(%q, %q) = %q; want %q", tt.local, tt.delims, got, tt.want)
		}
	}
}

func TestLikeMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"%", "", true},
		{"%", "anything", true},
		{"", "", true},
		{"", "a", false},
		{"abc", "abc", true},
		{"abc", "ABC", true},
		{"ABC", "abc", true},
		{"abc", "abcd", false},
		{"abc%", "abcd", true},
		{"%bcd", "abcd", true},
		{"a%d", "abcd", true},
		{"a%d", "abce", false},
		{"a_c", "abc", true},
		{"a_c", "ac", false},
		{"a_c", "abbc", false},
		{"_", "ü", true}, // one character, not one byte
		{"__", "ü", false},
		{"Ü%", "über", true},
		{"k", "\u212a", true}, // Kelvin sign folds to k
		{"sales-%", "sales-eu", true},
		{"sales-%", "sales", false},
		{"%-admin", "web-admin", true},
		{"%%", "", true},
		{"%_%", "", false},
		{"%_%", "x", true},
		{"a%b%c", "aXbYc", true},
		{"a%b%c", "aXbY", false},
		{"a.b", "aXb", false}, // . is not special
		{"a*b", "aXb", false},
		{`a\%`, `a\x`, true}, // no escape character
		{"%a%a%a%a%a%a%a%a%b", strings.Repeat("a", 200), false},
		{"\xff", "\xff", true},
		{"\xff", "\xfe", false},
		{"_", "\xff", true},
	}
	for _, tt := range tests {
		if got := LikeMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("LikeMatch(%q, %q) = %v; want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// likeReference is a plain dynamic-programming LIKE matcher used to check
// LikeMatch in FuzzLikeMatch.
func likeReference(pattern, s string) bool {
	p, t := units(pattern), units(s)
	prev := make([]bool, len(t)+1)
	prev[0] = true
	for _, pc := range p {
		cur := make([]bool, len(t)+1)
		if pc == "%" {
			cur[0] = prev[0]
		}
		for j := 1; j <= len(t); j++ {
			switch pc {
			case "%":
				cur[j] = prev[j] || cur[j-1]
			case "_":
				cur[j] = prev[j-1]
			default:
				_, _, eq := charEqualFold(pc, t[j-1])
				cur[j] = prev[j-1] && eq
			}
		}
		prev = cur
	}
	return prev[len(t)]
}

// units splits s into characters the way LikeMatch sees them.
func units(s string) []string {
	var out []string
	for len(s) > 0 {
		_, w, _ := charEqualFold(s, s)
		out = append(out, s[:w])
		s = s[w:]
	}
	return out
}

// BenchmarkNormalizeDomain: an ASCII domain skips IDNA; an IDN does not.
func BenchmarkNormalizeDomain(b *testing.B) {
	for _, d := range []string{"mail.example.com", "Mail.Example.COM", "bücher.example"} {
		b.Run(d, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeDomain(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
