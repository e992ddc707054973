package msgauth

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// mailuPorts is Mailu's PORTS default.
var mailuPorts = []int{25, 80, 443, 465, 993, 995, 4190}

func testKeyRecord(t *testing.T) string {
	t.Helper()
	return string(readTestdata(t, "pkcs1.dkim.txt"))
}

func TestRecordsGolden(t *testing.T) {
	key := testKeyRecord(t)
	tests := []struct {
		name string
		opts RecordsOptions
	}{
		{"records_default", RecordsOptions{
			Domain: "example.net", Hostnames: []string{"mail.example.com", "mx2.example.com"},
			ServerDomain: "example.com", DMARCRUA: "admin", DMARCRUF: "admin",
			DKIMRecord: key, Ports: mailuPorts, TLS: true}},
		{"records_server_domain", RecordsOptions{
			Domain: "example.com", Hostnames: []string{"mail.example.com"},
			ServerDomain: "example.com", DMARCRUA: "admin",
			DKIMRecord: key, Ports: append([]int{110, 143, 587}, mailuPorts...), TLS: true, LetsEncrypt: true}},
		{"records_nokey_notls", RecordsOptions{
			Domain: "Bücher.Example", Hostnames: []string{"Mail.Example.COM"},
			ServerDomain: "example.com", DMARCRUA: "admin", DMARCRUF: "admin",
			Ports: []int{25, 80, 143, 110, 587}, TLS: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := Records(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := Zone(recs)
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("zone differs from %s:\n got:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// The lines Mailu's admin prints, character for character (models.py
// Domain.dns_* on master).
func TestRecordsMatchMailu(t *testing.T) {
	key := testKeyRecord(t)
	recs, err := Records(RecordsOptions{
		Domain: "example.com", Hostnames: []string{"mail.example.com"},
		ServerDomain: "mailu.io", DMARCRUA: "admin", DMARCRUF: "admin",
		DKIMRecord: key, Ports: mailuPorts, TLS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(Zone(recs), "\n"), "\n")
	want := []string{
		`example.com. 600 IN MX 10 mail.example.com.`,
		`example.com. 600 IN TXT "v=spf1 mx a:mail.example.com ~all"`,
		"", // DKIM: checked below
		`_dmarc.example.com. 600 IN TXT "v=DMARC1; p=reject; rua=mailto:admin@mailu.io; ruf=mailto:admin@mailu.io; adkim=s; aspf=s"`,
		`example.com._report._dmarc.mailu.io. 600 IN TXT "v=DMARC1;"`,
		`_imap._tcp.example.com. 600 IN SRV 0 0 0 .`,
		`_pop3._tcp.example.com. 600 IN SRV 0 0 0 .`,
		`_submission._tcp.example.com. 600 IN SRV 0 0 0 .`,
		`_autodiscover._tcp.example.com. 600 IN SRV 10 1 443 mail.example.com.`,
		`_submissions._tcp.example.com. 600 IN SRV 10 1 465 mail.example.com.`,
		`_imaps._tcp.example.com. 600 IN SRV 10 1 993 mail.example.com.`,
		`_pop3s._tcp.example.com. 600 IN SRV 10 1 995 mail.example.com.`,
		`autoconfig.example.com. 600 IN CNAME mail.example.com.`,
		`autodiscover.example.com. 600 IN CNAME mail.example.com.`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i := range want {
		if i == 2 {
			continue
		}
		if lines[i] != want[i] {
			t.Errorf("line %d\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	// DKIM: Mailu's text, split into 255-character strings.
	dk := lines[2]
	prefix := `dkim._domainkey.example.com. 600 IN TXT `
	if !strings.HasPrefix(dk, prefix) {
		t.Fatalf("dkim line %s", dk)
	}
	data := strings.TrimPrefix(dk, prefix)
	parts := strings.Split(data, `" "`)
	if len(parts) != 2 || len(strings.TrimPrefix(parts[0], `"`)) != 255 {
		t.Errorf("dkim strings not split at 255: %s", data)
	}
	if txt, err := ParseTXT(data); err != nil || txt != key {
		t.Errorf("dkim text %q (%v), want %q", txt, err, key)
	}
}

func TestRecordsVariants(t *testing.T) {
	base := RecordsOptions{Domain: "example.com", Hostnames: []string{"mail.example.com"}, ServerDomain: "example.com",
		DKIMRecord: "v=DKIM1; k=rsa; p=AAAA", TLS: true, Ports: mailuPorts}
	tests := []struct {
		name     string
		mod      func(*RecordsOptions)
		has, not []string
	}{
		{"no rua/ruf", func(o *RecordsOptions) {},
			[]string{`"v=DMARC1; p=reject; adkim=s; aspf=s"`}, []string{"rua=", "_report._dmarc"}},
		{"rua only", func(o *RecordsOptions) { o.DMARCRUA = "reports" },
			[]string{`"v=DMARC1; p=reject; rua=mailto:reports@example.com; adkim=s; aspf=s"`}, []string{"ruf="}},
		{"selector", func(o *RecordsOptions) { o.DKIMSelector = "s1" },
			[]string{"s1._domainkey.example.com. 600 IN TXT"}, []string{"dkim._domainkey"}},
		{"no key", func(o *RecordsOptions) { o.DKIMRecord = "" },
			[]string{"IN MX"}, []string{"_domainkey", "_dmarc"}},
		{"starttls ports on", func(o *RecordsOptions) { o.Ports = append(o.Ports, 143, 110, 587) },
			[]string{"_imap._tcp.example.com. 600 IN SRV 20 1 143 mail.example.com.",
				"_pop3._tcp.example.com. 600 IN SRV 20 1 110 mail.example.com.",
				"_submission._tcp.example.com. 600 IN SRV 20 1 587 mail.example.com."}, []string{"0 0 0 ."}},
		{"465 and 993 follow TLS, not PORTS", func(o *RecordsOptions) { o.Ports = []int{25} },
			[]string{"SRV 10 1 465 ", "SRV 10 1 993 ", "_pop3s._tcp.example.com. 600 IN SRV 0 0 0 .",
				"_autodiscover._tcp.example.com. 600 IN SRV 0 0 0 ."}, nil},
		{"notls", func(o *RecordsOptions) { o.TLS = false },
			[]string{"_imap._tcp"}, []string{"_imaps", "_submissions", "_pop3s", "_autodiscover._tcp"}},
		{"letsencrypt", func(o *RecordsOptions) { o.LetsEncrypt = true },
			[]string{"_25._tcp.mail.example.com. 86400 IN TLSA 2 1 1 0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3",
				"_25._tcp.mail.example.com. 86400 IN TLSA 2 1 1 762195c225586ee6c0237456e2107dc54f1efc21f61a792ebd515913cce68332"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.Ports = append([]int(nil), base.Ports...)
			tt.mod(&o)
			recs, err := Records(o)
			if err != nil {
				t.Fatal(err)
			}
			z := Zone(recs)
			for _, s := range tt.has {
				if !strings.Contains(z, s) {
					t.Errorf("missing %q in\n%s", s, z)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(z, s) {
					t.Errorf("unexpected %q in\n%s", s, z)
				}
			}
		})
	}
}

func TestRecordsErrors(t *testing.T) {
	for _, o := range []RecordsOptions{
		{Domain: "", Hostnames: []string{"mail.example.com"}},
		{Domain: "example.com"},
		{Domain: "example.com", Hostnames: []string{"bad host"}},
		{Domain: "a/b", Hostnames: []string{"mail.example.com"}},
	} {
		if _, err := Records(o); err == nil {
			t.Errorf("Records(%+v) accepted", o)
		}
	}
}

func TestParseTXT(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{`"v=spf1 mx ~all"`, "v=spf1 mx ~all", false},
		{`"ab" "cd"`, "abcd", false},
		{`  "a\"b"  "c\\d" `, `a"bc\d`, false},
		{`"\065\066"`, "AB", false},
		{`""`, "", false},
		{`"\256"`, "", true},
		{`"open`, "", true},
		{`bare`, "", true},
		{`"x\`, "", true},
	}
	for _, tt := range tests {
		got, err := ParseTXT(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseTXT(%s) = %q, %v", tt.in, got, err)
		}
	}
	long := strings.Repeat(`a"b\`, 200)
	r := Record{Name: "x.", TTL: 1, Type: "TXT", Value: long}
	if got, err := ParseTXT(r.Data()); err != nil || got != long {
		t.Errorf("round trip of a long escaped TXT failed: %v", err)
	}
}

// pythonZone parses zone text with dnspython (an independent zone-file
// parser) and prints each record as "name TYPE value", TXT strings joined.
const pythonZone = `
import sys, dns.zone, dns.rdatatype
z = dns.zone.from_text(sys.stdin.read(), origin=".", relativize=False, check_origin=False)
for name, ttl, rd in z.iterate_rdatas():
    t = dns.rdatatype.to_text(rd.rdtype)
    v = b"".join(rd.strings).decode() if t == "TXT" else rd.to_text()
    print(name.to_text(), ttl, t, v)
`

func TestRecordsParseWithDNSPython(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import dns.zone").Run() != nil {
		t.Skip("/usr/bin/python3 has no dnspython")
	}
	recs, err := Records(RecordsOptions{
		Domain: "example.net", Hostnames: []string{"mail.example.com"}, ServerDomain: "example.com",
		DMARCRUA: "admin", DMARCRUF: "admin", DKIMRecord: testKeyRecord(t), Ports: mailuPorts, TLS: true, LetsEncrypt: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "-c", pythonZone)
	cmd.Stdin = strings.NewReader(Zone(recs))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dnspython rejected the zone: %v\n%s", err, out)
	}
	var want []string
	for _, r := range recs {
		want = append(want, fmt.Sprintf("%s %d %s %s", r.Name, r.TTL, r.Type, r.Value))
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dnspython reads\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
