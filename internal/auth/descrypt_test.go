package auth

import "testing"

// TestDESCrypt: hashes made by libxcrypt's crypt(3) (Debian's Python
// crypt module), as Mailu 1.x stored them with PASSWORD_SCHEME=CRYPT.
func TestDESCrypt(t *testing.T) {
	vectors := [][2]string{
		{"correct horse battery staple", "abhfCpXqd4GrI"}, // only the first 8 bytes count
		{"password", "./xZjzHv5vzVE"},
		{"pässwörd", "zZw8laZTywrOQ"}, // UTF-8 bytes, 7 bits each
		{"ab", "9avf0PaiIZ2Vs"},
	}
	for _, v := range vectors {
		for _, stored := range []string{v[1], "{CRYPT}" + v[1]} {
			ok, rehash, err := VerifyPassword(stored, v[0])
			if !ok || !rehash || err != nil {
				t.Errorf("%q against %s: ok=%v rehash=%v err=%v", v[0], stored, ok, rehash, err)
			}
			if ok, _, _ := VerifyPassword(stored, v[0]+"x"); ok && len(v[0]) < 8 {
				t.Errorf("%s: a longer password matched", stored)
			}
			if ok, _, err := VerifyPassword(stored, "wrong"); ok || err != nil {
				t.Errorf("%s: wrong password: ok=%v err=%v", stored, ok, err)
			}
		}
	}
	if ok, _, _ := VerifyPassword("abhfCpXqd4GrI", "correct horse"); !ok {
		t.Error("des_crypt must ignore bytes after the eighth")
	}
	for _, bad := range []string{"abhfCpXqd4Gr", "abhfCpXqd4GrJ", "ab!fCpXqd4GrI"} {
		if _, _, err := VerifyPassword(bad, "x"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
