package tlspolicy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		txts []string
		id   string
		ok   bool
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z", true},
		{[]string{"v=STSv1;id=abc"}, "abc", true},
		{[]string{"v=spf1 -all", "v=STSv1; id=x1; ext=1"}, "x1", true},
		{[]string{"v=spf1 -all"}, "", false},
		{nil, "", false},
		{[]string{"v=STSv1; id=a", "v=STSv1; id=b"}, "", false}, // two records: none
		{[]string{"v=STSv1;"}, "", false},
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33)}, "", false},
		{[]string{"v=STSv1; id=a-b"}, "", false},
		{[]string{"v=STSv1; id"}, "", false},
		{[]string{"v=STSv10; id=a"}, "", false},
	} {
		id, err := ParseRecord(tc.txts)
		if (err == nil) != tc.ok || id != tc.id {
			t.Errorf("ParseRecord(%q) = %q, %v; want %q ok=%v", tc.txts, id, err, tc.id, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrNoRecord) {
			t.Errorf("ParseRecord(%q) error %v is not ErrNoRecord", tc.txts, err)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	good := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com.\r\nmax_age: 604800\r\n"
	p, err := ParsePolicy(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != ModeEnforce || p.MaxAge != 604800*time.Second || len(p.MX) != 3 || p.MX[2] != "backupmx.example.com" {
		t.Errorf("policy %+v", p)
	}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.Example.COM.": true, "a.example.net": true,
		"a.b.example.net": false, "example.net": false, "other.example.com": false, ".example.net": false,
	} {
		if got := p.MatchesMX(host); got != want {
			t.Errorf("MatchesMX(%q) = %v, want %v", host, got, want)
		}
	}
	if p, err := ParsePolicy("version: STSv1\nmode: none\nmax_age: 9999999999\nunknown: x\n"); err != nil || p.Mode != ModeNone || p.MaxAge != MaxMaxAge {
		t.Errorf("mode none: %+v, %v (max_age should be capped)", p, err)
	}
	for _, bad := range []string{
		"",
		"mode: enforce\nmx: a.test\nmax_age: 1\n",                   // no version
		"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",   // wrong version
		"mode: enforce\nversion: STSv1\nmx: a.test\nmax_age: 1\n",   // version not first
		"version: STSv1\nmode: enforce\nmax_age: 1\n",               // no mx
		"version: STSv1\nmode: enforce\nmx: a.test\n",               // no max_age
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",  // bad max_age
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1e5\n", // bad max_age
		"version: STSv1\nmode: sometimes\nmx: a.test\nmax_age: 1\n", // bad mode
		"version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n",  // bad mx
		"version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n", // bad wildcard
		"version: STSv1\nmode: enforce\nmode: testing\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode enforce\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n" + strings.Repeat("x", MaxPolicySize),
	} {
		if p, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) = %+v; want an error", bad, p)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Add("version: STSv1\nmode: testing\nmx: *.\nmax_age: 99999999999\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		if p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone {
			t.Fatalf("mode %q accepted", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("max_age %v accepted", p.MaxAge)
		}
		for _, mx := range p.MX {
			p.MatchesMX(mx)
			p.MatchesMX("x." + strings.TrimPrefix(mx, "*."))
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;", "v=spf1 -all")
	f.Add("v=STSv1;id=", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		id, err := ParseRecord([]string{a, b})
		if err == nil && !validID(id) {
			t.Fatalf("id %q accepted", id)
		}
	})
}
