package mailaddr

import (
	"unicode"
	"unicode/utf8"
)

// LikeMatch reports whether s matches the SQL LIKE pattern as Mailu's
// wildcard aliases use it (models.py Alias.resolve: lower(l) LIKE
// lower(localpart)): % matches any run of characters, _ exactly one
// character, letters compare case-insensitively, and there is no escape
// character.
//
// It is the greedy matcher that remembers only the last %, so it runs in
// O(len(pattern)*len(s)) time with no allocation and no exponential
// backtracking.
func LikeMatch(pattern, s string) bool {
	p, i := 0, 0
	starP, starI := -1, 0 // pattern position after the last %, and where in s it began
	for i < len(s) {
		if p < len(pattern) {
			switch pattern[p] {
			case '%':
				p++
				starP, starI = p, i
				continue
			case '_':
				_, w := utf8.DecodeRuneInString(s[i:])
				p++
				i += w
				continue
			default:
				pw, sw, ok := charEqualFold(pattern[p:], s[i:])
				if ok {
					p += pw
					i += sw
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last % swallow one more character and retry from there.
		_, w := utf8.DecodeRuneInString(s[starI:])
		starI += w
		p, i = starP, starI
	}
	for p < len(pattern) && pattern[p] == '%' {
		p++
	}
	return p == len(pattern)
}

// charEqualFold compares the first character of a and b under simple Unicode
// case folding (as strings.EqualFold). Invalid UTF-8 bytes are characters of
// their own and only equal to the same byte.
func charEqualFold(a, b string) (aw, bw int, ok bool) {
	ra, aw := utf8.DecodeRuneInString(a)
	rb, bw := utf8.DecodeRuneInString(b)
	if ra == utf8.RuneError && aw == 1 || rb == utf8.RuneError && bw == 1 {
		return aw, bw, aw == bw && a[0] == b[0]
	}
	return aw, bw, foldEqual(ra, rb)
}

func foldEqual(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return 'A' <= a && a <= 'Z' && a+'a'-'A' == b || 'A' <= b && b <= 'Z' && b+'a'-'A' == a
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}
