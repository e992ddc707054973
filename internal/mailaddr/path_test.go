package mailaddr

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Path
		addr    string // want.Addr(), when it differs from the input
		wantErr error
	}{
		{name: "plain", in: "user@example.com", want: Path{Local: "user", Domain: "example.com"}},
		{name: "case kept in local, domain lowered", in: "User@Example.COM", want: Path{Local: "User", Domain: "example.com"}, addr: "User@example.com"},
		{name: "angle brackets", in: "<user@example.com>", want: Path{Local: "user", Domain: "example.com"}, addr: "user@example.com"},
		{name: "null", in: "", want: Path{Null: true}},
		{name: "null brackets", in: "<>", want: Path{Null: true}, addr: ""},
		{name: "idna", in: "Üser@Bücher.example", want: Path{Local: "Üser", Domain: "xn--bcher-kva.example"}, addr: "Üser@xn--bcher-kva.example"},
		{name: "smtputf8 local", in: "用户@例え.テスト", want: Path{Local: "用户", Domain: "xn--r8jz45g.xn--zckzah"}, addr: "用户@xn--r8jz45g.xn--zckzah"},
		{name: "trailing dot", in: "a@example.com.", want: Path{Local: "a", Domain: "example.com"}, addr: "a@example.com"},
		{name: "subaddress", in: "a+tag@example.com", want: Path{Local: "a+tag", Domain: "example.com"}},
		{name: "source route", in: "@relay.example:user@example.com", want: Path{Local: "user", Domain: "example.com"}, addr: "user@example.com"},
		{name: "source route 2", in: "<@a.example,@b.example:user@example.com>", want: Path{Local: "user", Domain: "example.com"}, addr: "user@example.com"},
		{name: "source route literal", in: "@[IPv6:2001:db8::1],@b:user@example.com", want: Path{Local: "user", Domain: "example.com"}, addr: "user@example.com"},
		{name: "quoted plain", in: `"john.doe"@example.com`, want: Path{Local: "john.doe", Domain: "example.com"}, addr: "john.doe@example.com"},
		{name: "quoted space", in: `"john doe"@example.com`, want: Path{Local: "john doe", Domain: "example.com"}},
		{name: "dequoted by go-smtp", in: `john doe@example.com`, want: Path{Local: "john doe", Domain: "example.com"}, addr: `"john doe"@example.com`},
		{name: "quoted escapes", in: `"a\"b\\c"@example.com`, want: Path{Local: `a"b\c`, Domain: "example.com"}},
		{name: "quoted double dot", in: `"a..b"@example.com`, want: Path{Local: "a..b", Domain: "example.com"}},
		{name: "64 octets", in: strings.Repeat("x", 64) + "@example.com", want: Path{Local: strings.Repeat("x", 64), Domain: "example.com"}},

		{name: "percent hack", in: "user%evil.example@example.com", wantErr: ErrPercentHack},
		{name: "bang path", in: "evil.example!user@example.com", wantErr: ErrBangPath},
		{name: "quoted at", in: `"user@evil.example"@example.com`, wantErr: ErrQuotedRouting},
		{name: "quoted percent", in: `"user%evil.example"@example.com`, wantErr: ErrPercentHack},
		{name: "quoted percent is quoted routing", in: `"user%evil.example"@example.com`, wantErr: ErrQuotedRouting},
		{name: "quoted bang", in: `"evil!user"@example.com`, wantErr: ErrBangPath},
		{name: "dequoted at = double at", in: "user@evil.example@example.com", wantErr: ErrDoubleAt},
		{name: "double at after quote", in: `"a"@b@example.com`, wantErr: ErrDoubleAt},
		{name: "ipv4 literal", in: "user@[192.0.2.1]", wantErr: ErrAddressLiteral},
		{name: "ipv6 literal", in: "user@[IPv6:2001:db8::1]", wantErr: ErrAddressLiteral},
		{name: "bare ip", in: "user@192.0.2.1", wantErr: ErrAddressLiteral},
		{name: "empty domain", in: "user@", wantErr: ErrEmptyDomain},
		{name: "quoted empty domain", in: `"user"@`, wantErr: ErrEmptyDomain},
		{name: "no at", in: "user", wantErr: ErrNoAt},
		{name: "quoted no at", in: `"user"`, wantErr: ErrNoAt},
		{name: "empty local", in: "@example.com", wantErr: ErrSyntax}, // an A-d-l without ':'
		{name: "empty local after route", in: "@a:@example.com", wantErr: ErrEmptyLocal},
		{name: "empty quoted local", in: `""@example.com`, wantErr: ErrEmptyLocal},
		{name: "65 octets", in: strings.Repeat("x", 65) + "@example.com", wantErr: ErrLocalTooLong},
		{name: "bare LF", in: "us\ner@example.com", wantErr: ErrControlChar},
		{name: "bare CR", in: "user@example.com\r", wantErr: ErrControlChar},
		{name: "NUL", in: "us\x00er@example.com", wantErr: ErrControlChar},
		{name: "tab", in: "us\ter@example.com", wantErr: ErrControlChar},
		{name: "DEL", in: "us\x7fer@example.com", wantErr: ErrControlChar},
		{name: "C1", in: "us\u0085er@example.com", wantErr: ErrControlChar},
		{name: "bad utf8", in: "us\xffer@example.com", wantErr: ErrInvalidUTF8},
		{name: "unterminated quote", in: `"user@example.com`, wantErr: ErrSyntax},
		{name: "text after quote", in: `"user"x@example.com`, wantErr: ErrSyntax},
		{name: "too long", in: strings.Repeat("a", 1000) + "@" + strings.Repeat("b", 30), wantErr: ErrSyntax},
		{name: "route only", in: "@a:", wantErr: ErrSyntax},
		{name: "route without colon", in: "@a.example,@b.example", wantErr: ErrSyntax},
		{name: "route bad separator", in: "@[1.2.3.4]x:user@example.com", wantErr: ErrSyntax},
		{name: "bad domain", in: "user@exa mple.com", wantErr: ErrBadDomain},
		{name: "underscore domain", in: "user@a_b.example", wantErr: ErrBadDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParsePath(%q) = %+v, %v; want error %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePath(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParsePath(%q) = %+v; want %+v", tt.in, got, tt.want)
			}
			addr := tt.in
			if tt.addr != "" || tt.want.Null {
				addr = tt.addr
			}
			if got.Addr() != addr {
				t.Errorf("Addr() = %q; want %q", got.Addr(), addr)
			}
			again, err := ParsePath(got.Addr())
			if err != nil || again != got {
				t.Errorf("ParsePath(Addr()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestPathNormalized(t *testing.T) {
	t.Parallel()
	p, err := ParsePath("Üser+Tag@Bücher.Example")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Normalized(), "üser+tag@xn--bcher-kva.example"; got != want {
		t.Errorf("Normalized() = %q; want %q", got, want)
	}
	if got, want := p.String(), "<Üser+Tag@xn--bcher-kva.example>"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	// Normalized agrees with Normalize for dot-string local parts.
	n, err := Normalize("Üser+Tag@Bücher.Example")
	if err != nil || n != p.Normalized() {
		t.Errorf("Normalize = %q, %v; want %q", n, err, p.Normalized())
	}
	if (Path{Null: true}).Normalized() != "" {
		t.Error("null path Normalized() is not empty")
	}
}
