package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// ab64 is passlib's "adapted base64": standard base64 with "." instead of
// "+" and no padding (passlib.utils.binary.ab64_encode).
var ab64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./").
	WithPadding(base64.NoPadding)

// maxPBKDF2Rounds bounds the cost a stored hash may ask for (passlib's
// max_rounds is 2**32-1; this keeps one bad row from pinning a CPU for
// hours while still covering every sane setting).
const maxPBKDF2Rounds = 1 << 26

// pbkdf2Hash is a parsed passlib pbkdf2_<digest> hash:
// $pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 checksum> ($pbkdf2$ is sha1).
type pbkdf2Hash struct {
	newHash  func() hash.Hash
	rounds   int
	salt     []byte
	checksum []byte
}

func parsePBKDF2(s string) (pbkdf2Hash, error) {
	var h pbkdf2Hash
	var rest string
	var size int
	switch {
	case strings.HasPrefix(s, "$pbkdf2-sha256$"):
		h.newHash, size, rest = sha256.New, sha256.Size, s[len("$pbkdf2-sha256$"):]
	case strings.HasPrefix(s, "$pbkdf2-sha512$"):
		h.newHash, size, rest = sha512.New, sha512.Size, s[len("$pbkdf2-sha512$"):]
	case strings.HasPrefix(s, "$pbkdf2$"):
		h.newHash, size, rest = sha1.New, sha1.Size, s[len("$pbkdf2$"):]
	default:
		return h, fmt.Errorf("auth: %w: not pbkdf2", ErrUnknownHash)
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return h, fmt.Errorf("auth: %w: pbkdf2 needs rounds, salt and checksum", ErrUnknownHash)
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > maxPBKDF2Rounds || (len(parts[0]) > 1 && parts[0][0] == '0') {
		return h, fmt.Errorf("auth: %w: pbkdf2 rounds %q", ErrUnknownHash, parts[0])
	}
	h.rounds = n
	if h.salt, err = ab64.DecodeString(parts[1]); err != nil {
		return h, fmt.Errorf("auth: %w: pbkdf2 salt: %w", ErrUnknownHash, err)
	}
	if h.checksum, err = ab64.DecodeString(parts[2]); err != nil || len(h.checksum) != size {
		return h, fmt.Errorf("auth: %w: pbkdf2 checksum", ErrUnknownHash)
	}
	return h, nil
}

func (h pbkdf2Hash) verify(password string) bool {
	sum, err := pbkdf2.Key(h.newHash, password, h.salt, h.rounds, len(h.checksum))
	if err != nil {
		return false
	}
	return constantTimeEqual(string(sum), string(h.checksum))
}

// hashPBKDF2SHA256 writes passlib's pbkdf2_sha256 with a 16-byte salt.
func hashPBKDF2SHA256(secret string, rounds int) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	sum, err := pbkdf2.Key(sha256.New, secret, salt, rounds, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("auth: pbkdf2: %w", err)
	}
	return fmt.Sprintf("$pbkdf2-sha256$%d$%s$%s", rounds, ab64.EncodeToString(salt), ab64.EncodeToString(sum)), nil
}
