package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters: RFC 6238 with the values every authenticator app
// assumes (Google Authenticator's Key Uri Format): HMAC-SHA1, 6 digits,
// 30-second steps counted from the Unix epoch.
const (
	TOTPDigits = 6
	TOTPPeriod = 30 * time.Second
	// TOTPSkew is how many steps before and after the current one are
	// accepted, for clocks that differ (RFC 6238 5.2 recommends one).
	TOTPSkew = 1
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a random 160-bit secret (RFC 4226 4, R6), base32
// without padding as authenticator apps expect it.
func NewTOTPSecret() string {
	k := make([]byte, 20)
	rand.Read(k) // never fails (crypto/rand, Go >= 1.24)
	return b32.EncodeToString(k)
}

// DecodeTOTPSecret decodes a base32 secret, tolerating spaces, lower case
// and padding.
func DecodeTOTPSecret(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(secret), " ", ""))
	k, err := b32.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(k) == 0 {
		return nil, fmt.Errorf("auth: invalid TOTP secret")
	}
	return k, nil
}

// HOTP is RFC 4226 5.3: HMAC-SHA1 of the counter, dynamically truncated,
// modulo 10^digits, zero-padded.
func HOTP(key []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for i := 0; i < digits; i++ {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// TOTPStep is the RFC 6238 time step T of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// TOTPCode is the 6-digit code of key at t (RFC 6238 4.2).
func TOTPCode(key []byte, t time.Time) string {
	return HOTP(key, uint64(TOTPStep(t)), TOTPDigits)
}

// CheckTOTP compares code with the codes of the steps around t and returns
// the matching step, or ok=false. The caller must refuse a step already
// used (RFC 6238 5.2); see store.Web.UseTOTPStep.
func CheckTOTP(key []byte, code string, t time.Time) (step int64, ok bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != TOTPDigits {
		return 0, false
	}
	now := TOTPStep(t)
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		s := now + d
		if s < 0 {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(HOTP(key, uint64(s), TOTPDigits)), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// TOTPURI is the otpauth:// URI authenticator apps import (Google
// Authenticator Key Uri Format): otpauth://totp/ISSUER:ACCOUNT?secret=...
func TOTPURI(issuer, account, secret string) string {
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", "30")
	return "otpauth://totp/" + label + "?" + v.Encode()
}
