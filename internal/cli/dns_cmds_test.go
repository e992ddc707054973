package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store"
)

// zoneTXT answers TXT look-ups from the zone lines petrel printed, parsed
// back as a resolver would see them.
func zoneTXT(t *testing.T, zone string) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(zone), "\n") {
			owner, rest, _ := strings.Cut(line, " ")
			if !strings.EqualFold(owner, name+".") {
				continue
			}
			i := strings.Index(rest, " IN TXT ")
			if i < 0 {
				continue
			}
			txt, err := msgauth.ParseTXT(rest[i+len(" IN TXT "):])
			if err != nil {
				t.Errorf("zone line %q: %v", line, err)
			}
			out = append(out, txt)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no TXT record for %s", name)
		}
		return out, nil
	}
}

// signAs signs a message From domain with the key file petrel wrote for
// keyDomain, as the queue will.
func (e *env) signAs(domain, keyDomain string) []byte {
	e.t.Helper()
	key, err := e.dkimKeys().Load(context.Background(), keyDomain)
	if err != nil {
		e.t.Fatalf("stored key of %s: %v", keyDomain, err)
	}
	s, err := msgauth.NewSigner(domain, "dkim", key)
	if err != nil {
		e.t.Fatal(err)
	}
	msg := "From: Alice <alice@" + domain + ">\r\nTo: bob@remote.test\r\nSubject: signed\r\n" +
		"Date: Tue, 4 Mar 2025 05:06:07 +0100\r\nMessage-ID: <1@" + domain + ">\r\n\r\nHello Bob.\r\n"
	var out bytes.Buffer
	if err := s.Sign(context.Background(), &out, strings.NewReader(msg)); err != nil {
		e.t.Fatal(err)
	}
	return out.Bytes()
}

func verify(t *testing.T, msg []byte, zone string) error {
	t.Helper()
	v, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: zoneTXT(t, zone)})
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 {
		t.Fatalf("%d signatures", len(v))
	}
	return v[0].Err
}

// `petrel dns` prints Mailu's records, and a message signed with the key
// `petrel domain` generated verifies against the DKIM record it prints.
func TestDNSRecordsVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "domain", "example.com")
	zone := e.ok("", "dns", "example.com").stdout

	for _, want := range []string{
		"example.com. 600 IN MX 10 mail.example.com.\n",
		`example.com. 600 IN TXT "v=spf1 mx a:mail.example.com ~all"` + "\n",
		`dkim._domainkey.example.com. 600 IN TXT "v=DKIM1; k=rsa; p=`,
		`_dmarc.example.com. 600 IN TXT "v=DMARC1; p=reject; rua=mailto:postmaster@example.com; ruf=mailto:postmaster@example.com; adkim=s; aspf=s"` + "\n",
		"_submissions._tcp.example.com. 600 IN SRV 10 1 465 mail.example.com.\n",
		"_imaps._tcp.example.com. 600 IN SRV 10 1 993 mail.example.com.\n",
		"_submission._tcp.example.com. 600 IN SRV 0 0 0 .\n", // 587 is not in the default PORTS
		"autoconfig.example.com. 600 IN CNAME mail.example.com.\n",
		"autodiscover.example.com. 600 IN CNAME mail.example.com.\n",
	} {
		if !strings.Contains(zone, want) {
			t.Errorf("petrel dns lacks %q:\n%s", want, zone)
		}
	}
	if strings.Contains(zone, "_report._dmarc") || strings.Contains(zone, "TLSA") {
		t.Errorf("report authorisation for DOMAIN itself, or TLSA:\n%s", zone)
	}

	signed := e.signAs("example.com", "example.com")
	if err := verify(t, signed, zone); err != nil {
		t.Fatalf("signature does not verify against the printed record: %v", err)
	}
	if err := verify(t, bytes.Replace(signed, []byte("Hello Bob"), []byte("Hello Eve"), 1), zone); err == nil {
		t.Error("a changed body verifies")
	}
	pythonVerify(t, signed, zone, "dkim._domainkey.example.com.", "PASS")

	// `petrel dkim` replaces the key: the old signature no longer
	// verifies against the new record, a new one does.
	line := e.ok("", "dkim", "example.com").stdout
	if !strings.HasPrefix(line, `dkim._domainkey.example.com. 600 IN TXT "v=DKIM1; k=rsa; p=`) || strings.Count(line, "\n") != 1 {
		t.Fatalf("petrel dkim printed %q", line)
	}
	newZone := e.ok("", "dns", "example.com").stdout
	if !strings.Contains(newZone, line) || strings.Contains(zone, line) {
		t.Fatalf("petrel dns does not show the new record")
	}
	if err := verify(t, signed, newZone); err == nil {
		t.Error("the old key still verifies after petrel dkim")
	}
	if err := verify(t, e.signAs("example.com", "example.com"), newZone); err != nil {
		t.Errorf("new key: %v", err)
	}
}

