package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/blowfish"
)

// bcrypt64 is bcrypt's base64 alphabet, without padding.
const bcrypt64Chars = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

var bcrypt64 = base64.NewEncoding(bcrypt64Chars).WithPadding(base64.NoPadding)

// bcryptSaltFinal: the 22nd salt character carries only 2 bits, so a
// canonical salt ends in one of these (passlib: final_salt_chars).
const bcryptSaltFinal = ".Oeu"

// bcryptSHA256 is a parsed passlib bcrypt_sha256 hash.
//
//	v2: $bcrypt-sha256$v=2,t=2b,r=12$<salt 22>$<digest 31>
//	v1: $bcrypt-sha256$2a,12$<salt 22>$<digest 31>   (or 2b)
//
// v1 runs bcrypt(base64(sha256(password))); v2 (passlib >= 1.7.3) runs
// bcrypt(base64(hmac_sha256(key=salt string, password))), so that a
// precomputed sha256 table is useless (passlib/handlers/bcrypt.py,
// bcrypt_sha256._calc_checksum).
type bcryptSHA256 struct {
	version int
	ident   string // "2a" or "2b"
	rounds  int
	salt    string
	digest  string
}

func parseBcryptSHA256(s string) (bcryptSHA256, error) {
	var h bcryptSHA256
	rest, ok := strings.CutPrefix(s, "$bcrypt-sha256$")
	if !ok {
		return h, fmt.Errorf("auth: %w: not bcrypt_sha256", ErrUnknownHash)
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return h, fmt.Errorf("auth: %w: bcrypt_sha256 needs settings, salt and digest", ErrUnknownHash)
	}
	settings, salt, digest := parts[0], parts[1], parts[2]
	var rounds string
	if v, ok := strings.CutPrefix(settings, "v="); ok {
		// v=<version>,t=2b,r=<rounds> (passlib _v2_hash_re)
		f := strings.Split(v, ",")
		if len(f) != 3 || f[0] != "2" || f[1] != "t=2b" || !strings.HasPrefix(f[2], "r=") {
			return h, fmt.Errorf("auth: %w: bcrypt_sha256 v2 settings %q", ErrUnknownHash, settings)
		}
		h.version, h.ident, rounds = 2, "2b", f[2][2:]
	} else {
		// 2a,<rounds> or 2b,<rounds> (passlib _v1_hash_re)
		ident, r, ok := strings.Cut(settings, ",")
		if !ok || (ident != "2a" && ident != "2b") {
			return h, fmt.Errorf("auth: %w: bcrypt_sha256 v1 settings %q", ErrUnknownHash, settings)
		}
		h.version, h.ident, rounds = 1, ident, r
	}
	n, err := parseBcryptRounds(rounds)
	if err != nil {
		return h, err
	}
	h.rounds = n
	if err := checkBcrypt64(salt, 22); err != nil {
		return h, err
	}
	if h.version == 2 && !strings.ContainsRune(bcryptSaltFinal, rune(salt[21])) {
		// passlib refuses these salts too ("invalid salt string").
		return h, fmt.Errorf("auth: %w: bcrypt_sha256 salt has padding bits set", ErrUnknownHash)
	}
	if err := checkBcrypt64(digest, 31); err != nil {
		return h, err
	}
	h.salt, h.digest = salt, digest
	return h, nil
}

