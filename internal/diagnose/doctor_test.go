package diagnose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/testutil"
)

const dkimRec = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAgoodkey"

// expected is what `petrel dns example.test` suggests for the test server.
func expected(t *testing.T) []msgauth.Record {
	t.Helper()
	recs, err := msgauth.Records(msgauth.RecordsOptions{Domain: "example.test", Hostnames: []string{"mail.example.test"},
		ServerDomain: "example.test", DMARCRUA: "admin", DKIMSelector: "dkim", DKIMRecord: dkimRec,
		Served: []int{25, 465, 993, 443}, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func cfgFor(t *testing.T, extra map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{"DATA_DIR": t.TempDir(), "DOMAIN": "example.test", "HOSTNAMES": "mail.example.test",
		"SECRET_KEY": "0123456789abcdef0123456789abcdef", "TLS_FLAVOR": "notls", "DISK_RESERVE": "1"}
	for k, v := range extra {
		env[k] = v
	}
	cfg, problems := config.Parse(env)
	if config.HasErrors(problems) {
		t.Fatalf("config: %v", problems)
	}
	return cfg
}

// find returns the findings of area whose detail contains s.
func find(fs []Finding, area, s string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Area == area && strings.Contains(f.Detail, s) {
			out = append(out, f)
		}
	}
	return out
}

// TestDoctorDNSCorrect: a zone that publishes what `petrel dns` suggests,
// with forward-confirmed reverse DNS, gives no DNS problem or warning.
func TestDoctorDNSCorrect(t *testing.T) {
	dns := dnstest.New(t)
	dns.Add(t,
		"example.test. MX 10 mail.example.test.",
		"mail.example.test. A 192.0.2.10",
		"10.2.0.192.in-addr.arpa. PTR mail.example.test.",
		`example.test. TXT "v=spf1 mx a:mail.example.test ~all"`,
		`dkim._domainkey.example.test. TXT "`+dkimRec+`"`,
		`_dmarc.example.test. TXT "v=DMARC1; p=reject; rua=mailto:admin@example.test; adkim=s; aspf=s"`,
		"autoconfig.example.test. CNAME mail.example.test.",
		"autodiscover.example.test. CNAME mail.example.test.",
		`_mta-sts.example.test. TXT "v=STSv1; id=2026120501"`,
		"mta-sts.example.test. A 192.0.2.10",
		`_smtp._tls.example.test. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"`,
	)
	fs := Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Resolver: dns.Resolver(),
		Domains: []DomainRecords{{Domain: "example.test", Records: expected(t)}}})
	oks := 0
	for _, f := range fs {
		if f.Area != "dns" {
			continue
		}
		if f.Severity == Problem || f.Severity == Warning {
			t.Errorf("correct zone reported: %+v", f)
		}
		if f.Severity == OK {
			oks++
		}
	}
	// MX, PTR, SPF, DKIM, DMARC, autoconfig, autodiscover, MTA-STS, TLS-RPT.
	if oks < 9 {
		t.Errorf("only %d DNS checks passed: %+v", oks, fs)
	}
}

// TestDoctorDNSBroken: each broken record is one problem, with a fix
// that names the record to publish or what to ask for.
func TestDoctorDNSBroken(t *testing.T) {
	dns := dnstest.New(t)
	dns.Add(t,
		"example.test. MX 10 old-mx.example.net.",
		"mail.example.test. A 192.0.2.10",
		"10.2.0.192.in-addr.arpa. PTR static-10.provider.example.",
		`example.test. TXT "v=spf1 mx ~all"`,
		`example.test. TXT "v=spf1 include:old.example ~all"`,
		`dkim._domainkey.example.test. TXT "v=DKIM1; k=rsa; p=MIIBoldkey"`,
		"autoconfig.example.test. A 198.51.100.7",
		`_mta-sts.example.test. TXT "v=STSv1; id=1"`,
		`_smtp._tls.example.test. TXT "v=TLSRPTv1;"`,
	)
	fs := Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Resolver: dns.Resolver(),
		Domains: []DomainRecords{{Domain: "example.test", Records: expected(t)}}})
	cases := []struct{ detail, sev, fix string }{
		{"MX points to old-mx.example.net", Problem, "publish: example.test. 600 IN MX 10 mail.example.test."},
		{"reverse DNS of 192.0.2.10 is static-10.provider.example", Problem, "set its reverse DNS (PTR) to mail.example.test"},
		{"2 SPF records", Problem, "keep only one"},
		{"not the key Petrel signs with", Problem, "publish: dkim._domainkey.example.test. 600 IN TXT"},
		{"no DMARC record at _dmarc.example.test", Problem, "publish: _dmarc.example.test. 600 IN TXT \"v=DMARC1; p=reject;"},
		{"autoconfig.example.test resolves elsewhere", Warning, "publish: autoconfig.example.test. 600 IN CNAME mail.example.test."},
		{"autodiscover.example.test does not resolve", Warning, "autodiscover.example.test. 600 IN CNAME"},
		{"mta-sts.example.test does not resolve", Problem, "/.well-known/mta-sts.txt"},
		{"not a valid TLS-RPT record", Problem, "rua=mailto:tlsrpt@example.test"},
	}
	for _, c := range cases {
		got := find(fs, "dns", c.detail)
		if len(got) != 1 {
			t.Errorf("want one finding %q, got %d: %+v", c.detail, len(got), fs)
			continue
		}
		if got[0].Severity != c.sev || !strings.Contains(got[0].Fix, c.fix) {
			t.Errorf("%q: severity %s, fix %q; want %s with %q", c.detail, got[0].Severity, got[0].Fix, c.sev, c.fix)
		}
	}

	// No A record for the host, no PTR, and a domain without a DKIM key.
	dns2 := dnstest.New(t)
	dns2.Add(t, "example.test. MX 10 mail.example.test.")
	fs = Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Resolver: dns2.Resolver(),
		Domains: []DomainRecords{{Domain: "example.test", NoDKIM: true, Records: expected(t)[:2]}}})
	if f := find(fs, "dns", "no A or AAAA record"); len(f) != 1 || !strings.Contains(f[0].Fix, "mail.example.test. A") {
		t.Errorf("missing host address: %+v", fs)
	}
	if f := find(fs, "dns", "no DKIM key"); len(f) != 1 || f[0].Fix != "petrel dkim example.test, then publish the record it prints" {
		t.Errorf("missing DKIM key: %+v", fs)
	}
	if f := find(fs, "dns", "no SPF record"); len(f) != 1 || f[0].Severity != Problem {
		t.Errorf("missing SPF: %+v", fs)
	}
}

