package sqlstore

import (
	"encoding/binary"
	"errors"
	"slices"
)

// A posting list is how PostgreSQL's full-text index keeps the bodies a
// term is in (migration 0210, fulltext_pg.go): body ids as unsigned
// varints, each the distance from the one before, the first from zero.
// Appends arrive in batches that need not follow the ids already there
// (several nodes, a rebuild), so a 0, which no distance can be, says the
// varint after it is an id itself. A list may hold an id twice; readers
// sort and deduplicate.

var errPostings = errors.New("sqlstore: corrupt posting list")

// appendPostings encodes ids, ascending and distinct, after a list whose
// last id is prev (0 for a new list). It returns the list and its new
// last id.
func appendPostings(dst []byte, prev int64, ids []int64) ([]byte, int64) {
	for _, id := range ids {
		if id > prev {
			dst = binary.AppendUvarint(dst, uint64(id-prev))
		} else {
			dst = binary.AppendUvarint(dst, 0)
			dst = binary.AppendUvarint(dst, uint64(id))
		}
		prev = id
	}
	return dst, prev
}

// decodePostings appends the ids of list b to dst, in list order.
func decodePostings(dst []int64, b []byte) ([]int64, error) {
	var prev int64
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return dst, errPostings
		}
		b = b[n:]
		if v == 0 {
			if v, n = binary.Uvarint(b); n <= 0 {
				return dst, errPostings
			}
			b = b[n:]
			prev = int64(v)
		} else {
			prev += int64(v)
		}
		if prev <= 0 {
			return dst, errPostings
		}
		dst = append(dst, prev)
	}
	return dst, nil
}

// sortedSet sorts ids and drops repeats, in place.
func sortedSet(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}
