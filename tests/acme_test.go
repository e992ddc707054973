package tests

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/testutil/pebbletest"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// TestLetsEncryptFlavor runs petrel with TLS_FLAVOR=letsencrypt against
// pebble, which validates over petrel's own port 80 and 443 through the
// test DNS server: the certificate it issues is served on 465, 993 and
// 443 (and after STARTTLS on 25), and a restart serves it from the
// database without a new order.
func TestLetsEncryptFlavor(t *testing.T) {
	s := newServer(t, map[string]string{"TLS_FLAVOR": "letsencrypt"})
	s.dns.Add(t, "mail.example.test. A 127.0.0.1")
	ca := pebbletest.Start(t, pebbletest.Options{DNS: s.dns.Addr, HTTPPort: portOf(s.addr[80]), TLSPort: portOf(s.addr[443])})
	s.env["ACME_DIRECTORY"] = ca.Directory
	s.env["ACME_CA_ROOTS"] = ca.RootsFile
	s.mustCLI("", "domain", "example.test")
	s.start()
	roots := ca.Roots(t)

	var serial string
	for _, port := range []int{465, 993, 443} {
		leaf := waitPebbleCert(t, s, s.addr[port], roots)
		if serial != "" && leaf.SerialNumber.Text(16) != serial {
			t.Errorf("port %d serves serial %x, port 465 %s", port, leaf.SerialNumber, serial)
		}
		serial = leaf.SerialNumber.Text(16)
	}
	// Port 25 after STARTTLS: the same certificate.
	c, err := smtp.Dial(s.addr[25])
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{ServerName: "mail.example.test", RootCAs: roots}); err != nil {
		t.Fatalf("STARTTLS on 25 with pebble's root: %v", err)
	}
	st, _ := c.TLSConnectionState()
	if st.PeerCertificates[0].SerialNumber.Text(16) != serial {
		t.Errorf("port 25 serves another certificate")
	}
	c.Close()
	// The whole chain goes out (DANE-TA needs the issuer), and the TLSA
	// 3 1 1 record petrel dns computes from the stored certificates
	// matches what port 25 serves.
	if len(st.PeerCertificates) < 2 {
		t.Errorf("port 25 sent %d certificates, want the chain", len(st.PeerCertificates))
	}
	checkPrintedTLSA(t, s, st)
	if !strings.Contains(s.logs(), "ACME: certificate obtained") {
		t.Errorf("the log does not say the certificate was obtained:\n%s", s.logs())
	}
	issued := ca.Issued()

	// Port 80 answers challenges itself, never redirected to 443 (Mailu's
	// /.well-known/acme-challenge/testing self-check is 204), while the
	// rest of the site redirects.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/.well-known/acme-challenge/testing": 204, "/.well-known/acme-challenge/unknown-token": 404, "/admin": 301} {
		resp, err := noFollow.Get("http://" + s.addr[80] + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("port 80 %s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.start()
	leaf := waitPebbleCert(t, s, s.addr[993], roots)
	if got := leaf.SerialNumber.Text(16); got != serial {
		t.Errorf("after a restart port 993 serves serial %s, want the stored %s", got, serial)
	}
	if got := ca.Issued(); got != issued {
		t.Errorf("the restart ordered %d new certificates", got-issued)
	}
}

// checkPrintedTLSA verifies cs against the TLSA records `petrel dns
// example.test` prints for _25._tcp.mail.example.test.
func checkPrintedTLSA(t *testing.T, s *server, cs tls.ConnectionState) {
	t.Helper()
	zone := s.mustCLI("", "dns", "example.test")
	var recs []dnsres.TLSA
	for _, line := range strings.Split(zone, "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[0] == "_25._tcp.mail.example.test." && f[3] == "TLSA" && f[4]+f[5]+f[6] == "311" {
			data, err := hex.DecodeString(f[7])
			if err != nil {
				t.Fatalf("TLSA data %q: %v", f[7], err)
			}
			recs = append(recs, dnsres.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: data})
		}
	}
	if len(recs) == 0 {
		t.Fatalf("petrel dns printed no TLSA 3 1 1 record:\n%s", zone)
	}
	if err := tlspolicy.VerifyDANE(recs, cs, []string{"mail.example.test"}, time.Now()); err != nil {
		t.Errorf("printed TLSA records do not match port 25: %v\n%s", err, zone)
	}
}

// waitPebbleCert polls addr until it serves a certificate for the main
// hostname that chains to pebble's root.
func waitPebbleCert(t *testing.T, s *server, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	cfg := &tls.Config{ServerName: "mail.example.test", RootCAs: roots}
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			leaf := c.ConnectionState().PeerCertificates[0]
			c.Close()
			return leaf
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served pebble's certificate: %v\n%s", addr, err, s.logs())
		}
		time.Sleep(100 * time.Millisecond) // polling the server under test
	}
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