// fakeSMTP answers like an SMTP server on ln: a greeting, EHLO keywords.
func fakeSMTP(t *testing.T, ln net.Listener, keywords ...string) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("220 mail.example.test ESMTP\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch strings.ToUpper(strings.Fields(line + " x")[0]) {
					case "EHLO":
						out := "250-mail.example.test\r\n"
						for _, k := range keywords {
							out += "250-" + k + "\r\n"
						}
						c.Write([]byte(out + "250 8BITMIME\r\n"))
					case "QUIT":
						c.Write([]byte("221 bye\r\n"))
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

// TestDoctorPortsAndCertificate: a listener that is down is a problem
// with the setting to check; AUTH on port 25 is a problem; an expired
// certificate for the wrong name is reported with its fix; 587 off is
// explained; outbound 25 blocked suggests RELAYHOST.
func TestDoctorPortsAndCertificate(t *testing.T) {
	ln25, _ := net.Listen("tcp", "127.0.0.1:0")
	fakeSMTP(t, ln25, "AUTH PLAIN LOGIN")
	cert := testutil.NewCert(t, "other.example")
	raw, _ := net.Listen("tcp", "127.0.0.1:0")
	fakeSMTP(t, tls.NewListener(raw, cert.Server))
	// Two ports nothing listens on (taken, then released).
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	dead2, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr, dead2Addr := dead.Addr().String(), dead2.Addr().String()
	dead.Close()
	dead2.Close()
	cfg := cfgFor(t, map[string]string{"TLS_FLAVOR": "cert", "LISTEN_25": ln25.Addr().String(), "LISTEN_465": raw.Addr().String(),
		"LISTEN_993": deadAddr, "LISTEN_995": dead2Addr})
	roots := x509.NewCertPool()
	roots.AddCert(cert.Server.Certificates[0].Leaf)
	fs := Doctor(t.Context(), DoctorOptions{Config: cfg, Probe: true, Outbound: deadAddr, Timeout: 10 * time.Second,
		Now: func() time.Time { return time.Now().Add(48 * time.Hour) }, Roots: roots})

	if f := find(fs, "ports", "port 25 offers AUTH"); len(f) != 1 || f[0].Severity != Problem {
		t.Errorf("AUTH on 25 not reported: %+v", fs)
	}
	if f := find(fs, "ports", "cannot connect to "+deadAddr); len(f) < 1 || !strings.Contains(f[0].Fix, "LISTEN_993") {
		t.Errorf("dead 993 not reported with its setting: %+v", fs)
	}
	if f := find(fs, "ports", "off"); len(f) != 2 || f[0].Detail != "off" || f[0].Subject != "587 submission" || !strings.Contains(f[0].Fix, "add 587 to PORTS") {
		t.Errorf("closed 587 not explained: %+v", fs)
	}
	if f := find(fs, "certificate", "expired on"); len(f) != 1 || !strings.Contains(f[0].Fix, "renew") {
		t.Errorf("expired certificate not reported: %+v", fs)
	}
	if f := find(fs, "certificate", "does not cover mail.example.test"); len(f) != 1 || f[0].Severity != Problem {
		t.Errorf("wrong certificate name not reported: %+v", fs)
	}
	if f := find(fs, "ports", "cannot reach "+deadAddr); len(f) != 1 || !strings.Contains(f[0].Fix, "RELAYHOST") {
		t.Errorf("blocked outbound 25 not reported: %+v", fs)
	}
	var text, js bytes.Buffer
	WriteText(&text, fs)
	if !strings.Contains(text.String(), "PROBLEM 25 smtp (MX): port 25 offers AUTH") || !strings.Contains(text.String(), "fix: ") {
		t.Errorf("text report:\n%s", text.String())
	}
	if err := WriteJSON(&js, fs); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Problems int
		Findings []Finding
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil || doc.Problems != Problems(fs) || doc.Problems < 5 || len(doc.Findings) != len(fs) {
		t.Errorf("JSON report: %v %+v", err, doc)
	}
}

type fakeStore struct {
	ping  error
	items []store.QueueItem
}

func (f *fakeStore) Ping(context.Context) error { return f.ping }
func (f *fakeStore) ListQueueEntries(context.Context) ([]store.QueueItem, error) {
	return f.items, nil
}

// TestDoctorQueueStoreDisk: an old deferred entry is a problem naming the
// common error; a dead database is a problem; a disk under DISK_RESERVE
// is a problem.
func TestDoctorQueueStoreDisk(t *testing.T) {
	now := time.Now()
	st := &fakeStore{items: []store.QueueItem{
		{ID: 1, Attempts: 3, LastError: "dial tcp 203.0.113.5:25: i/o timeout", CreatedAt: now.Add(-30 * time.Hour)},
		{ID: 2, Attempts: 1, LastError: "dial tcp 203.0.113.5:25: i/o timeout", CreatedAt: now.Add(-time.Hour)},
		{ID: 3, CreatedAt: now},
	}}
	fs := Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Store: st})
	if f := find(fs, "queue", "3 entries, 2 deferred"); len(f) != 1 || f[0].Severity != Problem ||
		!strings.Contains(f[0].Detail, "i/o timeout") || !strings.Contains(f[0].Fix, "petrel queue list") {
		t.Errorf("queue: %+v", fs)
	}
	if f := find(fs, "disk", "free of"); len(f) != 1 || f[0].Severity == Problem {
		t.Errorf("disk with 1 byte reserve: %+v", fs)
	}
	st.ping = errors.New("connection refused")
	fs = Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, map[string]string{"DISK_RESERVE": "1000000000000000"}), Store: st})
	if f := find(fs, "store", "does not answer"); len(f) != 1 || f[0].Severity != Problem {
		t.Errorf("dead database: %+v", fs)
	}
	if f := find(fs, "disk", "less than DISK_RESERVE"); len(f) != 1 || f[0].Severity != Problem {
		t.Errorf("full disk: %+v", fs)
	}
}

