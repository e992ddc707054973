package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
)

// TestDoctorCommand: `petrel doctor` checks the store's domains against
// the in-process DNS (RESOLVER_ADDRESS) and exits 1 with each problem and
// its fix; the DKIM record it expects is the one `petrel dns` prints;
// --json gives the same findings to scripts.
func TestDoctorCommand(t *testing.T) {
	e := newEnv(t)
	dns := dnstest.New(t)
	e.vars["RESOLVER_ADDRESS"] = dns.Addr
	e.vars["DISK_RESERVE"] = "1"
	e.ok("", "domain", "example.com")
	zone := e.ok("", "dns", "example.com").stdout
	var dkim string
	for _, l := range strings.Split(zone, "\n") {
		if strings.HasPrefix(l, "dkim._domainkey.example.com.") {
			dkim = l
		}
	}
	if dkim == "" {
		t.Fatalf("no DKIM record in:\n%s", zone)
	}
	dns.Add(t,
		"example.com. MX 10 mail.example.com.",
		"mail.example.com. A 192.0.2.10",
		"10.2.0.192.in-addr.arpa. PTR mail.example.com.",
		`example.com. TXT "v=spf1 mx a:mail.example.com ~all"`,
		strings.Replace(dkim, " 600 IN ", " ", 1),
	)
	r := e.run("", "doctor", "--no-probe")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (DMARC missing)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"ok      example.com: MX points to mail.example.com", "ok      example.com: DKIM record present",
		"ok      192.0.2.10: reverse DNS is mail.example.com", "PROBLEM example.com: no DMARC record at _dmarc.example.com",
		"fix: publish: _dmarc.example.com. 600 IN TXT", "Queue:", "Disk:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.run("", "doctor", "--no-probe", "--json", "example.com")
	var doc struct {
		Problems int
		Findings []struct{ Area, Severity, Subject, Detail, Fix string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 1 || doc.Problems != 1 {
		t.Fatalf("--json: exit %d, %v, %+v\n%s", r.code, err, doc, r.stdout)
	}
}
