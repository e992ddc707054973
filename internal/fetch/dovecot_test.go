package fetch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/testutil"
)

// dovecot is a Debian Dovecot (dovecot-imapd, dovecot-pop3d) started for
// one test: IMAPS and POP3S on loopback, one user, Maildir under TempDir.
type dovecot struct {
	imaps, pop3s string
	roots        *x509.CertPool
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startDovecot(t *testing.T) *dovecot {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if bin = "/usr/sbin/dovecot"; !fileExists(bin) {
			t.Skip("dovecot not installed (Debian dovecot-imapd, dovecot-pop3d)")
		}
	}
	if !fileExists("/usr/lib/dovecot/pop3") || !fileExists("/usr/lib/dovecot/imap") {
		t.Skip("dovecot's imap or pop3 service missing (Debian dovecot-imapd, dovecot-pop3d)")
	}
	if os.Geteuid() != 0 {
		t.Skip("starting a Dovecot with its own users needs root")
	}
	dv, err := user.Lookup("dovecot")
	if err != nil {
		t.Skip("no dovecot system user")
	}
	if _, err := user.Lookup("dovenull"); err != nil {
		t.Skip("no dovenull system user")
	}
	dir, err := os.MkdirTemp("", "petrel-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	roots := writeCert(t, dir)
	home := filepath.Join(dir, "home")
	must(t, os.MkdirAll(home, 0o755))
	var uid, gid int
	fmt.Sscan(dv.Uid, &uid)
	fmt.Sscan(dv.Gid, &gid)
	must(t, os.Chown(home, uid, gid))
	must(t, os.WriteFile(filepath.Join(dir, "passwd"), []byte("remote@dove.test:{PLAIN}dove-pw::::::\n"), 0o644))
	imaps, pop3s := freePort(t), freePort(t)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/log
protocols = imap pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 1
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = passwd-file
  args = %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[2]d gid=%[3]d home=%[4]s/%%u
}
mail_location = maildir:~/Maildir
pop3_uidl_format = %%08Xu%%08Xv
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = %[5]d
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = %[6]d
    ssl = yes
  }
}
`, dir, uid, gid, home, imaps, pop3s)
	cf := filepath.Join(dir, "dovecot.conf")
	must(t, os.WriteFile(cf, []byte(conf), 0o644))
	cmd := exec.Command(bin, "-F", "-c", cf)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	d := &dovecot{imaps: fmt.Sprintf("127.0.0.1:%d", imaps), pop3s: fmt.Sprintf("127.0.0.1:%d", pop3s), roots: roots}
	for deadline := time.Now().Add(30 * time.Second); ; {
		c1, err1 := net.Dial("tcp", d.imaps)
		c2, err2 := net.Dial("tcp", d.pop3s)
		if err1 == nil {
			c1.Close()
		}
		if err2 == nil {
			c2.Close()
		}
		if err1 == nil && err2 == nil {
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("dovecot exited:\n%s\n%s", out, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not listen: %v %v\n%s", err1, err2, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns a
// pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "dove.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// appendMsgs puts messages into the Dovecot mailbox over IMAP.
func (d *dovecot) appendMsgs(t *testing.T, folder string, msgs ...string) {
	t.Helper()
	c, err := imapclient.DialTLS(d.imaps, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: d.roots}})
	must(t, err)
	defer c.Close()
	must(t, c.Login("remote@dove.test", "dove-pw").Wait())
	if folder != "INBOX" {
		_ = c.Create(folder, nil).Wait() // exists already is fine
	}
	for _, m := range msgs {
		cmd := c.Append(folder, int64(len(m)), nil)
		if _, err := cmd.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
		must(t, cmd.Close())
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	must(t, c.Logout().Wait())
}

// count is the number of messages in folder.
func (d *dovecot) count(t *testing.T, folder string) uint32 {
	t.Helper()
	c, err := imapclient.DialTLS(d.imaps, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: d.roots}})
	must(t, err)
	defer c.Close()
	must(t, c.Login("remote@dove.test", "dove-pw").Wait())
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	must(t, err)
	return *st.NumMessages
}

// recordingSink keeps what the poller delivers.
type recordingSink struct {
	mu   sync.Mutex
	msgs []string
}

func (s *recordingSink) Deliver(_ context.Context, _ *store.Fetch, _ string, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, string(msg))
	return nil
}

func (s *recordingSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// TestFetchFromDovecot: against a real Dovecot over TLS, POP3 without
// keep takes every message once and empties the maildrop; IMAP with keep
// over two folders takes each message once, also from a new poller (a
// restart), and later only what is new.
func TestFetchFromDovecot(t *testing.T) {
	d := startDovecot(t)
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice")
	sealer, _ := NewSealer(make([]byte, 32))
	sealed, _ := sealer.Seal("dove-pw")
	sink := &recordingSink{}
	clock := time.Now()
	poller := func() *Poller {
		clock = clock.Add(2 * time.Hour) // every account is due again
		now := clock
		return New(Options{Store: st, Sink: sink, Sealer: sealer, Delay: time.Hour, Owner: "t",
			TLSConfig: &tls.Config{RootCAs: d.roots}, Timeout: 20 * time.Second, Now: func() time.Time { return now }})
	}
	ctx := t.Context()

	big := "Subject: p0\r\n\r\n" + strings.Repeat("a long line of text\r\n", 5000) // over any small buffer
	d.appendMsgs(t, "INBOX", big, "Subject: p1\r\n\r\none\r\n", "Subject: p2\r\n\r\n.dot\r\ntwo\r\n")
	host, port, _ := net.SplitHostPort(d.pop3s)
	pop := &store.Fetch{UserEmail: "alice@example.test", Protocol: "pop3", Host: host, TLS: true, Username: "remote@dove.test", Password: sealed}
	fmt.Sscan(port, &pop.Port)
	must(t, st.CreateFetch(ctx, pop))
	must(t, poller().PollDue(ctx))
	if got := sink.got(); len(got) != 3 || got[0] != big || !strings.HasSuffix(got[2], "Subject: p2\r\n\r\n.dot\r\ntwo\r\n") {
		t.Fatalf("POP3 delivered %q", got)
	}
	if n := d.count(t, "INBOX"); n != 0 {
		t.Fatalf("Dovecot INBOX holds %d messages after a POP3 fetch without keep", n)
	}
	if f, _ := st.GetFetch(ctx, pop.ID); f.Error != "" {
		t.Fatalf("POP3 error %q", f.Error)
	}
	must(t, st.DeleteFetch(ctx, pop.ID))

	d.appendMsgs(t, "INBOX", "Subject: i1\r\n\r\na\r\n")
	d.appendMsgs(t, "Junk", "Subject: j1\r\n\r\nb\r\n")
	host, port, _ = net.SplitHostPort(d.imaps)
	im := &store.Fetch{UserEmail: "alice@example.test", Protocol: "imap", Host: host, TLS: true, Username: "remote@dove.test",
		Password: sealed, Keep: true, Folders: []string{"INBOX", "Junk"}}
	fmt.Sscan(port, &im.Port)
	must(t, st.CreateFetch(ctx, im))
	must(t, poller().PollDue(ctx))
	must(t, poller().PollDue(ctx))
	if got := sink.got(); len(got) != 5 {
		t.Fatalf("after two IMAP polls %d messages delivered, want 5 (3 POP3 + 2 IMAP once)", len(got))
	}
	d.appendMsgs(t, "INBOX", "Subject: i2\r\n\r\nc\r\n")
	must(t, poller().PollDue(ctx))
	got := sink.got()
	if len(got) != 6 || !strings.Contains(got[5], "Subject: i2") {
		t.Fatalf("after a new message: %d delivered", len(got))
	}
	if n := d.count(t, "INBOX") + d.count(t, "Junk"); n != 3 {
		t.Fatalf("Dovecot holds %d messages, want 3 kept", n)
	}
	if f, _ := st.GetFetch(ctx, im.ID); f.Error != "" || f.LastCheck.IsZero() {
		t.Fatalf("IMAP account %+v", f)
	}
}

// storeSink stores fetched messages in alice's INBOX with their fetched
// key, as app's sink does; crash makes it fail after the commit, as a
// poller that died right after the delivery.
type storeSink struct {
	st    store.Mail
	crash bool
}

func (s *storeSink) Deliver(ctx context.Context, f *store.Fetch, key string, msg []byte) error {
	err := s.st.CommitMessages(ctx, []*store.NewMessage{{ID: key, Body: msg, Size: int64(len(msg)),
		Targets: []store.MailboxTarget{{User: f.UserEmail, Mailbox: "INBOX"}}, Fetched: &store.FetchedKey{FetchID: f.ID, Key: key}}})
	if err == nil && s.crash {
		return fmt.Errorf("simulated crash after the delivery of %s", key)
	}
	return err
}

// TestFetchFromDovecotAcrossCrash: against a real Dovecot, a poll that
// dies right after storing a message (before recording it, DELE or
// EXPUNGE) is followed by a restart that stores nothing twice and then
// removes the remote copy, over POP3 and IMAP.
func TestFetchFromDovecotAcrossCrash(t *testing.T) {
	d := startDovecot(t)
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice")
	sealer, _ := NewSealer(make([]byte, 32))
	sealed, _ := sealer.Seal("dove-pw")
	ctx := t.Context()
	clock := time.Now()
	poll := func(sink Sink) {
		clock = clock.Add(3 * time.Hour) // past the crashed poll's lease
		now := clock
		p := New(Options{Store: st, Sink: sink, Sealer: sealer, Delay: time.Hour, Owner: "t",
			TLSConfig: &tls.Config{RootCAs: d.roots}, Timeout: 20 * time.Second, Now: func() time.Time { return now }})
		must(t, p.PollDue(ctx))
	}
	for i, proto := range []string{"pop3", "imap"} {
		d.appendMsgs(t, "INBOX", fmt.Sprintf("Subject: once %d\r\n\r\nx\r\n", i))
		addr := d.pop3s
		if proto == "imap" {
			addr = d.imaps
		}
		host, port, _ := net.SplitHostPort(addr)
		f := &store.Fetch{UserEmail: "alice@example.test", Protocol: proto, Host: host, TLS: true, Username: "remote@dove.test", Password: sealed}
		fmt.Sscan(port, &f.Port)
		must(t, st.CreateFetch(ctx, f))
		poll(&storeSink{st: st, crash: true})
		if n := d.count(t, "INBOX"); n != 1 {
			t.Fatalf("%s: the crashed poll left %d remote messages, want 1", proto, n)
		}
		poll(&storeSink{st: st})
		l, err := st.ListMessages(ctx, "alice@example.test", "INBOX")
		must(t, err)
		if len(l) != i+1 {
			t.Fatalf("%s: alice holds %d messages after the restart, want %d", proto, len(l), i+1)
		}
		if n := d.count(t, "INBOX"); n != 0 {
			t.Fatalf("%s: the restart left %d remote messages", proto, n)
		}
		must(t, st.DeleteFetch(ctx, f.ID))
	}
}
