package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// h64Chars is the crypt(3) base64 alphabet ("hash64" in passlib).
const h64Chars = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// h64Encode encodes b three bytes at a time, little-endian, six bits per
// character, lowest bits first (passlib h64.encode_bytes). A final group
// of one or two bytes yields two or three characters.
func h64Encode(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 3 {
		var v uint32
		n := 0
		for j := 0; j < 3 && i+j < len(b); j++ {
			v |= uint32(b[i+j]) << (8 * j)
			n++
		}
		for k := 0; k < n+1; k++ {
			sb.WriteByte(h64Chars[v&0x3f])
			v >>= 6
		}
	}
	return sb.String()
}

func checkH64(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(h64Chars, rune(s[i])) {
			return false
		}
	}
	return true
}

// Output byte orders of SHA-crypt ("Unix crypt using SHA-256 and SHA-512",
// Ulrich Drepper, 2007, step 22) as transpose maps (passlib sha2_crypt.py).
var (
	sha256CryptOrder = []int{
		20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5,
		25, 15, 26, 16, 6, 17, 7, 27, 8, 28, 18, 29, 19, 9, 30, 31,
	}
	sha512CryptOrder = []int{
		42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26,
		5, 47, 48, 27, 6, 7, 49, 28, 29, 8, 50, 51, 30, 9, 10, 52,
		31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15,
		16, 58, 37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
	}
	md5CryptOrder = []int{12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11}
)

func transpose(sum []byte, order []int) []byte {
	out := make([]byte, len(order))
	for i, j := range order {
		out[i] = sum[j]
	}
	return out
}

// SHA-crypt limits (Drepper, "rounds="; passlib sha2_crypt min/max_rounds).
const (
	shaCryptDefaultRounds = 5000
	shaCryptMinRounds     = 1000
	shaCryptMaxRounds     = 999999999
	shaCryptMaxSalt       = 16
)

// shaCrypt is a parsed $5$ (sha256_crypt) or $6$ (sha512_crypt) hash:
// $6$[rounds=N$]salt$checksum. Without "rounds=" the cost is 5000.
type shaCrypt struct {
	is512    bool
	rounds   int
	salt     string
	checksum string
}

func parseSHACrypt(s string) (shaCrypt, error) {
	var h shaCrypt
	var rest string
	switch {
	case strings.HasPrefix(s, "$5$"):
		rest = s[3:]
	case strings.HasPrefix(s, "$6$"):
		h.is512, rest = true, s[3:]
	default:
		return h, fmt.Errorf("auth: %w: not sha-crypt", ErrUnknownHash)
	}
	parts := strings.Split(rest, "$")
	h.rounds = shaCryptDefaultRounds
	if r, ok := strings.CutPrefix(parts[0], "rounds="); ok {
		// passlib rejects zero padding and, for a full hash, out-of-range
		// rounds (it only clips them when making a new hash).
		n, err := strconv.Atoi(r)
		if err != nil || (len(r) > 1 && r[0] == '0') || n < shaCryptMinRounds || n > shaCryptMaxRounds {
			return h, fmt.Errorf("auth: %w: sha-crypt rounds %q", ErrUnknownHash, r)
		}
		h.rounds = n
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return h, fmt.Errorf("auth: %w: sha-crypt needs salt and checksum", ErrUnknownHash)
	}
	h.salt, h.checksum = parts[0], parts[1]
	want := 43
	if h.is512 {
		want = 86
	}
	if len(h.salt) > shaCryptMaxSalt || len(h.checksum) != want || !checkH64(h.checksum) {
		return h, fmt.Errorf("auth: %w: sha-crypt salt or checksum", ErrUnknownHash)
	}
	return h, nil
}

func (h shaCrypt) verify(password string) bool {
	// passlib refuses NUL bytes (C crypt(3) would stop at them).
	if strings.IndexByte(password, 0) >= 0 {
		return false
	}
	newHash, order := sha256.New, sha256CryptOrder
	if h.is512 {
		newHash, order = sha512.New, sha512CryptOrder
	}
	sum := shaCryptSum(newHash, []byte(password), []byte(h.salt), h.rounds)
	return constantTimeEqual(h64Encode(transpose(sum, order)), h.checksum)
}