// parseBcryptRounds reads a 1- or 2-digit cost without zero padding
// (passlib: ZeroPaddedRoundsError) within bcrypt's bounds.
func parseBcryptRounds(s string) (int, error) {
	if len(s) < 1 || len(s) > 2 || (len(s) == 2 && s[0] == '0') {
		return 0, fmt.Errorf("auth: %w: bcrypt rounds %q", ErrUnknownHash, s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < minRounds || n > maxRounds {
		return 0, fmt.Errorf("auth: %w: bcrypt rounds %q", ErrUnknownHash, s)
	}
	return n, nil
}

func checkBcrypt64(s string, n int) error {
	if len(s) != n {
		return fmt.Errorf("auth: %w: bcrypt field of %d characters, want %d", ErrUnknownHash, len(s), n)
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(bcrypt64Chars, rune(s[i])) {
			return fmt.Errorf("auth: %w: bcrypt field has a character outside its alphabet", ErrUnknownHash)
		}
	}
	return nil
}

// key is the bcrypt input bcrypt_sha256 derives from the password: 44
// base64 characters, so never truncated and never holding a NUL.
func (h bcryptSHA256) key(password string) []byte {
	var sum []byte
	if h.version == 1 {
		s := sha256.Sum256([]byte(password))
		sum = s[:]
	} else {
		m := hmac.New(sha256.New, []byte(h.salt))
		m.Write([]byte(password))
		sum = m.Sum(nil)
	}
	return []byte(base64.StdEncoding.EncodeToString(sum))
}

func (h bcryptSHA256) verify(password string) bool {
	inner := fmt.Sprintf("$%s$%02d$%s%s", h.ident, h.rounds, h.salt, h.digest)
	return bcrypt.CompareHashAndPassword([]byte(inner), h.key(password)) == nil
}

func hashBcryptSHA256(password string, rounds int) (string, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	h := bcryptSHA256{version: 2, ident: "2b", rounds: rounds, salt: bcrypt64.EncodeToString(raw)}
	digest, err := bcryptRaw(h.key(password), rounds, raw)
	if err != nil {
		return "", err
	}
	h.digest = bcrypt64.EncodeToString(digest)
	return fmt.Sprintf("$bcrypt-sha256$v=2,t=2b,r=%d$%s$%s", h.rounds, h.salt, h.digest), nil
}

// bcryptRaw is the bcrypt core (Provos and Mazières, "A Future-Adaptable
// Password Scheme", 1999) with a caller-chosen salt, which
// golang.org/x/crypto/bcrypt does not offer: bcrypt_sha256 v2 must know
// the salt before it can derive the key. It returns the 23 digest bytes.
// Verification goes through x/crypto/bcrypt, and the tests check both
// agree.
func bcryptRaw(key []byte, cost int, salt []byte) ([]byte, error) {
	// C implementations hash the key's terminating NUL too.
	ckey := append(key[:len(key):len(key)], 0)
	c, err := blowfish.NewSaltedCipher(ckey, salt)
	if err != nil {
		return nil, fmt.Errorf("auth: bcrypt: %w", err)
	}
	for i := uint64(0); i < 1<<uint(cost); i++ {
		blowfish.ExpandKey(ckey, c)
		blowfish.ExpandKey(salt, c)
	}
	data := []byte("OrpheanBeholderScryDoubt")
	for i := 0; i < 24; i += 8 {
		for j := 0; j < 64; j++ {
			c.Encrypt(data[i:i+8], data[i:i+8])
		}
	}
	// Only 23 of the 24 bytes are encoded, as in OpenBSD's original.
	return data[:23], nil
}

// bcryptHash is a parsed $2a$/$2b$/$2y$ hash (passlib bcrypt). $2x$ (the
// crypt_blowfish sign-extension bug) is refused, as passlib does.
type bcryptHash struct {
	full string
}

func parseBcrypt(s string) (bcryptHash, error) {
	// $2b$12$<22 salt><31 digest>: 60 characters.
	if len(s) != 60 || s[3] != '$' || s[6] != '$' {
		return bcryptHash{}, fmt.Errorf("auth: %w: bcrypt hash layout", ErrUnknownHash)
	}
	if _, err := parseBcryptRounds(strings.TrimPrefix(s[4:6], "0")); err != nil {
		return bcryptHash{}, err
	}
	if err := checkBcrypt64(s[7:29], 22); err != nil {
		return bcryptHash{}, err
	}
	if err := checkBcrypt64(s[29:], 31); err != nil {
		return bcryptHash{}, err
	}
	return bcryptHash{full: s}, nil
}

func (h bcryptHash) verify(password string) bool {
	// passlib refuses NUL bytes for bcrypt (C bcrypt would stop there).
	if strings.IndexByte(password, 0) >= 0 {
		return false
	}
	// x/crypto/bcrypt, like passlib, uses only the first 72 bytes.
	return bcrypt.CompareHashAndPassword([]byte(h.full), []byte(password)) == nil
}

// constantTimeEqual compares two digests without leaking where they differ.
func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
