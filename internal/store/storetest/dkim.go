package storetest

import (
	"errors"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// testDKIMKeys checks DKIM key storage: absent, create, replace (the
// version grows), a second selector apart, delete.
func testDKIMKeys(t *testing.T, open Open) {
	s, ok := unwrap(get(t, open)).(store.DKIMKeys)
	if !ok {
		t.Skip("backend has no DKIM key storage")
	}
	c := ctx(t)
	if _, err := s.GetDKIMKey(c, "a.test", "dkim"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetDKIMKey(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.DKIMKeyVersion(c, "a.test", "dkim"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DKIMKeyVersion(missing) = %v, want ErrNotFound", err)
	}
	wantErr(t, s.DeleteDKIMKey(c, "a.test", "dkim"), store.ErrNotFound, "DeleteDKIMKey(missing)")

	v1, err := s.PutDKIMKey(c, "a.test", "dkim", []byte("sealed-1\x00\xff"))
	must(t, err)
	v2, err := s.PutDKIMKey(c, "a.test", "dkim", []byte("sealed-2"))
	must(t, err)
	if v2 <= v1 {
		t.Fatalf("version after replace = %d, not above %d", v2, v1)
	}
	k, err := s.GetDKIMKey(c, "a.test", "dkim")
	must(t, err)
	if string(k.Sealed) != "sealed-2" || k.Version != v2 || k.Domain != "a.test" || k.Selector != "dkim" {
		t.Fatalf("GetDKIMKey = %+v, want sealed-2 at version %d", k, v2)
	}
	recent(t, k.Modified, "dkim key modified")
	if v, err := s.DKIMKeyVersion(c, "a.test", "dkim"); err != nil || v != v2 {
		t.Fatalf("DKIMKeyVersion = %d, %v; want %d", v, err, v2)
	}

	// Binary data survives, and another selector is another key.
	_, err = s.PutDKIMKey(c, "a.test", "s2", []byte("\x00\x01\xfe"))
	must(t, err)
	if k, err := s.GetDKIMKey(c, "a.test", "s2"); err != nil || string(k.Sealed) != "\x00\x01\xfe" {
		t.Fatalf("GetDKIMKey(s2) = %+v, %v", k, err)
	}
	must(t, s.DeleteDKIMKey(c, "a.test", "dkim"))
	if _, err := s.GetDKIMKey(c, "a.test", "dkim"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetDKIMKey after delete = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDKIMKey(c, "a.test", "s2"); err != nil {
		t.Fatalf("delete of one selector removed the other: %v", err)
	}
}
