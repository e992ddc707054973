package fetch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/secret"
)

// sealPrefix versions the sealed form, so the scheme can change later.
const sealPrefix = "v1:"

// sealAAD binds a sealed password to its use: a value sealed here cannot
// be passed off as another secret sealed with the same key.
var sealAAD = []byte("petrel fetch password")

// Sealer encrypts remote passwords for the store. Mailu keeps them in
// clear (fetchmail must send them); Petrel seals them with AES-256-GCM
// under a key derived from SECRET_KEY, so a copy of the database alone
// does not give away users' other mailboxes.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer takes a 32-byte key (app derives it from SECRET_KEY).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("fetch: sealing key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns the stored form of a password.
func (s *Sealer) Seal(password string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, []byte(password), sealAAD)
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// ErrUnsealable: the stored password was sealed with another key
// (SECRET_KEY changed) or is damaged; the user must enter it again.
var ErrUnsealable = errors.New("fetch: the stored password cannot be decrypted (was SECRET_KEY changed?); enter it again")

// Open returns the password of a sealed value.
func (s *Sealer) Open(sealed string) (string, error) {
	b64, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", ErrUnsealable
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	n := s.aead.NonceSize()
	if err != nil || len(raw) < n {
		return "", ErrUnsealable
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], sealAAD)
	if err != nil {
		return "", ErrUnsealable
	}
	return string(plain), nil
}

// NewSealerFor returns the sealer for Petrel's master secret
// (SECRET_KEY): serve and import-mailu seal with the same derived key.
func NewSealerFor(master []byte) (*Sealer, error) {
	return NewSealer(secret.Derive(master, "fetch-password"))
}
