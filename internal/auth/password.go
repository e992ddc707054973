package auth

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultRounds is Mailu's CREDENTIAL_ROUNDS default: the bcrypt cost of
// new bcrypt_sha256 hashes.
const DefaultRounds = 12

// bcrypt cost bounds (golang.org/x/crypto/bcrypt MinCost/MaxCost).
const (
	minRounds = 4
	maxRounds = 31
)

// ErrUnknownHash: a stored hash is in no format Petrel can verify. It is a
// data problem (a bad import), not a wrong password.
var ErrUnknownHash = errors.New("unsupported or malformed password hash")

// ErrEmptyPassword: HashPassword refuses to hash an empty password.
var ErrEmptyPassword = errors.New("empty password")

// scheme is one passlib handler Petrel can verify.
type scheme int

const (
	schemeBcryptSHA256 scheme = iota + 1
	schemeBcrypt
	schemeSHA512Crypt
	schemeSHA256Crypt
	schemeMD5Crypt
	schemeAprMD5Crypt
	schemePBKDF2SHA256
	schemePBKDF2SHA512
	schemePBKDF2SHA1
	schemeDESCrypt
)

// StripDovecotPrefix removes a leading Dovecot scheme tag such as
// "{BLF-CRYPT}" or "{SHA512-CRYPT}". Mailu strips any "{...}" prefix before
// handing the rest to passlib (models.py User.check_password:
// re.match('({[^}]+})?(.*)')), and so does Petrel.
func StripDovecotPrefix(hash string) string {
	if strings.HasPrefix(hash, "{") {
		if i := strings.IndexByte(hash, '}'); i > 1 {
			return hash[i+1:]
		}
	}
	return hash
}

// identify picks the scheme by the hash's prefix (passlib: identify()).
func identify(hash string) (scheme, bool) {
	switch {
	case strings.HasPrefix(hash, "$bcrypt-sha256$"):
		return schemeBcryptSHA256, true
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"),
		strings.HasPrefix(hash, "$2y$"):
		return schemeBcrypt, true
	case strings.HasPrefix(hash, "$6$"):
		return schemeSHA512Crypt, true
	case strings.HasPrefix(hash, "$5$"):
		return schemeSHA256Crypt, true
	case strings.HasPrefix(hash, "$1$"):
		return schemeMD5Crypt, true
	case strings.HasPrefix(hash, "$apr1$"):
		return schemeAprMD5Crypt, true
	case strings.HasPrefix(hash, "$pbkdf2-sha256$"):
		return schemePBKDF2SHA256, true
	case strings.HasPrefix(hash, "$pbkdf2-sha512$"):
		return schemePBKDF2SHA512, true
	case strings.HasPrefix(hash, "$pbkdf2$"):
		return schemePBKDF2SHA1, true
	case isDESCrypt(hash):
		// Mailu 1.x: PASSWORD_SCHEME=CRYPT, stored as "{CRYPT}...".
		return schemeDESCrypt, true
	}
	return 0, false
}

// VerifyPassword checks password against a stored hash in any format Mailu
// accepts (passlib bcrypt_sha256 v1/v2, bcrypt $2a$/$2b$/$2y$,
// sha512_crypt, sha256_crypt, md5_crypt, apr_md5_crypt, pbkdf2_sha256,
// pbkdf2_sha512, pbkdf2_sha1, des_crypt), with or without a Dovecot
// "{SCHEME}" prefix.
// needsRehash reports that the hash is not bcrypt_sha256 v2 at
// DefaultRounds; callers with another CREDENTIAL_ROUNDS use NeedsRehash.
// An empty password never matches. err is ErrUnknownHash (wrapped) when
// the stored hash cannot be parsed; a wrong password is ok=false, err=nil.
func VerifyPassword(hash string, password string) (ok bool, needsRehash bool, err error) {
	ok, err = verifyPassword(hash, password)
	if err != nil || !ok {
		return false, false, err
	}
	return true, NeedsRehash(hash, DefaultRounds), nil
}

// verifyPassword is VerifyPassword without the rehash decision.
func verifyPassword(hash, password string) (bool, error) {
	hash = StripDovecotPrefix(hash)
	s, known := identify(hash)
	if !known {
		return false, fmt.Errorf("auth: %w: unrecognised prefix", ErrUnknownHash)
	}
	// Parse first, so that a malformed hash is an error even for an empty
	// password (Mailu: check_password returns False for "" before that).
	var verify func(string) bool
	switch s {
	case schemeBcryptSHA256:
		h, err := parseBcryptSHA256(hash)
		if err != nil {
			return false, err
		}
		verify = h.verify
	case schemeBcrypt:
		h, err := parseBcrypt(hash)
		if err != nil {
			return false, err
		}
		verify = h.verify
	case schemeSHA512Crypt, schemeSHA256Crypt:
		h, err := parseSHACrypt(hash)
		if err != nil {
			return false, err
		}
		verify = h.verify
	case schemeMD5Crypt, schemeAprMD5Crypt:
		h, err := parseMD5Crypt(hash)
		if err != nil {
			return false, err
		}
		verify = h.verify
	case schemeDESCrypt:
		h, err := parseDESCrypt(hash)
		if err != nil {
			return false, err
		}
		verify = h.verify
	default: // the pbkdf2 family
		h, err := parsePBKDF2(hash)
		if err != nil {
			return false, err
		}
		verify = h.verify
	}
	if password == "" {
		return false, nil
	}
	return verify(password), nil
}

// NeedsRehash reports whether a stored hash should be replaced by a fresh
// bcrypt_sha256 v2 hash at rounds: any other scheme, bcrypt_sha256 v1, or
// another cost. (Mailu's CryptContext deprecated='auto' re-hashes every
// non-default scheme and v1; Petrel also follows a changed
// CREDENTIAL_ROUNDS.) An unparsable hash needs no rehash: it never verifies.
func NeedsRehash(hash string, rounds int) bool {
	h, err := parseBcryptSHA256(StripDovecotPrefix(hash))
	if err != nil {
		_, known := identify(StripDovecotPrefix(hash))
		return known
	}
	return h.version != 2 || h.rounds != rounds
}

// HashPassword hashes password as passlib's bcrypt_sha256 v2 does
// ("$bcrypt-sha256$v=2,t=2b,r=12$<salt>$<digest>"), so that Mailu can
// verify Petrel's hashes and the other way round.
func HashPassword(password string, rounds int) (string, error) {
	if password == "" {
		return "", fmt.Errorf("auth: %w", ErrEmptyPassword)
	}
	if rounds < minRounds || rounds > maxRounds {
		return "", fmt.Errorf("auth: bcrypt rounds %d outside %d..%d", rounds, minRounds, maxRounds)
	}
	return hashBcryptSHA256(password, rounds)
}
