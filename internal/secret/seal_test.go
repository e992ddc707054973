package secret

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealRoundTrip(t *testing.T) {
	s, err := NewSealer([]byte("master"), "dkim-key")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("-----BEGIN PRIVATE KEY-----\n...")
	a, err := s.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Seal(plain)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if bytes.Contains(a, plain[:10]) {
		t.Fatal("sealed value contains the plain text")
	}
	got, err := s.Open(a)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestSealWrongKeyPurposeOrDamage(t *testing.T) {
	s, _ := NewSealer([]byte("master"), "dkim-key")
	v, _ := s.Seal([]byte("secret"))
	other, _ := NewSealer([]byte("other master"), "dkim-key")
	purpose, _ := NewSealer([]byte("master"), "fetch-password")
	damaged := bytes.Clone(v)
	damaged[len(damaged)-1] ^= 1
	for name, c := range map[string]struct {
		s *Sealer
		v []byte
	}{
		"other SECRET_KEY": {other, v}, "other purpose": {purpose, v},
		"damaged": {s, damaged}, "short": {s, v[:5]}, "empty": {s, nil},
	} {
		if _, err := c.s.Open(c.v); !errors.Is(err, ErrUnsealable) {
			t.Errorf("%s: Open = %v, want ErrUnsealable", name, err)
		}
	}
	if _, err := NewSealer(nil, "x"); err == nil {
		t.Error("NewSealer accepted an empty master secret")
	}
}
