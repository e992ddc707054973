package auth

import (
	"strings"
	"testing"
	"time"
)

// RFC 4226 appendix D: HOTP values for the ASCII secret
// "12345678901234567890".
func TestHOTPRFC4226(t *testing.T) {
	key := []byte("12345678901234567890")
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for i, w := range want {
		if got := HOTP(key, uint64(i), 6); got != w {
			t.Errorf("HOTP(%d) = %s, want %s", i, got, w)
		}
	}
}

// RFC 6238 appendix B, SHA-1 rows (8 digits).
func TestTOTPRFC6238(t *testing.T) {
	key := []byte("12345678901234567890")
	for _, c := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	} {
		step := TOTPStep(time.Unix(c.unix, 0))
		if got := HOTP(key, uint64(step), 8); got != c.want {
			t.Errorf("T=%d: got %s, want %s", c.unix, got, c.want)
		}
		// The 6-digit code is the last six digits of the 8-digit one.
		if got := TOTPCode(key, time.Unix(c.unix, 0)); got != c.want[2:] {
			t.Errorf("T=%d: 6-digit %s, want %s", c.unix, got, c.want[2:])
		}
	}
}

func TestCheckTOTP(t *testing.T) {
	secret := NewTOTPSecret()
	if len(secret) != 32 || strings.Contains(secret, "=") {
		t.Fatalf("secret %q: want 32 base32 characters without padding", secret)
	}
	key, err := DecodeTOTPSecret(strings.ToLower(secret[:4]) + " " + secret[4:])
	if err != nil || len(key) != 20 {
		t.Fatalf("decode: %v (%d bytes)", err, len(key))
	}
	now := time.Unix(1700000000, 0)
	code := TOTPCode(key, now)
	if s, ok := CheckTOTP(key, code, now); !ok || s != TOTPStep(now) {
		t.Fatalf("current code refused (%v, %d)", ok, s)
	}
	if _, ok := CheckTOTP(key, TOTPCode(key, now.Add(-30*time.Second)), now); !ok {
		t.Fatal("previous step refused despite skew 1")
	}
	if _, ok := CheckTOTP(key, TOTPCode(key, now.Add(-90*time.Second)), now); ok {
		t.Fatal("code three steps old accepted")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := CheckTOTP(key, bad, now); ok {
			t.Fatalf("%q accepted", bad)
		}
	}
	if _, err := DecodeTOTPSecret("not base32!"); err == nil {
		t.Fatal("invalid secret decoded")
	}
	uri := TOTPURI("Petrel Mail", "alice@example.com", secret)
	if !strings.HasPrefix(uri, "otpauth://totp/Petrel%20Mail:alice@example.com?") || !strings.Contains(uri, "secret="+secret) {
		t.Fatalf("uri %s", uri)
	}
}

func FuzzTOTP(f *testing.F) {
	f.Add("JBSWY3DPEHPK3PXP", "123456")
	f.Add("jbsw y3dp ehpk 3pxp====", " 12 3456 ")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, secret, code string) {
		key, err := DecodeTOTPSecret(secret)
		if err != nil {
			return
		}
		now := time.Unix(1700000000, 0)
		if _, ok := CheckTOTP(key, code, now); ok && len(strings.ReplaceAll(strings.TrimSpace(code), " ", "")) != TOTPDigits {
			t.Fatalf("code %q of the wrong length accepted", code)
		}
		if _, ok := CheckTOTP(key, TOTPCode(key, now), now); !ok {
			t.Fatal("the current code is refused")
		}
	})
}
