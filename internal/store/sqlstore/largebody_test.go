package sqlstore

import (
	"errors"
	"io/fs"
	"testing"
)

// largeRef is where a body over InlineMax lives: its blob file on
// SQLite, its body_chunk rows on PostgreSQL.
type largeRef struct {
	id   int64
	name string
}

func largeOf(t *testing.T, s *Store, bodyID int64) largeRef {
	t.Helper()
	if s.BodiesInDatabase() {
		r := largeRef{id: bodyID}
		if !r.exists(t, s) {
			t.Fatalf("body %d has no chunks", bodyID)
		}
		return r
	}
	return largeRef{id: bodyID, name: blobNameOf(t, s, bodyID)}
}

func (r largeRef) exists(t *testing.T, s *Store) bool {
	t.Helper()
	if r.name == "" {
		var n int
		must(t, s.readConn().queryRow(t.Context(), `SELECT COUNT(*) FROM body_chunk WHERE body_id = ?`, r.id).Scan(&n))
		return n > 0
	}
	_, err := s.Blobs().Stat(r.name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// largeBodies counts the stored large bodies: blob files, or chunked
// bodies.
func largeBodies(t *testing.T, s *Store) int {
	t.Helper()
	if !s.BodiesInDatabase() {
		return blobCount(t, s)
	}
	var n int
	must(t, s.readConn().queryRow(t.Context(), `SELECT COUNT(DISTINCT body_id) FROM body_chunk`).Scan(&n))
	return n
}
