package msgauth

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"github.com/petrelmail/petrel/third_party/bigmod"
)

// rsaPublic is an RSA public key made ready, once, for PKCS #1 v1.5
// SHA-256 verification. crypto/rsa rebuilds the key's Montgomery modulus
// (bigmod.NewModulus) on every VerifyPKCS1v15 call, about a third of the
// cost of verifying with a 2048-bit key; a DKIM key is cached
// (keycache.go) and verifies many messages, so the modulus is built when
// the key is parsed, with a copy of Go's own bignum package
// (third_party/bigmod), and the verification itself is RFC 8017 8.2.2 as
// crypto/rsa does it.
type rsaPublic struct {
	key *rsa.PublicKey
	n   *bigmod.Modulus // nil when crypto/rsa refuses the key
	e   uint
	// padding is the encoded message's fixed part for this key's size
	// (sha256Padding), built once rather than per signature.
	padding []byte
	// refused is crypto/rsa's error for a key it will not verify with at
	// all (too short for its minimum, an even exponent...), so that the
	// policy, GODEBUG's rsa1024min and FIPS 140-only mode included,
	// stays crypto/rsa's.
	refused error
}

// newRSAPublic prepares pub. crypto/rsa's key checks run once, by
// verifying an all-zero signature: a key it accepts fails that with
// rsa.ErrVerification, one it refuses with the reason.
func newRSAPublic(pub *rsa.PublicKey) *rsaPublic {
	probe := make([]byte, pub.Size())
	err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, make([]byte, crypto.SHA256.Size()), probe)
	if !errors.Is(err, rsa.ErrVerification) {
		if err == nil {
			err = errors.New("msgauth: an all-zero RSA signature verified")
		}
		return &rsaPublic{key: pub, refused: err}
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return &rsaPublic{key: pub, refused: err}
	}
	return &rsaPublic{key: pub, n: n, e: uint(pub.E), padding: sha256Padding(n.Size())}
}

// sha256Padding is what precedes the hash in the encoded message of a
// k-byte key (RFC 8017 9.2): 0x00 || 0x01 || PS (0xff...) || 0x00 ||
// DigestInfo. Nil when k is too short for one (no signature verifies).
func sha256Padding(k int) []byte {
	tLen := len(sha256DigestInfo) + sha256.Size
	if k < tLen+11 {
		return nil
	}
	pad := make([]byte, k-sha256.Size)
	pad[1] = 1
	for i := 2; i < k-tLen-1; i++ {
		pad[i] = 0xff
	}
	copy(pad[k-tLen:], sha256DigestInfo)
	return pad
}

// sha256DigestInfo is the DER prefix of a SHA-256 DigestInfo (RFC 8017
// 9.2, note 1).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// verifySHA256 checks an RSASSA-PKCS1-v1_5 signature of a SHA-256 hash,
// with crypto/rsa's outcome: nil, rsa.ErrVerification or the key's
// refusal.
func (p *rsaPublic) verifySHA256(hashed, sig []byte) error {
	if p.refused != nil {
		return p.refused
	}
	if len(hashed) != crypto.SHA256.Size() {
		return rsa.VerifyPKCS1v15(p.key, crypto.SHA256, hashed, sig) // its error for a bad hash
	}
	k := p.n.Size()
	if len(sig) != k {
		return rsa.ErrVerification
	}
	s, err := bigmod.NewNat().SetBytes(sig, p.n) // refuses s >= n
	if err != nil {
		return rsa.ErrVerification
	}
	if p.padding == nil {
		return rsa.ErrVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, p.e, p.n).Bytes(p.n)
	// EM = the key's padding || hash.
	pl := len(p.padding)
	if subtle.ConstantTimeCompare(em[:pl], p.padding)&subtle.ConstantTimeCompare(em[pl:], hashed) != 1 {
		return rsa.ErrVerification
	}
	return nil
}
