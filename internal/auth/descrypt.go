package auth

import (
	"crypto/subtle"
	"fmt"
)

// Traditional DES crypt(3) (passlib des_crypt): Mailu 1.x wrote it for
// PASSWORD_SCHEME=CRYPT as "{CRYPT}" + 13 characters, and an import keeps
// such hashes. Only verification: Petrel never makes one. The tables are
// FIPS 46-3's, in the bit order of Go's crypto/des (const.go, BSD
// licence): entries count bits from the least significant one.

var desIP = [64]byte{
	6, 14, 22, 30, 38, 46, 54, 62, 4, 12, 20, 28, 36, 44, 52, 60,
	2, 10, 18, 26, 34, 42, 50, 58, 0, 8, 16, 24, 32, 40, 48, 56,
	7, 15, 23, 31, 39, 47, 55, 63, 5, 13, 21, 29, 37, 45, 53, 61,
	3, 11, 19, 27, 35, 43, 51, 59, 1, 9, 17, 25, 33, 41, 49, 57,
}

var desFP = [64]byte{
	24, 56, 16, 48, 8, 40, 0, 32, 25, 57, 17, 49, 9, 41, 1, 33,
	26, 58, 18, 50, 10, 42, 2, 34, 27, 59, 19, 51, 11, 43, 3, 35,
	28, 60, 20, 52, 12, 44, 4, 36, 29, 61, 21, 53, 13, 45, 5, 37,
	30, 62, 22, 54, 14, 46, 6, 38, 31, 63, 23, 55, 15, 47, 7, 39,
}

var desE = [48]byte{
	0, 31, 30, 29, 28, 27, 28, 27, 26, 25, 24, 23, 24, 23, 22, 21,
	20, 19, 20, 19, 18, 17, 16, 15, 16, 15, 14, 13, 12, 11, 12, 11,
	10, 9, 8, 7, 8, 7, 6, 5, 4, 3, 4, 3, 2, 1, 0, 31,
}

var desP = [32]byte{
	16, 25, 12, 11, 3, 20, 4, 15, 31, 17, 9, 6, 27, 14, 1, 22,
	30, 24, 8, 18, 0, 5, 29, 23, 13, 19, 2, 26, 10, 21, 28, 7,
}

var desPC1 = [56]byte{
	7, 15, 23, 31, 39, 47, 55, 63, 6, 14, 22, 30, 38, 46, 54, 62,
	5, 13, 21, 29, 37, 45, 53, 61, 4, 12, 20, 28, 1, 9, 17, 25,
	33, 41, 49, 57, 2, 10, 18, 26, 34, 42, 50, 58, 3, 11, 19, 27,
	35, 43, 51, 59, 36, 44, 52, 60,
}

var desPC2 = [48]byte{
	42, 39, 45, 32, 55, 51, 53, 28, 41, 50, 35, 46, 33, 37, 44, 52,
	30, 48, 40, 49, 29, 36, 43, 54, 15, 4, 25, 19, 9, 1, 26, 16,
	5, 11, 23, 8, 12, 7, 17, 0, 22, 3, 10, 14, 6, 20, 27, 24,
}

var desS = [8][4][16]uint8{
	{{14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7}, {0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8},
		{4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0}, {15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13}},
	{{15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10}, {3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5},
		{0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15}, {13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9}},
	{{10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8}, {13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1},
		{13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7}, {1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12}},
	{{7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15}, {13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9},
		{10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4}, {3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14}},
	{{2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9}, {14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6},
		{4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14}, {11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3}},
	{{12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11}, {10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8},
		{9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6}, {4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13}},
	{{4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1}, {13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6},
		{1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2}, {6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12}},
	{{13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7}, {1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2},
		{7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8}, {2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11}},
}

var desRotations = [16]uint8{1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1}

// cryptAlphabet is crypt(3)'s base-64 alphabet.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func permute(src uint64, table []byte) (out uint64) {
	for pos, n := range table {
		out |= ((src >> n) & 1) << uint(len(table)-1-pos)
	}
	return out
}

func cryptIndex(c byte) int {
	for i := 0; i < len(cryptAlphabet); i++ {
		if cryptAlphabet[i] == c {
			return i
		}
	}
	return -1
}

// desCryptHash is one parsed des_crypt hash: 2 salt and 11 digest
// characters.
type desCryptHash struct{ hash string }

func isDESCrypt(h string) bool {
	if len(h) != 13 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if cryptIndex(h[i]) < 0 {
			return false
		}
	}
	// The last character carries 4 bits and two zero ones.
	return cryptIndex(h[12])&3 == 0
}

func parseDESCrypt(h string) (desCryptHash, error) {
	if !isDESCrypt(h) {
		return desCryptHash{}, fmt.Errorf("auth: %w: des_crypt", ErrUnknownHash)
	}
	return desCryptHash{hash: h}, nil
}

func (h desCryptHash) verify(password string) bool {
	got := desCrypt(password, h.hash[:2])
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.hash)) == 1
}

// desCrypt is crypt(3) with a 2-character salt: the first 8 bytes of the
// password (7 bits each) are the DES key, the salt swaps pairs of E-box
// outputs, and a zero block is encrypted 25 times.
func desCrypt(password, salt string) string {
	var key uint64
	for i := 0; i < 8 && i < len(password); i++ {
		key |= uint64(password[i]<<1) << uint(56-8*i)
	}
	// Salt bit j of character i swaps E outputs 6i+j and 6i+j+24,
	// counted from the first (most significant) of the 48.
	var swap uint64
	for i := 0; i < 2; i++ {
		v := cryptIndex(salt[i])
		for j := 0; j < 6; j++ {
			if v>>j&1 == 1 {
				swap |= 1 << uint(47-(6*i+j))
			}
		}
	}
	var subkeys [16]uint64
	k := permute(key, desPC1[:])
	c, d := uint32(k>>28)&0x0fffffff, uint32(k)&0x0fffffff
	for r := range 16 {
		n := desRotations[r]
		c = (c<<n | c>>(28-n)) & 0x0fffffff
		d = (d<<n | d>>(28-n)) & 0x0fffffff
		subkeys[r] = permute(uint64(c)<<28|uint64(d), desPC2[:])
	}
	var block uint64
	for range 25 {
		b := permute(block, desIP[:])
		l, r := uint32(b>>32), uint32(b)
		for round := range 16 {
			e := permute(uint64(r), desE[:])
			// Swap the salted pairs (the bit of swap and the one 24
			// below it) where they differ.
			t := ((e >> 24) ^ e) & (swap >> 24)
			e ^= t | t<<24
			x := e ^ subkeys[round]
			var out uint64
			for s := range 8 {
				six := x >> uint(42-6*s) & 0x3f
				row := (six>>4)&2 | six&1
				col := (six >> 1) & 0xf
				out |= uint64(desS[s][row][col]) << uint(28-4*s)
			}
			f := uint32(permute(out, desP[:]))
			l, r = r, l^f
		}
		block = permute(uint64(r)<<32|uint64(l), desFP[:])
	}
	buf := make([]byte, 13)
	copy(buf, salt[:2])
	v := block << 2 // 66 bits: 11 groups of 6, the last two zero
	for i := range 11 {
		var six uint64
		if i == 0 {
			six = block >> 58
		} else {
			six = v >> uint(60-6*i) & 0x3f
		}
		buf[2+i] = cryptAlphabet[six]
	}
	return string(buf)
}
