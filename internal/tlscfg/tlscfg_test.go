package tlscfg

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSelfSignedGenerated(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "certs") // does not exist yet
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	log, logs := testLogger()
	m, err := New(Options{
		Flavor:    "CERT",
		CertsDir:  dir,
		Hostnames: []string{"Mail.Example.com", "example.org", " ", "bücher.example", "192.0.2.7", "example.org."},
		Logger:    log,
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Enabled() || m.Flavor() != FlavorCert {
		t.Fatalf("Enabled=%v Flavor=%q", m.Enabled(), m.Flavor())
	}

	for name, want := range map[string]os.FileMode{"cert.pem": 0o644, "key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", name, got, want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("certs dir holds %d entries, want 2 (temp files left?)", len(ents))
	}

	info, ok := m.Leaf()
	if !ok {
		t.Fatal("Leaf: not ok")
	}
	wantDNS := []string{"mail.example.com", "example.org", "xn--bcher-kva.example"}
	if !slices.Equal(info.DNSNames, wantDNS) || !slices.Equal(info.IPs, []string{"192.0.2.7"}) {
		t.Errorf("SANs = %v %v, want %v [192.0.2.7]", info.DNSNames, info.IPs, wantDNS)
	}
	if !info.SelfSigned || info.Chain != 1 {
		t.Errorf("SelfSigned=%v Chain=%d", info.SelfSigned, info.Chain)
	}
	if want := now.Add(365 * 24 * time.Hour); !info.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", info.NotAfter, want)
	}
	if !strings.Contains(info.Subject, "CN=mail.example.com") {
		t.Errorf("Subject = %q", info.Subject)
	}

	// A client that trusts this certificate accepts it for every hostname.
	cert, _ := m.GetCertificate(nil)
	if !isP256(cert.Leaf.PublicKey) {
		t.Errorf("key is %T, want ECDSA P-256", cert.Leaf.PublicKey)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	for _, h := range append(wantDNS, "192.0.2.7") {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}

	out := logs.String()
	wantMsg := "self-signed certificate generated for mail.example.com, example.org, xn--bcher-kva.example, 192.0.2.7, clients will warn; " +
		"install a real one by writing cert.pem (full chain) and key.pem into " + dir
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, wantMsg) || !strings.Contains(out, "SIGHUP") {
		t.Errorf("no loud WARN about the self-signed certificate:\n%s", out)
	}

	// A second start loads the same certificate instead of generating again.
	log2, logs2 := testLogger()
	m2, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}, Logger: log2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if info2, _ := m2.Leaf(); info2.Serial != info.Serial {
		t.Errorf("restart serial %s, want %s", info2.Serial, info.Serial)
	}
	if strings.Contains(logs2.String(), "generated") {
		t.Errorf("second start generated again:\n%s", logs2.String())
	}
}

func TestSelfSignedNeedsHostnames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := New(Options{CertsDir: dir})
	if err == nil || !strings.Contains(err.Error(), "HOSTNAMES") {
		t.Fatalf("err = %v, want one about HOSTNAMES", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written despite the error: %v", ents)
	}
}

func TestLoadExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM, serial := certPEMs(t, "rsa", "mail.example.com")
	// A full-chain file: leaf first, then an (unrelated) issuer.
	extra, _, _ := certPEMs(t, "ecdsa", "ca.example")
	writeFile(t, filepath.Join(dir, "live", "fullchain.pem"), append(slices.Clone(certPEM), extra...), time.Now())
	writeFile(t, filepath.Join(dir, "live", "privkey.pem"), keyPEM, time.Now())

	log, logs := testLogger()
	m, err := New(Options{
		Flavor: "mail-letsencrypt", CertsDir: dir,
		CertFile: "live/fullchain.pem", KeyFile: "live/privkey.pem",
		Hostnames: []string{"mail.example.com", "other.example.net"},
		Logger:    log,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := m.Leaf()
	if info.Serial != serial || info.Chain != 2 || info.SelfSigned != true {
		t.Errorf("Leaf = %+v, want serial %s, chain 2", info, serial)
	}
	cert, _ := m.GetCertificate(nil)
	if len(cert.Certificate) != 2 {
		t.Errorf("served chain has %d certificates, want 2", len(cert.Certificate))
	}
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err == nil {
		t.Error("cert.pem generated although the configured files exist")
	}
	out := logs.String()
	if !strings.Contains(out, "TLS certificate loaded") {
		t.Errorf("no load record:\n%s", out)
	}
	if !strings.Contains(out, `does not cover a configured hostname" hostname=other.example.net`) ||
		strings.Contains(out, "hostname=mail.example.com") {
		t.Errorf("hostname coverage warnings wrong:\n%s", out)
	}
}

func TestBrokenFiles(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM, _ := certPEMs(t, "ecdsa", "mail.example.com")
	_, otherKey, _ := certPEMs(t, "ecdsa", "mail.example.com")
	badDER := []byte("-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name       string
		cert, key  []byte // nil: file absent
		wantFile   string // which file the error must name
		wantDetail string
	}{
		{"cert garbage", []byte("hello"), keyPEM, "cert.pem", "no PEM CERTIFICATE block"},
		{"cert bad DER", badDER, keyPEM, "cert.pem", "certificate 1"},
		{"swapped", keyPEM, certPEM, "cert.pem", "swapped"},
		{"key garbage", certPEM, []byte("nope"), "key.pem", "no PEM private key block"},
		{"key mismatch", certPEM, otherKey, "key.pem", "does not match"},
		{"key missing", certPEM, nil, "key.pem", "is missing"},
		{"cert missing", nil, keyPEM, "cert.pem", "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.cert != nil {
				writeFile(t, filepath.Join(dir, "cert.pem"), tt.cert, time.Now())
			}
			if tt.key != nil {
				writeFile(t, filepath.Join(dir, "key.pem"), tt.key, time.Now())
			}
			_, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}})
			if err == nil {
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Join(dir, tt.wantFile)) || !strings.Contains(msg, tt.wantDetail) {
				t.Errorf("error %q should name %s and say %q", msg, tt.wantFile, tt.wantDetail)
			}
			// Nothing was generated over the admin's files.
			if got, _ := os.ReadFile(filepath.Join(dir, "cert.pem")); !bytes.Equal(got, tt.cert) {
				t.Error("cert.pem was changed")
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "key.pem")); !bytes.Equal(got, tt.key) {
				t.Error("key.pem was changed")
			}
		})
	}
}

func FuzzParseChain(f *testing.F) {
	certPEM, keyPEM, err := newSelfSigned([]string{"a.example"}, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM)
	f.Add(keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		chain, err := parseChain("x.pem", data)
		if (err == nil) == (len(chain) == 0) {
			t.Fatalf("chain %d, err %v", len(chain), err)
		}
		if err != nil && !strings.Contains(err.Error(), "x.pem") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func TestFlavors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, err := New(Options{Flavor: "notls", CertsDir: dir, Hostnames: []string{"mail.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Enabled() || m.ServerConfig(true) != nil || m.ServerConfig(false) != nil {
		t.Error("notls: TLS enabled")
	}
	if _, ok := m.Leaf(); ok {
		t.Error("notls: Leaf ok")
	}
	if _, err := m.GetCertificate(nil); err == nil {
		t.Error("notls: GetCertificate returned a certificate")
	}
	if err := m.Reload(); err != nil {
		t.Errorf("notls: Reload = %v", err)
	}
	if err := m.Watch(t.Context(), time.Millisecond); err != nil { // returns at once
		t.Errorf("notls: Watch = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("notls wrote files: %v", ents)
	}

	if _, err := New(Options{Flavor: "acme", CertsDir: dir}); err == nil || !strings.Contains(err.Error(), `"acme"`) {
		t.Errorf("unknown flavor: err = %v", err)
	}
	if _, err := New(Options{Flavor: "cert"}); err == nil {
		t.Error("cert without CertsDir accepted")
	}
	for _, f := range []string{"mail", "letsencrypt", "Mail-LetsEncrypt", ""} {
		m, err := New(Options{Flavor: f, CertsDir: t.TempDir(), Hostnames: []string{"mail.example.com"}})
		if err != nil || !m.Enabled() {
			t.Errorf("flavor %q: enabled=%v err=%v", f, m != nil && m.Enabled(), err)
		}
	}
}

func TestReloadServesNewCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, logs := testLogger()
	m, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := m.Leaf()
	addr := serve(t, m.ServerConfig(true)) // one listener for the whole test
	if got := peerSerial(t, addr); got != first.Serial {
		t.Fatalf("served %s, want %s", got, first.Serial)
	}

	certPEM, keyPEM, serial := certPEMs(t, "rsa", "mail.example.com")
	writeFile(t, filepath.Join(dir, "key.pem"), keyPEM, time.Now())
	writeFile(t, filepath.Join(dir, "cert.pem"), certPEM, time.Now())
	if got := peerSerial(t, addr); got != first.Serial {
		t.Fatalf("served %s before Reload, want the old %s", got, first.Serial)
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := peerSerial(t, addr); got != serial {
		t.Fatalf("served %s after Reload, want %s", got, serial)
	}
	if info, _ := m.Leaf(); info.Serial != serial {
		t.Errorf("Leaf serial %s, want %s", info.Serial, serial)
	}

	// A broken replacement keeps the working certificate in service.
	writeFile(t, filepath.Join(dir, "cert.pem"), []byte("garbage"), time.Now())
	err = m.Reload()
	if err == nil || !strings.Contains(err.Error(), "cert.pem") {
		t.Fatalf("Reload of a broken file: err = %v", err)
	}
	if got := peerSerial(t, addr); got != serial {
		t.Fatalf("served %s after a failed Reload, want %s", got, serial)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR msg=\"TLS certificate reload failed; keeping the previous certificate\"") {
		t.Errorf("no ERROR record for the failed reload:\n%s", out)
	}
}

func TestWatchPicksUpChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, logs := testLogger()
	m, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, m.ServerConfig(false))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, 20*time.Millisecond) }()

	// First only the certificate changes: the pair does not match, so the
	// reload fails and the old certificate stays.
	certPEM, keyPEM, serial := certPEMs(t, "ecdsa", "mail.example.com")
	base := time.Now().Add(time.Hour)
	writeFile(t, filepath.Join(dir, "cert.pem"), certPEM, base)
	eventually(t, "the failed reload to be logged", func() bool {
		return strings.Contains(logs.String(), "level=ERROR")
	})
	if info, _ := m.Leaf(); info.Serial == serial {
		t.Fatal("mismatched pair went into service")
	}

	// Then the key follows and the new pair goes into service.
	writeFile(t, filepath.Join(dir, "key.pem"), keyPEM, base.Add(time.Second))
	eventually(t, "the new certificate to be served", func() bool {
		info, _ := m.Leaf()
		return info.Serial == serial
	})
	if got := peerSerial(t, addr); got != serial {
		t.Errorf("served %s, want %s", got, serial)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch returned %v", err)
	}
}

func TestVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	strict, permissive := m.ServerConfig(true), m.ServerConfig(false)
	if strict.MinVersion != tls.VersionTLS12 || permissive.MinVersion != tls.VersionTLS10 {
		t.Fatalf("MinVersion strict %x permissive %x", strict.MinVersion, permissive.MinVersion)
	}
	if !strict.SessionTicketsDisabled || !permissive.SessionTicketsDisabled {
		t.Error("session tickets enabled")
	}
	strictAddr, permAddr := serve(t, strict), serve(t, permissive)

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		old := &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}
		if _, err := dial(t, strictAddr, old); err == nil {
			t.Errorf("strict config accepted %s", tls.VersionName(v))
		}
		st, err := dial(t, permAddr, old)
		if err != nil {
			t.Errorf("permissive config refused %s: %v", tls.VersionName(v), err)
		} else if st.Version != v {
			t.Errorf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(v))
		}
	}
	// A modern client gets TLS 1.3 from both.
	for _, addr := range []string{strictAddr, permAddr} {
		st, err := dial(t, addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil || st.Version != tls.VersionTLS13 {
			t.Errorf("modern client: version %x err %v", st.Version, err)
		}
	}
}

func TestPermissiveLegacySuites(t *testing.T) {
	t.Parallel()
	// An admin's RSA certificate and an old MTA that only knows RSA key
	// exchange: accepted on permissive port 25, refused elsewhere.
	dir := t.TempDir()
	certPEM, keyPEM, _ := certPEMs(t, "rsa", "mail.example.com")
	writeFile(t, filepath.Join(dir, "cert.pem"), certPEM, time.Now())
	writeFile(t, filepath.Join(dir, "key.pem"), keyPEM, time.Now())
	m, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	old := &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS10,
		MaxVersion:         tls.VersionTLS10,
		CipherSuites:       []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA},
	}
	if _, err := dial(t, serve(t, m.ServerConfig(true)), old); err == nil {
		t.Error("strict config accepted TLS 1.0 with RSA key exchange")
	}
	st, err := dial(t, serve(t, m.ServerConfig(false)), old)
	if err != nil {
		t.Fatalf("permissive config refused TLS 1.0 with RSA key exchange: %v", err)
	}
	if st.CipherSuite != tls.TLS_RSA_WITH_AES_128_CBC_SHA {
		t.Errorf("suite %s", tls.CipherSuiteName(st.CipherSuite))
	}
}

