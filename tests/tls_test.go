package tests

import (
	"strings"
	"testing"
)

// tlsProbe is a Python ssl client that offers one cipher list at TLS 1.2
// at most, on implicit-TLS ports (465, 993, 995, 443) and on port 25 after
// STARTTLS. It prints one line per port: "<port> OK <cipher>" or
// "<port> REFUSED <reason>".
const tlsProbe = `
import os, smtplib, socket, ssl
def ctx(ciphers):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.maximum_version = ssl.TLSVersion.TLSv1_2
    c.set_ciphers(ciphers)
    return c
ciphers = os.environ["CIPHERS"]
for name in ("465", "993", "995", "443"):
    host, port = os.environ["A" + name].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with ctx(ciphers).wrap_socket(raw) as s:
                print(name, "OK", s.cipher()[0])
    except (ssl.SSLError, ConnectionError) as e:
        print(name, "REFUSED", type(e).__name__)
host, port = os.environ["A25"].split(":")
try:
    m = smtplib.SMTP(host, int(port), timeout=10)
    m.ehlo("probe.example.org")
    m.starttls(context=ctx(ciphers))
    print("25", "OK", m.sock.cipher()[0])
    m.quit()
except (ssl.SSLError, ConnectionError, smtplib.SMTPException) as e:
    print("25", "REFUSED", type(e).__name__)
`

// TestCipherSuitesOffered: ports with AUTH (465, 993, 995) and HTTPS (443) have Mozilla's
// intermediate profile, so a client that offers only CBC-SHA1 suites
// (LUCKY13) is refused, while port 25 with TLS_PERMISSIVE (the default)
// accepts it; the intermediate AEAD suites work everywhere (issue 17).
func TestCipherSuitesOffered(t *testing.T) {
	s := withUsers(t, nil)
	env := map[string]string{"A25": s.addr[25], "A465": s.addr[465], "A993": s.addr[993], "A995": s.addr[995], "A443": s.addr[443]}
	probe := func(ciphers string) map[string]string {
		t.Helper()
		env["CIPHERS"] = ciphers
		out, err := runPython(t, tlsProbe, env)
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				got[f[0]] = strings.Join(f[1:], " ")
			}
		}
		return got
	}

	// @SECLEVEL=0 so that the client's OpenSSL really offers the old suites.
	cbc := probe("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:@SECLEVEL=0")
	for _, port := range []string{"465", "993", "995", "443"} {
		if !strings.HasPrefix(cbc[port], "REFUSED") {
			t.Errorf("port %s with a CBC-SHA1-only client: %q, want refused", port, cbc[port])
		}
	}
	if !strings.HasPrefix(cbc["25"], "OK ECDHE-ECDSA-AES") {
		t.Errorf("port 25 (TLS_PERMISSIVE) with a CBC-SHA1-only client: %q, want accepted", cbc["25"])
	}

	for _, suite := range []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"} {
		aead := probe(suite)
		for _, port := range []string{"25", "465", "993", "995", "443"} {
			if aead[port] != "OK "+suite {
				t.Errorf("port %s offered only %s: %q", port, suite, aead[port])
			}
		}
	}
}
