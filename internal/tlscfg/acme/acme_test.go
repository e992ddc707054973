package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
	"github.com/petrelmail/petrel/internal/testutil/pebbletest"
)

const mainHost = "mail.petrel.test"

// node is one Petrel node's ACME side: its port-80 and port-443 listeners
// and a Manager over a store.
type node struct {
	m        *Manager
	http     string // port-80 role address
	tls      string // port-443 role address
	log      *testutil.LogBuffer
	fallback *tls.Certificate
}

// listeners opens a node's port-80 and port-443 sockets.
func listeners(t *testing.T) (ln80, ln443 net.Listener) {
	t.Helper()
	var err error
	if ln80, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if ln443, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return ln80, ln443
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// startNode serves the challenge handler on ln80 and TLS on ln443 (with a
// self-signed certificate until the Manager has one), then starts m.
func startNode(t *testing.T, ca *pebbletest.CA, st store.CertStorage, ln80, ln443 net.Listener, hosts ...string) *node {
	t.Helper()
	n := newNode(t, ca, st, ln80, ln443, hosts...)
	n.start(t)
	return n
}

// newNode serves a node's listeners with a Manager that answers
// challenges but orders nothing until start.
func newNode(t *testing.T, ca *pebbletest.CA, st store.CertStorage, ln80, ln443 net.Listener, hosts ...string) *node {
	t.Helper()
	n := &node{http: ln80.Addr().String(), tls: ln443.Addr().String(), log: new(testutil.LogBuffer)}
	self := testutil.NewCert(t, mainHost).Server.Certificates[0]
	n.fallback = &self
	m, err := New(Options{
		Hostnames: hosts, Email: "postmaster@petrel.test", Directory: ca.Directory, Roots: ca.APIRoots,
		Storage: st, Logger: slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	mux := http.NewServeMux()
	mux.Handle("/.well-known/acme-challenge/", m.HTTPHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln80)
	t.Cleanup(func() { hs.Close() })

	tl := tls.NewListener(ln443, &tls.Config{
		NextProtos: []string{"http/1.1", ALPNProto},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := m.GetCertificate(h)
			if c == nil && err == nil {
				return n.fallback, nil
			}
			return c, err
		},
	})
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Minute))
				_, _ = io.Copy(c, c) // echo until the client closes
			}()
		}
	}()
	t.Cleanup(func() { tl.Close() })

	t.Cleanup(m.Stop)
	return n
}

func (n *node) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := n.m.Start(ctx, Addrs{HTTP: n.http, TLSALPN: n.tls}); err != nil {
		t.Fatal(err)
	}
}

// served dials addr and returns the chain the server presented.
func served(t *testing.T, addr string, cfg *tls.Config) []*x509.Certificate {
	t.Helper()
	chain, err := tryServed(addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return chain
}

func tryServed(addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true // verified by the caller against pebble's root
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates, nil
}

// verify checks chain against pebble's root for host.
func verify(chain []*x509.Certificate, roots *x509.CertPool, host string) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}

// waitIssued polls addr until it serves a certificate for host that
// chains to roots, with the key type the client config leads to.
func waitIssued(t *testing.T, n *node, cfg *tls.Config, roots *x509.CertPool, host string) []*x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		// An RSA-only client fails against the self-signed ECDSA fallback.
		chain, err := tryServed(n.tls, cfg)
		if err == nil {
			err = verify(chain, roots, host)
		}
		if err == nil {
			if _, isRSA := chain[0].PublicKey.(*rsa.PublicKey); isRSA != rsaOnly(cfg) {
				err = errors.New("not yet the key type this client should get") // the other type came first
			}
		}
		if err == nil {
			return chain
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from pebble for %s: %v\nlog:\n%s", host, err, n.log)
		}
		time.Sleep(100 * time.Millisecond) // polling the server under test
	}
}

// rsaOnly tells an RSA-only client config (TLS 1.2, RSA suites only).
func rsaOnly(cfg *tls.Config) bool {
	return cfg.MaxVersion == tls.VersionTLS12 && len(cfg.CipherSuites) > 0
}

