package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion is the first byte of a sealed value, so the scheme can
// change later without guessing.
const sealVersion = 1

// ErrUnsealable: a sealed value was sealed under another SECRET_KEY (or
// for another purpose) or is damaged.
var ErrUnsealable = errors.New("sealed value cannot be decrypted (sealed under another SECRET_KEY?)")

// Sealer encrypts secrets that the store keeps (AES-256-GCM under a key
// derived from SECRET_KEY for one purpose), so that a copy of the
// database alone does not give them away. Every node sharing a database
// must share SECRET_KEY to open what another node sealed.
type Sealer struct {
	aead cipher.AEAD
	aad  []byte
}

// NewSealer returns the Sealer for purpose under master (SECRET_KEY).
// The purpose is also bound as associated data, so a value sealed for one
// purpose cannot be passed off as another.
func NewSealer(master []byte, purpose string) (*Sealer, error) {
	if len(master) == 0 {
		return nil, errors.New("secret: empty master secret")
	}
	block, err := aes.NewCipher(Derive(master, "seal:"+purpose))
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Sealer{aead: aead, aad: []byte("petrel " + purpose)}, nil
}

// Seal returns version, nonce and ciphertext of plain.
func (s *Sealer) Seal(plain []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, s.aad), nil
}

// Open returns the plain text of a value Seal returned; ErrUnsealable when
// it was sealed under another key or purpose, or is damaged.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, ErrUnsealable
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], s.aad)
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}