// shaCryptSum is steps 1-21 of Drepper's SHA-crypt specification.
func shaCryptSum(newHash func() hash.Hash, pw, salt []byte, rounds int) []byte {
	// Digest B: password, salt, password.
	b := newHash()
	b.Write(pw)
	b.Write(salt)
	b.Write(pw)
	sumB := b.Sum(nil)
	size := len(sumB)

	// Digest A: password, salt, then B for each full block of the
	// password and its remainder, then per bit of the password length B
	// (bit set) or the password (bit clear).
	a := newHash()
	a.Write(pw)
	a.Write(salt)
	n := len(pw)
	for ; n > size; n -= size {
		a.Write(sumB)
	}
	a.Write(sumB[:n])
	for n = len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(pw)
		}
	}
	sumA := a.Sum(nil)

	// Digest DP (password repeated len(pw) times) gives sequence P.
	dp := newHash()
	for range pw {
		dp.Write(pw)
	}
	p := repeatTo(dp.Sum(nil), len(pw))

	// Digest DS (salt repeated 16+A[0] times) gives sequence S.
	ds := newHash()
	for i := 0; i < 16+int(sumA[0]); i++ {
		ds.Write(salt)
	}
	s := repeatTo(ds.Sum(nil), len(salt))

	c := sumA
	h := newHash()
	for i := 0; i < rounds; i++ {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}
	return c
}

// repeatTo repeats sum until it is n bytes long.
func repeatTo(sum []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, sum[:min(len(sum), n-len(out))]...)
	}
	return out
}

// md5Crypt is a parsed $1$ (md5_crypt, Poul-Henning Kamp's FreeBSD
// algorithm) or $apr1$ (Apache's variant, differing only in the magic).
type md5Crypt struct {
	magic    string
	salt     string
	checksum string
}

func parseMD5Crypt(s string) (md5Crypt, error) {
	var h md5Crypt
	switch {
	case strings.HasPrefix(s, "$1$"):
		h.magic = "$1$"
	case strings.HasPrefix(s, "$apr1$"):
		h.magic = "$apr1$"
	default:
		return h, fmt.Errorf("auth: %w: not md5-crypt", ErrUnknownHash)
	}
	salt, checksum, ok := strings.Cut(s[len(h.magic):], "$")
	if !ok || len(salt) > 8 || strings.Contains(checksum, "$") || len(checksum) != 22 || !checkH64(checksum) {
		return h, fmt.Errorf("auth: %w: md5-crypt salt or checksum", ErrUnknownHash)
	}
	h.salt, h.checksum = salt, checksum
	return h, nil
}

func (h md5Crypt) verify(password string) bool {
	if strings.IndexByte(password, 0) >= 0 {
		return false
	}
	sum := md5CryptSum([]byte(password), []byte(h.magic), []byte(h.salt))
	return constantTimeEqual(h64Encode(transpose(sum, md5CryptOrder)), h.checksum)
}

// md5CryptSum follows FreeBSD's crypt-md5.c (passlib md5_crypt.py).
func md5CryptSum(pw, magic, salt []byte) []byte {
	alt := md5.New()
	alt.Write(pw)
	alt.Write(salt)
	alt.Write(pw)
	sumAlt := alt.Sum(nil)

	ctx := md5.New()
	ctx.Write(pw)
	ctx.Write(magic)
	ctx.Write(salt)
	for n := len(pw); n > 0; n -= 16 {
		ctx.Write(sumAlt[:min(n, 16)])
	}
	// The original writes a NUL for a set bit and the first password byte
	// for a clear one.
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pw[:1])
		}
	}
	final := ctx.Sum(nil)

	h := md5.New()
	for i := 0; i < 1000; i++ {
		h.Reset()
		if i&1 != 0 {
			h.Write(pw)
		} else {
			h.Write(final)
		}
		if i%3 != 0 {
			h.Write(salt)
		}
		if i%7 != 0 {
			h.Write(pw)
		}
		if i&1 != 0 {
			h.Write(final)
		} else {
			h.Write(pw)
		}
		final = h.Sum(final[:0])
	}
	return final
}