var (
	ecClient  = &tls.Config{ServerName: mainHost}
	rsaClient = &tls.Config{ServerName: mainHost, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
)

func pebbleFor(t *testing.T, ln80, ln443 net.Listener, hosts ...string) *pebbletest.CA {
	dns := dnstest.New(t)
	for _, h := range hosts {
		dns.Add(t, h+". A 127.0.0.1")
	}
	return pebbletest.Start(t, pebbletest.Options{DNS: dns.Addr, HTTPPort: port(ln80.Addr().String()), TLSPort: port(ln443.Addr().String())})
}

func openSQLite(t *testing.T, path string) *sqlstore.Store {
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Path: path, BlobDir: filepath.Join(filepath.Dir(path), "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestIssueServeRenewRestart: pebble issues ECDSA and RSA certificates by
// validating over our port 80/443, the ECDSA one goes to modern clients,
// RSA to RSA-only ones, the main name's to clients without SNI; a forced
// renewal keeps the key; a new Manager over the same store serves the
// stored certificate without a new order.
func TestIssueServeRenewRestart(t *testing.T) {
	hosts := []string{mainHost, "smtp.petrel.test"}
	ln80, ln443 := listeners(t)
	ca := pebbleFor(t, ln80, ln443, hosts...)
	st := openSQLite(t, filepath.Join(t.TempDir(), "main.db"))

	// Before anything is issued, the fallback is served (self-signed).
	n := startNode(t, ca, st, ln80, ln443, hosts...)
	roots := ca.Roots(t)

	ec := waitIssued(t, n, ecClient, roots, mainHost)
	if _, ok := ec[0].PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("modern client got a %T key, want ECDSA", ec[0].PublicKey)
	}
	rs := waitIssued(t, n, rsaClient, roots, mainHost)
	if _, ok := rs[0].PublicKey.(*rsa.PublicKey); !ok {
		t.Fatalf("RSA-only client got a %T key, want RSA", rs[0].PublicKey)
	}
	second := &tls.Config{ServerName: "smtp.petrel.test"}
	waitIssued(t, n, second, roots, "smtp.petrel.test")

	// No SNI: the main hostname's certificate.
	chain := served(t, n.tls, &tls.Config{})
	if err := verify(chain, roots, mainHost); err != nil {
		t.Fatalf("client without SNI: %v (got %v)", err, chain[0].DNSNames)
	}
	// A name we do not serve: the main hostname's too.
	chain = served(t, n.tls, &tls.Config{ServerName: "other.example"})
	if err := verify(chain, roots, mainHost); err != nil {
		t.Fatalf("unknown SNI: %v (got %v)", err, chain[0].DNSNames)
	}
	if !strings.Contains(n.log.String(), "certificate obtained") {
		t.Errorf("log does not say the certificate was obtained:\n%s", n.log)
	}

	// Forced renewal: a new certificate, the same key (TLSA 3 1 1 holds),
	// and a connection open across it goes on.
	open, err := tls.Dial("tcp", n.tls, &tls.Config{ServerName: mainHost, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := n.m.Renew(ctx, true); err != nil {
		t.Fatalf("renew: %v\n%s", err, n.log)
	}
	if _, err := open.Write([]byte("x")); err != nil {
		t.Fatalf("connection open across the renewal: %v", err)
	}
	if _, err := io.ReadFull(open, make([]byte, 1)); err != nil {
		t.Fatalf("connection open across the renewal: %v", err)
	}
	renewed := waitIssued(t, n, ecClient, roots, mainHost)
	if renewed[0].SerialNumber.Cmp(ec[0].SerialNumber) == 0 {
		t.Fatalf("renewal served the old certificate (serial %x)", ec[0].SerialNumber)
	}
	if !bytes.Equal(renewed[0].RawSubjectPublicKeyInfo, ec[0].RawSubjectPublicKeyInfo) {
		t.Fatal("renewal changed the private key; a TLSA 3 1 1 record would break")
	}
	rsRenewed := waitIssued(t, n, rsaClient, roots, mainHost)
	if !bytes.Equal(rsRenewed[0].RawSubjectPublicKeyInfo, rs[0].RawSubjectPublicKeyInfo) {
		t.Fatal("RSA renewal changed the private key")
	}
	issued := ca.Issued()
	if issued != 8 { // 2 names x 2 keys, twice
		t.Errorf("pebble issued %d certificates, want 8\n%s", issued, ca.Log)
	}

	// Restart: a new Manager over the same store, on new sockets, serves the
	// renewed certificate from the store and orders nothing.
	n.m.Stop()
	ln80b, ln443b := listeners(t)
	n2 := startNode(t, ca, st, ln80b, ln443b, hosts...)
	again := waitIssued(t, n2, ecClient, roots, mainHost)
	if again[0].SerialNumber.Cmp(renewed[0].SerialNumber) != 0 {
		t.Fatalf("after restart serial %x, want the stored %x (issued %d then %d)\n%s", again[0].SerialNumber, renewed[0].SerialNumber, issued, ca.Issued(), n2.log)
	}
	waitIssued(t, n2, rsaClient, roots, mainHost)
	if got := ca.Issued(); got != issued {
		t.Fatalf("restart ordered %d new certificates", got-issued)
	}
}

// TestTwoNodesShareOneCertificate: node A orders while the CA's
// challenges reach only node B, which has ordered nothing and answers from
// the shared store; then B starts and serves A's certificates without an
// order of its own; leases keep two nodes starting at once from ordering
// twice. PostgreSQL when PETREL_TEST_PG_DSN is set, else one SQLite file
// opened twice.
func TestTwoNodesShareOneCertificate(t *testing.T) {
	var a, b *sqlstore.Store
	if dsn := pgDSN(t); dsn != "" {
		a, b = openPG(t, dsn), openPG(t, dsn)
		t.Log("two store clients on one PostgreSQL schema")
	} else {
		path := filepath.Join(t.TempDir(), "main.db")
		a, b = openSQLite(t, path), openSQLite(t, path)
		t.Log("PETREL_TEST_PG_DSN unset: two store clients on one SQLite file")
	}
	lnA80, lnA443 := listeners(t)
	lnB80, lnB443 := listeners(t)
	// Pebble validates only against node B's ports.
	ca := pebbleFor(t, lnB80, lnB443, mainHost)
	roots := ca.Roots(t)
	nB := newNode(t, ca, b, lnB80, lnB443, mainHost)
	nA := startNode(t, ca, a, lnA80, lnA443, mainHost)

	ecA := waitIssued(t, nA, ecClient, roots, mainHost)
	rsA := waitIssued(t, nA, rsaClient, roots, mainHost)
	if got := strings.Count(nA.log.String(), "ACME: certificate obtained"); got != 2 {
		t.Fatalf("node A obtained %d certificates, want 2\n%s", got, nA.log)
	}
	if bl := nB.log.String(); !strings.Contains(bl, "answered an HTTP-01 challenge") && !strings.Contains(bl, "served key authentication certificate") {
		t.Fatalf("node B answered no challenge:\n%s", bl)
	}

	nB.start(t)
	ecB := waitIssued(t, nB, ecClient, roots, mainHost)
	rsB := waitIssued(t, nB, rsaClient, roots, mainHost)
	if ecA[0].SerialNumber.Cmp(ecB[0].SerialNumber) != 0 || rsA[0].SerialNumber.Cmp(rsB[0].SerialNumber) != 0 {
		t.Fatalf("nodes serve different certificates")
	}
	if got := ca.Issued(); got != 2 {
		t.Fatalf("pebble issued %d certificates for one name and two keys, want 2\n%s", got, ca.Log)
	}

	// Two fresh nodes on one database starting at once, for a new name:
	// the leases let one order each certificate.
	const other = "imap.petrel.test"
	ca2Ln80, ca2Ln443 := listeners(t)
	ca2 := pebbleFor(t, ca2Ln80, ca2Ln443, other)
	n1 := newNode(t, ca2, a, ca2Ln80, ca2Ln443, other)
	lnC80, lnC443 := listeners(t)
	n2 := newNode(t, ca2, b, lnC80, lnC443, other)
	n1.start(t)
	n2.start(t)
	cfg := &tls.Config{ServerName: other}
	c1 := waitIssued(t, n1, cfg, ca2.Roots(t), other)
	c2 := waitIssued(t, n2, cfg, ca2.Roots(t), other)
	if c1[0].SerialNumber.Cmp(c2[0].SerialNumber) != 0 {
		t.Fatal("nodes starting at once serve different certificates")
	}
	waitIssued(t, n1, &tls.Config{ServerName: other, MaxVersion: tls.VersionTLS12, CipherSuites: rsaClient.CipherSuites}, ca2.Roots(t), other)
	if got := ca2.Issued(); got != 2 {
		t.Fatalf("two nodes starting at once: %d certificates issued, want 2\n%s", got, ca2.Log)
	}
}

// TestFailureIsExplained: a name the CA cannot resolve is logged as a DNS
// problem while the fallback certificate stays in service.
func TestFailureIsExplained(t *testing.T) {
	ln80, ln443 := listeners(t)
	ca := pebbleFor(t, ln80, ln443) // no A record at all
	st := openSQLite(t, filepath.Join(t.TempDir(), "main.db"))
	n := startNode(t, ca, st, ln80, ln443, mainHost)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(n.log.String(), "why=\"DNS:") {
		if time.Now().After(deadline) {
			t.Fatalf("no DNS explanation in the log:\n%s", n.log)
		}
		time.Sleep(100 * time.Millisecond) // polling the log
	}
	chain := served(t, n.tls, ecClient)
	if !bytes.Equal(chain[0].Raw, n.fallback.Leaf.Raw) {
		t.Fatal("the fallback certificate is not served while issuance fails")
	}
}

// TestUnreachableIsExplained: when the CA cannot connect to port 80 (nor
// 443), the log says so.
func TestUnreachableIsExplained(t *testing.T) {
	dead80, dead443 := listeners(t)
	ca := pebbleFor(t, dead80, dead443, mainHost)
	dead80.Close() // the CA will find nothing listening there
	dead443.Close()
	ln80, ln443 := listeners(t)
	st := openSQLite(t, filepath.Join(t.TempDir(), "main.db"))
	n := startNode(t, ca, st, ln80, ln443, mainHost)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(n.log.String(), `why="port 80 unreachable`) {
		if time.Now().After(deadline) {
			t.Fatalf("no port-80 explanation in the log:\n%s", n.log)
		}
		time.Sleep(100 * time.Millisecond) // polling the log
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errorsJoin(problem("urn:ietf:params:acme:error:dns")), "DNS"},
		{problem("urn:ietf:params:acme:error:connection"), "port 80"},
		{acme.Problem{Type: "urn:ietf:params:acme:error:malformed", Detail: `Could not resolve URL "mail.petrel.test"`}, "DNS"},
		{problem("urn:ietf:params:acme:error:rateLimited"), "rate limit"},
		{&net.DNSError{Err: "no such host", Name: "acme"}, "DNS"},
	} {
		if why, _ := Explain(tc.err); !strings.HasPrefix(why, tc.want) {
			t.Errorf("Explain(%v) = %q, want %q...", tc.err, why, tc.want)
		}
	}
}

func TestShortChain(t *testing.T) {
	three := &tls.Certificate{Certificate: [][]byte{{1}, {2}, {3}}}
	if got := shortChain(three); len(got.Certificate) != 2 || len(three.Certificate) != 3 {
		t.Fatalf("shortChain: %d certificates (original now %d)", len(got.Certificate), len(three.Certificate))
	}
	two := &tls.Certificate{Certificate: [][]byte{{1}, {2}}}
	if got := shortChain(two); len(got.Certificate) != 2 {
		t.Fatal("shortChain cut a two-certificate chain")
	}
}

func TestNewRefusesInternalNames(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "main.db"))
	for _, h := range []string{"localhost", "127.0.0.1", "mail.local"} {
		if _, err := New(Options{Hostnames: []string{h}, Storage: st}); err == nil {
			t.Errorf("New accepted %q", h)
		}
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("obtaining"), err) }
