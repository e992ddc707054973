package msgauth

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store"
)

// memKeys is store.DKIMKeys in memory; sqlstore's own conformance test
// (storetest) covers the SQL, and tests/ two nodes on one PostgreSQL.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]store.DKIMKey
}

func (m *memKeys) GetDKIMKey(_ context.Context, d, sel string) (*store.DKIMKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[d+"/"+sel]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &k, nil
}

func (m *memKeys) DKIMKeyVersion(ctx context.Context, d, sel string) (int64, error) {
	k, err := m.GetDKIMKey(ctx, d, sel)
	if err != nil {
		return 0, err
	}
	return k.Version, nil
}

func (m *memKeys) PutDKIMKey(_ context.Context, d, sel string, sealed []byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]store.DKIMKey{}
	}
	k := m.keys[d+"/"+sel]
	m.keys[d+"/"+sel] = store.DKIMKey{Domain: d, Selector: sel, Sealed: bytes.Clone(sealed), Version: k.Version + 1, Modified: time.Now()}
	return k.Version + 1, nil
}

func (m *memKeys) DeleteDKIMKey(_ context.Context, d, sel string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[d+"/"+sel]; !ok {
		return store.ErrNotFound
	}
	delete(m.keys, d+"/"+sel)
	return nil
}

func storeKeys(t *testing.T, db store.DKIMKeys, master, path string, export bool) *Keys {
	t.Helper()
	s, err := secret.NewSealer([]byte(master), SealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewStoreKeys(KeysOptions{Store: db, Sealer: s, Path: path, ExportFiles: export})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Two nodes on one store: a key generated on A signs on B, and a key
// regenerated on A replaces B's cached one at once.
func TestStoreKeysSharedBetweenNodes(t *testing.T) {
	ctx := context.Background()
	db := &memKeys{}
	dir := t.TempDir()
	a := storeKeys(t, db, "secret", filepath.Join(dir, "{domain}.{selector}.key"), false)
	b := storeKeys(t, db, "secret", "", false)
	if _, err := b.Load(ctx, "example.com"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Load before any key = %v, want ErrNoKey", err)
	}
	if err := a.Generate(ctx, "Example.COM"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a key was written to DKIM_PATH without ExportFiles: %v", entries)
	}
	sk, _ := db.GetDKIMKey(ctx, "example.com", "dkim")
	if bytes.Contains(sk.Sealed, []byte("PRIVATE KEY")) {
		t.Fatal("the store holds the PEM key in clear")
	}
	ra, _ := a.PublicKeyRecord(ctx, "example.com")
	rb, err := b.PublicKeyRecord(ctx, "example.com")
	if err != nil || rb != ra {
		t.Fatalf("node B's record = %q, %v; want node A's %q", rb, err, ra)
	}
	if err := a.Generate(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	ra2, _ := a.PublicKeyRecord(ctx, "example.com")
	rb2, _ := b.PublicKeyRecord(ctx, "example.com")
	if ra2 == ra || rb2 != ra2 {
		t.Fatal("node B kept signing with the replaced key")
	}
	if ok, err := b.Exists(ctx, "example.com"); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if err := b.Remove(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx, "example.com"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Load after Remove on the other node = %v, want ErrNoKey", err)
	}
}

// A Mailu key file that the store lacks is imported (once; the store wins
// afterwards), and ExportFiles writes keys to DKIM_PATH as Mailu lays them out.
func TestStoreKeysImportAndExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "{domain}.{selector}.key")
	pkcs1 := readTestdata(t, "pkcs1.key")
	if err := os.WriteFile(filepath.Join(dir, "bücher.example.dkim.key"), pkcs1, 0o600); err != nil {
		t.Fatal(err)
	}
	db := &memKeys{}
	k := storeKeys(t, db, "secret", path, false)
	n, err := k.ImportFiles(ctx, []string{"xn--bcher-kva.example", "nokey.example"})
	if err != nil || n != 1 {
		t.Fatalf("ImportFiles = %d, %v; want 1", n, err)
	}
	other := storeKeys(t, db, "secret", "", false)
	got, err := other.PEM(ctx, "bücher.example")
	if err != nil || !bytes.Equal(got, pkcs1) {
		t.Fatalf("PEM from the store = %q, %v; want the file as it was", got, err)
	}
	if n, _ := k.ImportFiles(ctx, []string{"xn--bcher-kva.example"}); n != 0 {
		t.Fatalf("second ImportFiles imported %d keys again", n)
	}

	// Lazy import on a signing miss, for a file copied in while running.
	if err := os.WriteFile(filepath.Join(dir, "late.example.dkim.key"), pkcs1, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Load(ctx, "late.example"); err != nil {
		t.Fatalf("Load of a key file the store lacks: %v", err)
	}
	if _, err := db.GetDKIMKey(ctx, "late.example", "dkim"); err != nil {
		t.Fatalf("the key file was not imported: %v", err)
	}

	exp := storeKeys(t, db, "secret", path, true)
	if err := exp.Generate(ctx, "exported.example"); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, "exported.example.dkim.key"))
	if err != nil {
		t.Fatalf("ExportFiles wrote no file: %v", err)
	}
	stored, _ := exp.PEM(ctx, "exported.example")
	if !bytes.Equal(file, stored) {
		t.Fatal("exported file differs from the stored key")
	}
	if err := exp.Remove(ctx, "exported.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "exported.example.dkim.key")); !os.IsNotExist(err) {
		t.Fatalf("Remove left the file, which the next start would import again: %v", err)
	}
}

// A node with another SECRET_KEY cannot open the keys and says why.
func TestStoreKeysOtherSecret(t *testing.T) {
	ctx := context.Background()
	db := &memKeys{}
	if err := storeKeys(t, db, "one", "", false).Generate(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	_, err := storeKeys(t, db, "two", "", false).Load(ctx, "example.com")
	if !errors.Is(err, ErrBadKey) || !errors.Is(err, secret.ErrUnsealable) {
		t.Fatalf("Load with another SECRET_KEY = %v, want ErrBadKey and ErrUnsealable", err)
	}
}
