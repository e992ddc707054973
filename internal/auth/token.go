package auth

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// tokenLen is the length of an app token: 128 bits as 32 lowercase hex
// characters (Mailu: ui/views/tokens.py pwd.genword(entropy=128,
// length=32, charset="hex")).
const tokenLen = 32

// IsTokenShaped reports whether s looks like an app token: exactly 32
// lowercase hex characters (Mailu: utils.is_app_token). Such passwords
// skip the IP rate limiter's pre-check, as in Mailu.
func IsTokenShaped(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewToken makes a new app token. clear is shown to the user once; hash is
// what the token table stores (pbkdf2_sha256 with 1 round, as Mailu:
// models.py Token.set_password; 128 random bits need no stretching).
func NewToken() (clear string, hash string, err error) {
	b := make([]byte, tokenLen/2)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("auth: token: %w", err)
	}
	clear = hex.EncodeToString(b)
	hash, err = HashToken(clear)
	if err != nil {
		return "", "", err
	}
	return clear, hash, nil
}

// HashToken hashes a cleartext token as Mailu stores it.
func HashToken(token string) (string, error) {
	return hashPBKDF2SHA256(token, 1)
}

// VerifyToken checks token against a stored token hash: pbkdf2_sha256, or
// the legacy "$5$" sha256_crypt older Mailu versions wrote. legacy reports
// a matching legacy hash, which the caller should replace with HashToken
// (Mailu: models.py Token.check_password upgrades on use).
func VerifyToken(hash, token string) (ok, legacy bool) {
	if token == "" {
		return false, false
	}
	if strings.HasPrefix(hash, "$5$") {
		h, err := parseSHACrypt(hash)
		if err != nil || !h.verify(token) {
			return false, false
		}
		return true, true
	}
	h, err := parsePBKDF2(hash)
	if err != nil || h.rounds > 100000 {
		// A token row never needs real stretching; a huge count is a bad row.
		return false, false
	}
	return h.verify(token), false
}

// TokenAllows reports whether remote may use a token whose allow-list is
// ips: CIDRs or single addresses; an empty list allows any address.
// Unparsable entries allow nothing (Mailu: Token.ip).
func TokenAllows(ips []string, remote netip.Addr) bool {
	if len(ips) == 0 {
		return true
	}
	remote = remote.Unmap()
	for _, s := range ips {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Masked().Contains(remote) {
				return true
			}
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap() == remote {
			return true
		}
	}
	return false
}
