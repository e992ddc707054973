package mailaddr

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"", "<>", "user@example.com", "<@a,@b:User@Example.COM>", `"a b"@example.com`,
		`"a\"b"@x.example`, "user%evil@example.com", "a!b@example.com", "user@[1.2.3.4]",
		"Üser@Bücher.example", "a@b@c", "us\rer@x", "@[IPv6:::1]:u@x.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		if p.Null {
			if p.Addr() != "" {
				t.Fatalf("null path with Addr %q", p.Addr())
			}
			return
		}
		if p.Local == "" || p.Domain == "" {
			t.Fatalf("ParsePath(%q) = %+v without error", s, p)
		}
		if strings.ContainsAny(p.Local, "@%!") {
			t.Fatalf("ParsePath(%q) let a routing character through: %+v", s, p)
		}
		again, err := ParsePath(p.Addr())
		if err != nil || again != p {
			t.Fatalf("ParsePath(%q) = %+v; re-parse of %q = %+v, %v", s, p, p.Addr(), again, err)
		}
		if d, err := NormalizeDomain(p.Domain); err != nil || d != p.Domain {
			t.Fatalf("domain %q not stable: %q, %v", p.Domain, d, err)
		}
	})
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"User@Example.COM", "Üser@Bücher.example", `"Q@x"@example.com`, "a@b@c", "x@[1.2.3.4]",
		"a@faß.de", "a@xn--bcher-kva.example", "İ@example.com", "CaseCheck.MiXeD@Remote.Example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q; Normalize of that = %q, %v", s, n, again, err)
		}
		_, d := Split(n)
		if dd, err := NormalizeDomain(d); err != nil || dd != d {
			t.Fatalf("domain %q of %q not stable: %q, %v", d, n, dd, err)
		}
		// The case-keeping form differs from n only in its local part's
		// case: both fold to the same look-up key.
		r, err := NormalizeRemote(s)
		if err != nil {
			t.Fatalf("Normalize(%q) ok but NormalizeRemote: %v", s, err)
		}
		if fold, err := Normalize(r); err != nil || fold != n {
			t.Fatalf("NormalizeRemote(%q) = %q folds to %q, %v; want %q", s, r, fold, err, n)
		}
		if key, asGiven, err := NormalizeBoth(s); err != nil || key != n || asGiven != r {
			t.Fatalf("NormalizeBoth(%q) = %q, %q, %v; want %q, %q", s, key, asGiven, err, n, r)
		}
	})
}

func FuzzLikeMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"%", ""}, {"a_c", "abc"}, {"%b%", "abc"}, {"Ü%", "über"}, {"k", "\u212a"}, {"_", "\xff"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := LikeMatch(pattern, s)
		if !strings.ContainsAny(s, "%_") && !LikeMatch(s, s) {
			t.Fatalf("LikeMatch(%q, %q) = false", s, s)
		}
		if !LikeMatch("%", s) {
			t.Fatalf("LikeMatch(%%, %q) = false", s)
		}
		// Keep the quadratic reference cheap.
		if utf8.RuneCountInString(pattern) <= 64 && utf8.RuneCountInString(s) <= 64 {
			if want := likeReference(pattern, s); got != want {
				t.Fatalf("LikeMatch(%q, %q) = %v; reference says %v", pattern, s, got, want)
			}
		}
	})
}

// FuzzPlainDomain: wherever plainDomain takes the short way, IDNA would
// have given the same domain, without an error.
func FuzzPlainDomain(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM", "a-b.c-d", "xn--bcher-kva.example", "XN--BCHER-KVA.example",
		"a.xN--x", "-a.b", "a..b", "1.2.3.4", "a_b.c", "", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		got, ok := plainDomain(d)
		if !ok {
			return
		}
		want, err := idnaProfile().ToASCII(d)
		if err != nil || strings.ToLower(want) != got {
			t.Fatalf("plainDomain(%q) = %q; IDNA gives %q, %v", d, got, want, err)
		}
	})
}