type noAccounts struct{ Accounts }

// TestDoctorBareUsername: --user with a bare name is a problem that says
// to use the full address.
func TestDoctorBareUsername(t *testing.T) {
	fs := Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Accounts: noAccounts{}, Login: "alice"})
	f := find(fs, "account", "not a full email address")
	if len(f) != 1 || f[0].Severity != Problem || !strings.Contains(f[0].Detail, "alice@example.test") {
		t.Fatalf("bare username: %+v", fs)
	}
	if g := find(fs, "ports", "full email address as the username"); len(g) != 1 {
		t.Errorf("no login advice: %+v", fs)
	}
}

// TestDoctorMTASTSID: a published _mta-sts id other than the served
// policy's is a warning naming the record to publish; the right one is
// not.
func TestDoctorMTASTSID(t *testing.T) {
	recs, err := msgauth.Records(msgauth.RecordsOptions{Domain: "example.test", Hostnames: []string{"mail.example.test"},
		Served: []int{25, 443}, TLS: true, MTASTSID: "42cd25c14e55a3a9fa02"})
	if err != nil {
		t.Fatal(err)
	}
	for id, warn := range map[string]bool{"2026120501": true, "42cd25c14e55a3a9fa02": false} {
		dns := dnstest.New(t)
		dns.Add(t, `_mta-sts.example.test. TXT "v=STSv1; id=`+id+`"`, "mta-sts.example.test. A 192.0.2.10")
		fs := Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Resolver: dns.Resolver(),
			Domains: []DomainRecords{{Domain: "example.test", Records: recs}}})
		got := find(fs, "dns", "is not the id of the policy Petrel serves")
		if warn && (len(got) != 1 || got[0].Severity != Warning || !strings.Contains(got[0].Fix, `_mta-sts.example.test. 600 IN TXT "v=STSv1; id=42cd25c14e55a3a9fa02"`)) {
			t.Errorf("stale id %s: %+v", id, got)
		}
		if !warn && len(got) != 0 {
			t.Errorf("current id reported: %+v", got)
		}
	}
}
