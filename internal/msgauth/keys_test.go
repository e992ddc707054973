package msgauth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// installKey copies a testdata key to where Keys looks for domain's key.
func installKey(t *testing.T, k *Keys, domain, name string) {
	t.Helper()
	p, err := k.Path(domain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, readTestdata(t, name), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateMailuFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dkim") // created by Generate
	k := NewKeys(dir, "")
	if k.Selector() != "dkim" {
		t.Fatalf("default selector %q", k.Selector())
	}
	if exists(t, k, "example.com") {
		t.Fatal("key exists before Generate")
	}
	if err := k.Generate(context.Background(), "Example.COM"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "example.com.dkim.key")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("key not at Mailu's path: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(p)
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("not a single PKCS#8 PEM block:\n%s", data)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != 2048 {
		t.Fatalf("want RSA-2048, got %T", key)
	}
	loaded, err := k.Load(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.(*rsa.PrivateKey).Equal(rk) {
		t.Error("Load returned a different key than the file holds")
	}
	if !exists(t, k, "example.com") || exists(t, k, "example.org") {
		t.Error("Exists wrong")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestRegenerateReplacesKey(t *testing.T) {
	k := NewKeys(t.TempDir(), "sel")
	if err := k.Generate(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	before, err := k.PublicKeyRecord(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := k.Load(context.Background(), "example.com")
	if again, _ := k.Load(context.Background(), "example.com"); again != first {
		t.Error("unchanged file was parsed again (no cache)")
	}
	if err := k.Generate(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	after, err := k.PublicKeyRecord(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if before == after {
		t.Fatal("regenerate kept the old key (stale cache?)")
	}
	p, _ := k.Path("example.com")
	if filepath.Base(p) != "example.com.sel.key" {
		t.Errorf("path %s", p)
	}
}

// An in-place rewrite (same inode, e.g. an admin copying a Mailu key over
// ours) is noticed too.
func TestLoadNoticesInPlaceRewrite(t *testing.T) {
	k := NewKeys(t.TempDir(), "")
	if err := k.Generate(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Load(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	p, _ := k.Path("example.com")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(readTestdata(t, "pkcs8.key")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Make the change visible even on a coarse-grained file system clock.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	got, err := k.PublicKeyRecord(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := string(readTestdata(t, "pkcs1.dkim.txt")); got != want {
		t.Errorf("after rewrite got %.40s..., want the copied key", got)
	}
}

// Keys copied from Mailu or made by older tools: PKCS#8 and PKCS#1 PEM give
// the same public key record, equal to what openssl prints
// (testdata/pkcs1.dkim.txt was made with `openssl rsa -pubout -outform DER`).
func TestLoadPKCS1AndPKCS8(t *testing.T) {
	want := string(readTestdata(t, "pkcs1.dkim.txt"))
	for _, name := range []string{"pkcs1.key", "pkcs8.key"} {
		t.Run(name, func(t *testing.T) {
			k := NewKeys(t.TempDir(), "")
			installKey(t, k, "example.com", name)
			got, err := k.PublicKeyRecord(context.Background(), "example.com")
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("record\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	k := NewKeys(t.TempDir(), "")
	if _, err := k.Load(context.Background(), "example.com"); !errors.Is(err, ErrNoKey) {
		t.Errorf("missing key: %v, want ErrNoKey", err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"ed25519", readTestdata(t, "ed25519.key")},
		{"rsa512", readTestdata(t, "rsa512.key")},
		{"garbage", []byte("not a key")},
		{"bad der", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		{"certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePrivateKey(tt.data); !errors.Is(err, ErrBadKey) {
				t.Errorf("ParsePrivateKey: %v, want ErrBadKey", err)
			}
			if err := k.Store(context.Background(), "bad.example", tt.data); !errors.Is(err, ErrBadKey) {
				t.Errorf("Store: %v, want ErrBadKey", err)
			}
			p, _ := k.Path("bad.example")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Load(context.Background(), "bad.example"); !errors.Is(err, ErrBadKey) {
				t.Errorf("Load: %v, want ErrBadKey", err)
			}
		})
	}
}

func TestDomainNamesCannotEscapeDir(t *testing.T) {
	k := NewKeys(t.TempDir(), "")
	for _, d := range []string{"../evil", "a/b.example", "", "[127.0.0.1]", "a..b"} {
		if err := k.Generate(context.Background(), d); err == nil {
			t.Errorf("Generate(%q) accepted", d)
		}
		if _, err := k.Load(context.Background(), d); err == nil || errors.Is(err, ErrNoKey) {
			t.Errorf("Load(%q): %v, want a name error", d, err)
		}
	}
}

// Mailu names the file after the decoded (Unicode) domain; Petrel writes the
// A-label name and reads either.
func TestIDNKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k := NewKeys(dir, "")
	p, err := k.Path("Bücher.Example")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "xn--bcher-kva.example.dkim.key" {
		t.Errorf("path %s", p)
	}
	mailu := filepath.Join(dir, "bücher.example.dkim.key")
	if err := os.WriteFile(mailu, readTestdata(t, "pkcs8.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !exists(t, k, "xn--bcher-kva.example") {
		t.Fatal("Mailu's Unicode-named key not found")
	}
	got, err := k.PublicKeyRecord(context.Background(), "xn--bcher-kva.example")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(readTestdata(t, "pkcs1.dkim.txt")) {
		t.Error("wrong key")
	}
	if err := k.Remove(context.Background(), "bücher.example"); err != nil {
		t.Fatal(err)
	}
	if exists(t, k, "bücher.example") {
		t.Error("Remove left the key")
	}
	if err := k.Remove(context.Background(), "bücher.example"); err != nil {
		t.Errorf("Remove of a missing key: %v", err)
	}
}

func TestStoreAndPathTemplate(t *testing.T) {
	dir := t.TempDir()
	k := NewKeysPath(filepath.Join(dir, "keys", "{selector}-{domain}.pem"), "s2024")
	if err := k.Store(context.Background(), "example.com", readTestdata(t, "pkcs1.key")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "keys", "s2024-example.com.pem")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(readTestdata(t, "pkcs1.key")) {
		t.Error("Store changed the key bytes")
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

func TestLoadConcurrent(t *testing.T) {
	k := NewKeys(t.TempDir(), "")
	installKey(t, k, "example.com", "pkcs8.key")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := k.Load(context.Background(), "example.com"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := k.Generate(context.Background(), "example.com"); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func exists(t *testing.T, k *Keys, domain string) bool {
	t.Helper()
	ok, err := k.Exists(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