// TestIntermediateProfile: every port with AUTH gets Mozilla's intermediate
// profile exactly (TLS 1.2 ECDHE AEAD suites and TLS 1.3); a client that
// offers only CBC-SHA1 suites (LUCKY13, issue 17) is refused there, and
// accepted on permissive port 25.
func TestIntermediateProfile(t *testing.T) {
	t.Parallel()
	want := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	for _, keyType := range []string{"ecdsa", "rsa"} {
		t.Run(keyType, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certPEM, keyPEM, _ := certPEMs(t, keyType, "mail.example.com")
			writeFile(t, filepath.Join(dir, "cert.pem"), certPEM, time.Now())
			writeFile(t, filepath.Join(dir, "key.pem"), keyPEM, time.Now())
			m, err := New(Options{CertsDir: dir, Hostnames: []string{"mail.example.com"}})
			if err != nil {
				t.Fatal(err)
			}
			strict := m.ServerConfig(true)
			if !slices.Equal(strict.CipherSuites, want) || !slices.Equal(IntermediateSuites(), want) {
				t.Errorf("strict suites %v, want %v", suiteNames(strict.CipherSuites), suiteNames(want))
			}
			if m.Intermediate().MinVersion != tls.VersionTLS12 || strict.MinVersion != tls.VersionTLS12 {
				t.Error("intermediate profile allows TLS below 1.2")
			}
			strictAddr, permAddr := serve(t, strict), serve(t, m.ServerConfig(false))

			// What the server accepts, offered one suite at a time at TLS 1.2.
			var accepted []uint16
			for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
				if onlyTLS13(s) {
					continue
				}
				c := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s.ID}}
				if st, err := dial(t, strictAddr, c); err == nil && st.CipherSuite == s.ID {
					accepted = append(accepted, s.ID)
				}
			}
			for _, id := range accepted {
				if !slices.Contains(want, id) {
					t.Errorf("strict server accepted %s", tls.CipherSuiteName(id))
				}
			}
			if len(accepted) != 3 { // the three that fit the key type
				t.Errorf("strict server accepted %v, want the 3 %s suites of %v", suiteNames(accepted), keyType, suiteNames(want))
			}

			cbc := &tls.Config{
				InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint16{
					tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
					tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
				},
			}
			if st, err := dial(t, strictAddr, cbc); err == nil {
				t.Errorf("strict server accepted a CBC-SHA1-only client with %s", tls.CipherSuiteName(st.CipherSuite))
			}
			if _, err := dial(t, permAddr, cbc); err != nil {
				t.Errorf("permissive server refused a CBC-SHA1-only client: %v", err)
			}
			// TLS 1.3 stays on.
			if st, err := dial(t, strictAddr, &tls.Config{InsecureSkipVerify: true}); err != nil || st.Version != tls.VersionTLS13 {
				t.Errorf("modern client: version %x, err %v", st.Version, err)
			}
		})
	}
}

func suiteNames(ids []uint16) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tls.CipherSuiteName(id)
	}
	return out
}

// fakeSource is a managed certificate source (ACME in production).
type fakeSource struct {
	cert atomic.Pointer[tls.Certificate]
}

func (f *fakeSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cert.Load(), nil
}

// TestManagedFirst: a managed source's certificate is served over the
// files; while it has none, the self-signed one is, on a live listener.
func TestManagedFirst(t *testing.T) {
	src := &fakeSource{}
	m, err := New(Options{Flavor: "letsencrypt", CertsDir: t.TempDir(), Hostnames: []string{"mail.example.com"}, Managed: src})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, m.Intermediate())
	selfSerial := peerSerial(t, addr)
	info, _ := m.Leaf()
	if selfSerial != info.Serial || !info.SelfSigned {
		t.Fatalf("before the managed source has a certificate: serial %s, want the self-signed %s", selfSerial, info.Serial)
	}
	certPEM, keyPEM, serial := certPEMs(t, "ecdsa", "mail.example.com")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	src.cert.Store(&pair)
	if got := peerSerial(t, addr); got != serial {
		t.Fatalf("managed certificate not served: serial %s, want %s", got, serial)
	}
}
