package storetest

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// testReadBodies: a batch read gives every existing body exactly once,
// with the bytes OpenBody gives, skips ids that do not exist, and stops
// at fn's error.
func testReadBodies(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	bb, ok := unwrap(s).(store.BodyBatch)
	if !ok {
		t.Skip("backend does not implement store.BodyBatch")
	}
	c := ctx(t)
	for i := range 300 { // more than one batch of the SQL backend
		appendMsg(t, mb, "INBOX", "Subject: batch "+strings.Repeat("x", i)+"\r\n\r\nbody\r\n")
	}
	for i := range 2 { // over a typical inline limit: blob files, where the backend has them
		appendMsg(t, mb, "INBOX", "Subject: big\r\n\r\n"+strings.Repeat("big body line\r\n", 2000+i))
	}
	msgs := listByID(t, mb, getBox(t, mb, "INBOX").ID)
	want := map[int64]string{}
	var ids []int64
	for _, m := range msgs {
		rc, err := s.OpenBody(c, m.BodyID)
		must(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		must(t, err)
		want[m.BodyID] = string(b)
		ids = append(ids, m.BodyID)
	}
	ids = append(ids, ids[len(ids)-1]+1000000) // no such body
	got := map[int64]string{}
	err := bb.ReadBodies(c, ids, func(id int64, r io.ReaderAt, size int64) error {
		if _, dup := got[id]; dup {
			t.Errorf("body %d given twice", id)
		}
		b := make([]byte, size)
		if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		got[id] = string(b)
		return nil
	})
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("%d bodies read, want %d", len(got), len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("body %d: %q, want %q", id, got[id], w)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err = bb.ReadBodies(c, ids, func(int64, io.ReaderAt, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls, want stop after 1", err, calls)
	}
	must(t, bb.ReadBodies(c, nil, func(int64, io.ReaderAt, int64) error { t.Error("called for no ids"); return nil }))
}
