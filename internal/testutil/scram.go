package testutil

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ScramClient is the client side of SCRAM-SHA-256[-PLUS] (RFC 5802 and
// RFC 7677), written from the RFC for tests; it shares no code with the
// server in internal/auth.
type ScramClient struct {
	User, Password string
	Authzid        string
	// CBFlag is the gs2 channel-binding flag: "n" (default), "y", or
	// "p=tls-exporter" / "p=tls-unique"; with "p=", CBData is bound.
	CBFlag string
	CBData []byte
	Nonce  string // client nonce; "" = fixed test nonce

	gs2, bare, serverSig string
}

// ScramTLSExporter returns the tls-exporter binding (RFC 9266) of a
// client connection.
func ScramTLSExporter(cs tls.ConnectionState) []byte {
	b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		panic(err)
	}
	return b
}

func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// First returns client-first-message.
func (c *ScramClient) First() []byte {
	flag := c.CBFlag
	if flag == "" {
		flag = "n"
	}
	az := ""
	if c.Authzid != "" {
		az = "a=" + saslName(c.Authzid)
	}
	if c.Nonce == "" {
		c.Nonce = "fyko+d2lbbFgONRv9qkxdawL"
	}
	c.gs2 = flag + "," + az + ","
	c.bare = "n=" + saslName(c.User) + ",r=" + c.Nonce
	return []byte(c.gs2 + c.bare)
}

// Final answers server-first-message with client-final-message.
func (c *ScramClient) Final(serverFirst []byte) ([]byte, error) {
	var nonce, salt64 string
	iter := 0
	for _, a := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt64 = a[2:]
		case strings.HasPrefix(a, "i="):
			iter, _ = strconv.Atoi(a[2:])
		}
	}
	if !strings.HasPrefix(nonce, c.Nonce) || len(nonce) == len(c.Nonce) {
		return nil, fmt.Errorf("server nonce %q does not extend ours", nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || iter < 1 {
		return nil, fmt.Errorf("bad server-first %q", serverFirst)
	}
	salted, err := pbkdf2.Key(sha256.New, c.Password, salt, iter, 32)
	if err != nil {
		return nil, err
	}
	mac := func(k []byte, m string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(m)); return h.Sum(nil) }
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	cbind := []byte(c.gs2)
	if strings.HasPrefix(c.gs2, "p=") {
		cbind = append(cbind, c.CBData...)
	}
	without := "c=" + base64.StdEncoding.EncodeToString(cbind) + ",r=" + nonce
	authMessage := c.bare + "," + string(serverFirst) + "," + without
	sig := mac(storedKey[:], authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.serverSig = base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage))
	return []byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Verify checks server-final-message.
func (c *ScramClient) Verify(serverFinal []byte) error {
	if string(serverFinal) != "v="+c.serverSig {
		return errors.New("server signature does not verify: " + string(serverFinal))
	}
	return nil
}
