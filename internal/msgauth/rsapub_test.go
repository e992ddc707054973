package msgauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"
)

// sameOutcome fails t unless rsaPublic and crypto/rsa agree on sig.
func sameOutcome(t testing.TB, p *rsaPublic, pub *rsa.PublicKey, hashed, sig []byte, name string) {
	t.Helper()
	want := rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig)
	got := p.verifySHA256(hashed, sig)
	if (got == nil) != (want == nil) || (want != nil && got.Error() != want.Error()) {
		t.Fatalf("%s (%d-bit key, e=%d): got %v, crypto/rsa %v", name, pub.N.BitLen(), pub.E, got, want)
	}
}

// keyWithExponent makes an RSA key of bits with public exponent e.
func keyWithExponent(t *testing.T, bits, e int) *rsa.PrivateKey {
	t.Helper()
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, bits-bits/2)
		if err != nil {
			t.Fatal(err)
		}
		n := new(big.Int).Mul(p, q)
		if p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			t.Fatal(err)
		}
		k.Precompute()
		return k
	}
}

// TestRSAPublicMatchesCryptoRSA: for keys of several sizes and
// exponents, valid signatures verify and every kind of bad one fails,
// exactly as crypto/rsa decides.
func TestRSAPublicMatchesCryptoRSA(t *testing.T) {
	keys := []*rsa.PrivateKey{keyWithExponent(t, 1024, 65537), keyWithExponent(t, 2048, 65537),
		keyWithExponent(t, 3072, 65537), keyWithExponent(t, 2048, 3), keyWithExponent(t, 1536, 1<<31-1),
		keyWithExponent(t, 1032, 17)}
	for _, k := range keys {
		pub := &k.PublicKey
		p := newRSAPublic(pub)
		if p.refused != nil {
			t.Fatalf("%d-bit key refused: %v", pub.N.BitLen(), p.refused)
		}
		for i := range 20 {
			msg := make([]byte, 64+i)
			rand.Read(msg)
			hashed := sha256.Sum256(msg)
			sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, hashed[:])
			if err != nil {
				t.Fatal(err)
			}
			if err := p.verifySHA256(hashed[:], sig); err != nil {
				t.Fatalf("%d-bit key, e=%d: a valid signature failed: %v", pub.N.BitLen(), pub.E, err)
			}
			sameOutcome(t, p, pub, hashed[:], sig, "valid")

			bad := append([]byte(nil), sig...)
			bad[i%len(bad)] ^= 1 << (i % 8)
			sameOutcome(t, p, pub, hashed[:], bad, "flipped bit")
			other := hashed
			other[i] ^= 0x80
			sameOutcome(t, p, pub, other[:], sig, "other hash")
			sameOutcome(t, p, pub, hashed[:], sig[1:], "short signature")
			sameOutcome(t, p, pub, hashed[:], append([]byte{0}, sig...), "long signature")
			sameOutcome(t, p, pub, hashed[:15], sig, "short hash")
			// s + n: the same residue, but not below the modulus.
			plusN := new(big.Int).Add(new(big.Int).SetBytes(sig), pub.N).FillBytes(make([]byte, len(sig)+1))
			if plusN[0] == 0 {
				sameOutcome(t, p, pub, hashed[:], plusN[1:], "s+n")
			}
			rnd := make([]byte, len(sig))
			rand.Read(rnd)
			sameOutcome(t, p, pub, hashed[:], rnd, "random")
		}
		size := pub.Size()
		sameOutcome(t, p, pub, make([]byte, 32), make([]byte, size), "zero")
		one := make([]byte, size)
		one[size-1] = 1
		sameOutcome(t, p, pub, make([]byte, 32), one, "one")
		sameOutcome(t, p, pub, make([]byte, 32), pub.N.FillBytes(make([]byte, size)), "n")
		nMinus1 := new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, size))
		sameOutcome(t, p, pub, make([]byte, 32), nMinus1, "n-1")

		// A SHA-1 signature over the same bytes is not a SHA-256 one.
		h1 := sha1.Sum([]byte("x"))
		sig1, err := rsa.SignPKCS1v15(nil, k, crypto.SHA1, h1[:])
		if err != nil {
			t.Fatal(err)
		}
		var padded [32]byte
		copy(padded[:], h1[:])
		sameOutcome(t, p, pub, padded[:], sig1, "sha-1 signature")
	}
}

// TestRSAPublicRefusesAsCryptoRSA: a key crypto/rsa will not verify with
// gets its error, for every signature.
func TestRSAPublicRefusesAsCryptoRSA(t *testing.T) {
	k := keyWithExponent(t, 1024, 65537)
	for _, pub := range []*rsa.PublicKey{
		{N: k.N, E: 65538},           // even exponent
		{N: k.N, E: 1},               // too small
		{N: k.N, E: 1 << 32},         // too large
		{N: big.NewInt(3233), E: 17}, // far too short
	} {
		p := newRSAPublic(pub)
		if p.refused == nil {
			t.Fatalf("key N=%d bits e=%d accepted", pub.N.BitLen(), pub.E)
		}
		sig := make([]byte, pub.Size())
		sig[len(sig)-1] = 2
		sameOutcome(t, p, pub, make([]byte, 32), sig, "refused key")
		if errors.Is(p.verifySHA256(make([]byte, 32), sig), rsa.ErrVerification) {
			t.Fatalf("e=%d: a refused key's reason was lost", pub.E)
		}
	}
}

// signedHash makes a key of bits and its signature of msg's SHA-256.
func signedHash(tb testing.TB, bits int, msg string) (*rsa.PrivateKey, [32]byte, []byte) {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	hashed := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, hashed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k, hashed, sig
}

// FuzzRSAPublic: on any signature and hash, rsaPublic decides as
// crypto/rsa does; the seeds include a valid signature to mutate.
func FuzzRSAPublic(f *testing.F) {
	k, hashed, sig := signedHash(f, 1024, "seed")
	f.Add(hashed[:], sig)
	f.Add(hashed[:], make([]byte, len(sig)))
	f.Add([]byte{}, []byte{1})
	p := newRSAPublic(&k.PublicKey)
	f.Fuzz(func(t *testing.T, hashed, sig []byte) {
		sameOutcome(t, p, &k.PublicKey, hashed, sig, "fuzz")
	})
}

// BenchmarkVerifyRSA2048: crypto/rsa against the prepared key.
func BenchmarkVerifyRSA2048(b *testing.B) {
	k, hashed, sig := signedHash(b, 2048, "bench")
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, hashed[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	p := newRSAPublic(&k.PublicKey)
	b.Run("prepared", func(b *testing.B) {
		for b.Loop() {
			if err := p.verifySHA256(hashed[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