// An alternative is signed as itself with its domain's key; its records
// carry that key and a report authorisation at DOMAIN.
func TestDNSAlternative(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "user", "alice", "example.org", "pw-alice-123") // creates example.org and its key
	st := e.store()
	if err := st.CreateAlternative(context.Background(), &store.Alternative{Name: "alt.example", DomainName: "example.org"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	zone := e.ok("", "dns", "Alt.Example").stdout
	for _, want := range []string{
		"alt.example. 600 IN MX 10 mail.example.com.\n",
		`dkim._domainkey.alt.example. 600 IN TXT "v=DKIM1; k=rsa; p=`,
		`alt.example._report._dmarc.example.com. 600 IN TXT "v=DMARC1;"` + "\n",
	} {
		if !strings.Contains(zone, want) {
			t.Errorf("petrel dns alt.example lacks %q:\n%s", want, zone)
		}
	}
	signed := e.signAs("alt.example", "example.org")
	if err := verify(t, signed, zone); err != nil {
		t.Fatalf("alternative: %v", err)
	}
	pythonVerify(t, signed, zone, "dkim._domainkey.alt.example.", "PASS")
	e.fails(1, "alternative of example.org", "dkim", "alt.example")
}

func TestDNSSettingsAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["DMARC_RUA"] = "dmarc"
	e.vars["DMARC_RUF"] = "forensic"
	e.vars["PORTS"] = "25,80,443,465,587,993,143,995,110"
	e.vars["TLS_FLAVOR"] = "notls"
	e.vars["HOSTNAMES"] = "mx1.example.com,mx2.example.com"
	e.ok("", "domain", "example.net")
	zone := e.ok("", "dns", "example.net").stdout
	for _, want := range []string{
		"example.net. 600 IN MX 10 mx1.example.com.\n",
		"rua=mailto:dmarc@example.com; ruf=mailto:forensic@example.com;",
		`example.net._report._dmarc.example.com. 600 IN TXT "v=DMARC1;"`,
		"_submission._tcp.example.net. 600 IN SRV 20 1 587 mx1.example.com.\n",
		"_imap._tcp.example.net. 600 IN SRV 20 1 143 mx1.example.com.\n",
	} {
		if !strings.Contains(zone, want) {
			t.Errorf("lacks %q:\n%s", want, zone)
		}
	}
	if strings.Contains(zone, "_submissions.") || strings.Contains(zone, "_imaps.") {
		t.Errorf("implicit-TLS SRV records under TLS_FLAVOR=notls:\n%s", zone)
	}

	// Without a key: no DKIM and DMARC records, and a hint.
	st := e.store()
	if err := st.DeleteDKIMKey(context.Background(), "example.net", "dkim"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := e.ok("", "dns", "example.net")
	if strings.Contains(r.stdout, "DKIM1") || strings.Contains(r.stdout, "DMARC1") || !strings.Contains(r.stdout, " MX ") {
		t.Errorf("records without a key:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "petrel dkim example.net") {
		t.Errorf("no hint on stderr: %q", r.stderr)
	}

	e.fails(1, "nowhere.example is neither a domain nor an alternative", "dns", "nowhere.example")
	e.fails(1, "domain nowhere.example does not exist", "dkim", "nowhere.example")
	e.fails(1, "invalid domain name", "dns", "bad..name")
	e.fails(2, "expected 1 argument", "dns")
	e.fails(2, "expected 1 argument", "dkim", "a.example", "b.example")
}

// pythonVerify checks the signature with Debian's python3-dkim, whose
// dnsfunc answers from the printed zone.
func pythonVerify(t *testing.T, msg []byte, zone, name, want string) {
	t.Helper()
	if exec.Command("/usr/bin/python3", "-c", "import dkim").Run() != nil {
		t.Log("skipping python3-dkim check: /usr/bin/python3 cannot import dkim")
		return
	}
	const script = `
import os, re, sys, dkim
zone, want = os.environ["PETREL_ZONE"], os.environ["PETREL_NAME"]
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    for line in zone.splitlines():
        owner, ttl, cls, typ, data = line.split(" ", 4)
        if typ == "TXT" and owner.lower() == name.lower() and owner.lower() == want:
            return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', data)).encode()
    return None
print("PASS" if dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc) else "FAIL")
`
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Env = append(os.Environ(), "PETREL_ZONE="+zone, "PETREL_NAME="+name)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("python3-dkim: %s, want %s", got, want)
	}
}

// `petrel dns` suggests only what serve answers: no autodiscover when 443
// is not served (TLS_FLAVOR=mail), nothing at all for the web when 80 and
// 443 are off, a real submission SRV only once 587 is on, and, as Mailu,
// no ManageSieve record even though 4190 is served.
func TestDNSRecordsOnlyServed(t *testing.T) {
	t.Parallel()
	zone := func(vars map[string]string) string {
		e := newEnv(t)
		for k, v := range vars {
			e.vars[k] = v
		}
		e.ok("", "domain", "example.com")
		return e.ok("", "dns", "example.com").stdout
	}
	has := func(t *testing.T, z, rec string, want bool) {
		t.Helper()
		if strings.Contains(z, rec) != want {
			t.Errorf("record %q present=%v, want %v:\n%s", rec, !want, want, z)
		}
	}
	z := zone(map[string]string{"TLS_FLAVOR": "mail"})
	has(t, z, "autoconfig.example.com. 600 IN CNAME", true) // 80 serves it
	has(t, z, "autodiscover.example.com.", false)
	has(t, z, "_autodiscover._tcp.example.com. 600 IN SRV 0 0 0 .\n", true)

	z = zone(map[string]string{"PORTS": "25,465,993,995", "TLS": "465,993,995"})
	has(t, z, "autoconfig.example.com.", false)
	has(t, z, "autodiscover.example.com.", false)
	has(t, z, "_submission._tcp.example.com. 600 IN SRV 0 0 0 .\n", true)

	z = zone(map[string]string{"PORTS": "25,80,443,465,587,993,995,4190"})
	has(t, z, "_submission._tcp.example.com. 600 IN SRV 20 1 587 mail.example.com.\n", true)
	has(t, z, "autodiscover.example.com. 600 IN CNAME mail.example.com.\n", true)
	has(t, z, "4190", false)
	has(t, z, "sieve", false)
}

// dkimKeys opens the DKIM keys in the env's store as the CLI does.
func (e *env) dkimKeys() *msgauth.Keys {
	e.t.Helper()
	st := e.store()
	e.t.Cleanup(func() { st.Close() })
	cfg := &config.Config{SecretKey: e.vars["SECRET_KEY"], DataDir: e.vars["DATA_DIR"]}
	master, err := secret.Load(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	sealer, err := secret.NewSealer(master, msgauth.SealPurpose)
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := msgauth.NewStoreKeys(msgauth.KeysOptions{Store: st, Sealer: sealer})
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}
