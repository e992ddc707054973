package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// sieveStore returns the backend's store.SieveScripts, or skips.
func sieveStore(t *testing.T, s store.Store) store.SieveScripts {
	t.Helper()
	ss, ok := unwrap(s).(store.SieveScripts)
	if !ok {
		t.Skip("backend has no store.SieveScripts")
	}
	return ss
}

func scriptNames(t *testing.T, ss store.SieveScripts, user string) map[string]bool {
	t.Helper()
	l, err := ss.ListSieveScripts(ctx(t), user)
	must(t, err)
	out := map[string]bool{}
	for i, e := range l {
		if i > 0 && l[i-1].Name >= e.Name {
			t.Fatalf("list not ordered by name: %+v", l)
		}
		out[e.Name] = e.Active
	}
	return out
}

// testSieve: several named scripts per user, at most one active, limits,
// and the scripts go with the user.
func testSieve(t *testing.T, open Open) {
	s := get(t, open)
	ss := sieveStore(t, s)
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	a, b := "a@example.com", "b@example.com"
	none := store.SieveLimits{}

	_, _, err := ss.SieveActiveScript(c, a)
	wantErr(t, err, store.ErrNotFound, "active script before any")
	_, err = ss.GetSieveScript(c, a, "x")
	wantErr(t, err, store.ErrNotFound, "get missing script")
	wantErr(t, ss.PutSieveScript(c, "ghost@example.com", "x", []byte("keep;"), none), store.ErrNotFound, "put for a missing user")

	must(t, ss.PutSieveScript(c, a, "one", []byte("keep;\r\n"), none))
	must(t, ss.PutSieveScript(c, a, "two ü", []byte("discard;"), none))
	must(t, ss.PutSieveScript(c, a, "empty", nil, none))
	must(t, ss.PutSieveScript(c, b, "one", []byte("stop;"), none))
	if got, err := ss.GetSieveScript(c, a, "one"); err != nil || string(got) != "keep;\r\n" {
		t.Fatalf("get one = %q, %v", got, err)
	}
	if got, err := ss.GetSieveScript(c, a, "empty"); err != nil || len(got) != 0 {
		t.Fatalf("get empty = %q, %v", got, err)
	}
	_, err = ss.GetSieveScript(c, a, "ONE")
	wantErr(t, err, store.ErrNotFound, "names are compared octet for octet")
	l, err := ss.ListSieveScripts(c, a)
	must(t, err)
	if len(l) != 3 || l[0].Name != "empty" || l[1].Name != "one" || l[1].Size != 7 || l[2].Name != "two ü" || l[2].Active {
		t.Fatalf("list = %+v", l)
	}
	recent(t, l[1].UpdatedAt, "updated_at")

	// One active at a time.
	must(t, ss.SetActiveSieveScript(c, a, "one"))
	must(t, ss.SetActiveSieveScript(c, a, "one")) // again: no change, no error
	if name, script, err := ss.SieveActiveScript(c, a); err != nil || name != "one" || string(script) != "keep;\r\n" {
		t.Fatalf("active = %q %q %v", name, script, err)
	}
	must(t, ss.SetActiveSieveScript(c, a, "two ü"))
	if got := scriptNames(t, ss, a); got["one"] || !got["two ü"] {
		t.Fatalf("after switching: %v", got)
	}
	wantErr(t, ss.SetActiveSieveScript(c, a, "missing"), store.ErrNotFound, "activate missing")
	if name, _, err := ss.SieveActiveScript(c, a); err != nil || name != "two ü" {
		t.Fatalf("a failed SETACTIVE changed the active script: %q %v", name, err)
	}
	_, _, err = ss.SieveActiveScript(c, b)
	wantErr(t, err, store.ErrNotFound, "b has no active script")

	// Replacing keeps the active state.
	must(t, ss.PutSieveScript(c, a, "two ü", []byte("keep; stop;"), none))
	if name, script, err := ss.SieveActiveScript(c, a); err != nil || name != "two ü" || string(script) != "keep; stop;" {
		t.Fatalf("active after replace = %q %q %v", name, script, err)
	}

	// The active script cannot be deleted; others can.
	wantErr(t, ss.DeleteSieveScript(c, a, "two ü"), store.ErrSieveActive, "delete active")
	must(t, ss.DeleteSieveScript(c, a, "empty"))
	wantErr(t, ss.DeleteSieveScript(c, a, "empty"), store.ErrNotFound, "delete twice")

	// Rename keeps the active state and refuses an existing name.
	wantErr(t, ss.RenameSieveScript(c, a, "one", "two ü"), store.ErrExists, "rename onto existing")
	wantErr(t, ss.RenameSieveScript(c, a, "missing", "new"), store.ErrNotFound, "rename missing")
	must(t, ss.RenameSieveScript(c, a, "two ü", "main"))
	if name, _, err := ss.SieveActiveScript(c, a); err != nil || name != "main" {
		t.Fatalf("active after rename = %q %v", name, err)
	}
	must(t, ss.RenameSieveScript(c, a, "main", "main"))

	// Deactivate all.
	must(t, ss.SetActiveSieveScript(c, a, ""))
	_, _, err = ss.SieveActiveScript(c, a)
	wantErr(t, err, store.ErrNotFound, "active after deactivating")
	must(t, ss.DeleteSieveScript(c, a, "main"))

	// Limits: count, size, storage; replacing a script does not count it twice.
	lim := store.SieveLimits{MaxScripts: 2, MaxSize: 10, MaxStorage: 15}
	if got := scriptNames(t, ss, a); len(got) != 1 || got["one"] {
		t.Fatalf("before limits: %v", got)
	}
	wantErr(t, ss.PutSieveScript(c, a, "big", make([]byte, 11), lim), store.ErrSieveMaxSize, "over MaxSize")
	wantErr(t, ss.SieveHaveSpace(c, a, "big", 11, lim), store.ErrSieveMaxSize, "HAVESPACE over MaxSize")
	must(t, ss.SieveHaveSpace(c, a, "two", 8, lim))                                                        // 7 + 8 = 15
	wantErr(t, ss.SieveHaveSpace(c, a, "two", 9, lim), store.ErrSieveMaxStorage, "HAVESPACE over storage") // 7 + 9
	must(t, ss.PutSieveScript(c, a, "two", make([]byte, 8), lim))
	wantErr(t, ss.PutSieveScript(c, a, "three", []byte("x"), lim), store.ErrSieveMaxScripts, "third script")
	wantErr(t, ss.SieveHaveSpace(c, a, "three", 0, lim), store.ErrSieveMaxScripts, "HAVESPACE third script")
	must(t, ss.SieveHaveSpace(c, a, "two", 8, lim))               // replacing it fits
	must(t, ss.PutSieveScript(c, a, "one", make([]byte, 7), lim)) // replace in place
	wantErr(t, ss.PutSieveScript(c, a, "one", make([]byte, 8), lim), store.ErrSieveMaxStorage, "replace over storage")
	if got, _ := ss.GetSieveScript(c, a, "one"); len(got) != 7 {
		t.Fatalf("a refused PUTSCRIPT changed the script: %d octets", len(got))
	}

	// Concurrent puts cannot pass the count together.
	must(t, ss.DeleteSieveScript(c, a, "two"))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 20; attempt++ {
				errs[i] = ss.PutSieveScript(c, a, string(rune('p'+i)), []byte("k"), store.SieveLimits{MaxScripts: 2})
				if errs[i] == nil || errors.Is(errs[i], store.ErrSieveMaxScripts) || errors.Is(errs[i], store.ErrNotFound) {
					return
				}
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrSieveMaxScripts):
			t.Fatalf("concurrent put: %v", err)
		}
	}
	if ok != 1 || len(scriptNames(t, ss, a)) != 2 {
		t.Fatalf("concurrent puts: %d succeeded, scripts %v", ok, scriptNames(t, ss, a))
	}

	// Scripts go with the user.
	must(t, ss.SetActiveSieveScript(c, b, "one"))
	must(t, s.DeleteUser(c, b))
	_, _, err = ss.SieveActiveScript(c, b)
	wantErr(t, err, store.ErrNotFound, "active script of a deleted user")
	if l, err := ss.ListSieveScripts(c, b); err != nil || len(l) != 0 {
		t.Fatalf("scripts of a deleted user: %v %v", l, err)
	}
	seed(t, s, 0, "b")
	if l, err := ss.ListSieveScripts(c, b); err != nil || len(l) != 0 {
		t.Fatalf("a re-created user inherits scripts: %v %v", l, err)
	}
}
