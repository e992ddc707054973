package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

func (f *fakeUsers) setScram(email string, c store.ScramCredentials) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[email]
	u.Scram = c
	f.users[email] = u
}

// rfcClient is a SCRAM-SHA-256 client straight from RFC 5802 3 and 7 (the
// package cannot import internal/testutil's, which imports it).
type rfcClient struct {
	user, pw string
	gs2      string // default "n,,"
	cbData   []byte
	bare     string
	sig      string
}

func (c *rfcClient) first() []byte {
	if c.gs2 == "" {
		c.gs2 = "n,,"
	}
	c.bare = "n=" + c.user + ",r=clientnonce"
	return []byte(c.gs2 + c.bare)
}

func (c *rfcClient) final(serverFirst []byte) ([]byte, error) {
	f := map[string]string{}
	for _, a := range strings.Split(string(serverFirst), ",") {
		if len(a) > 2 {
			f[a[:2]] = a[2:]
		}
	}
	salt, err := base64.StdEncoding.DecodeString(f["s="])
	if err != nil {
		return nil, err
	}
	iter, err := strconv.Atoi(f["i="])
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(f["r="], "clientnonce") {
		return nil, errors.New("nonce")
	}
	salted, _ := pbkdf2.Key(sha256.New, c.pw, salt, iter, 32)
	mac := func(k []byte, m string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(m)); return h.Sum(nil) }
	ck := mac(salted, "Client Key")
	sk := sha256.Sum256(ck)
	without := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + f["r="]
	am := c.bare + "," + string(serverFirst) + "," + without
	sig := mac(sk[:], am)
	for i := range ck {
		ck[i] ^= sig[i]
	}
	c.sig = "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), am))
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(ck)), nil
}

func (c *rfcClient) verify(serverFinal []byte) error {
	if string(serverFinal) != c.sig {
		return errors.New("server signature")
	}
	return nil
}

// tlsPairs runs a TLS 1.3 handshake over a pipe and returns the server's
// and the client's connection state.
func tlsPairs(t *testing.T) (server, client tls.ConnectionState) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	cl := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(context.Background()) }()
	if err := cl.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return srv.ConnectionState(), cl.ConnectionState()
}

func tlsPair(t *testing.T) tls.ConnectionState {
	s, _ := tlsPairs(t)
	return s
}
