package auth

import (
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var writeHashes = flag.Bool("write-petrel-hashes", false, "rewrite testdata/petrel_hashes.json (then run testdata/check_petrel_hashes.py)")

type petrelHash struct {
	Password string `json:"password"`
	Rounds   int    `json:"rounds"`
	Hash     string `json:"hash"`
}

// TestPetrelHashes: hashes HashPassword wrote, which passlib verified
// (testdata/check_petrel_hashes.py), still verify here. With
// -write-petrel-hashes it makes a new set instead.
func TestPetrelHashes(t *testing.T) {
	const file = "testdata/petrel_hashes.json"
	if *writeHashes {
		var out []petrelHash
		for _, pw := range []string{"password", "pässwörd ✓ 密码", "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789tail", "p@$$w0rd with spaces"} {
			for _, r := range []int{4, 5, 12} {
				h, err := HashPassword(pw, r)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, petrelHash{pw, r, h})
			}
		}
		b, _ := json.MarshalIndent(out, "", " ")
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var hs []petrelHash
	if err := json.Unmarshal(b, &hs); err != nil {
		t.Fatal(err)
	}
	if len(hs) < 8 {
		t.Fatalf("only %d hashes", len(hs))
	}
	for _, h := range hs {
		if h.Rounds > 5 {
			// Cost 12 takes seconds under -race; passlib checked these, and
			// the code path is the cost-4 one. Check the layout only.
			if _, err := parseBcryptSHA256(h.Hash); err != nil || NeedsRehash(h.Hash, h.Rounds) {
				t.Errorf("%q: %v", h.Hash, err)
			}
			continue
		}
		ok, _, err := VerifyPassword(h.Hash, h.Password)
		if !ok || err != nil || NeedsRehash(h.Hash, h.Rounds) {
			t.Errorf("%q: ok=%v err=%v", h.Hash, ok, err)
		}
		if ok, _, _ := VerifyPassword(h.Hash, h.Password+"!"); ok {
			t.Errorf("%q verified a wrong password", h.Hash)
		}
	}
}
