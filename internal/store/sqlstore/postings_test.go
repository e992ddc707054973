package sqlstore

import (
	"encoding/binary"
	"slices"
	"testing"
)

// TestPostings: lists written in order are distances only; an append
// that does not follow the last id restarts with the id itself, and
// decoding gives back every id in list order.
func TestPostings(t *testing.T) {
	b, last := appendPostings(nil, 0, []int64{3, 130, 131})
	if want := []byte{3, 127, 1}; !slices.Equal(b, want) || last != 131 {
		t.Fatalf("in order: % x last %d, want % x last 131", b, last, want)
	}
	b, last = appendPostings(b, last, []int64{200})
	b, last = appendPostings(b, last, []int64{5, 1 << 40})
	if last != 1<<40 {
		t.Fatalf("last %d", last)
	}
	got, err := decodePostings(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{3, 130, 131, 200, 5, 1 << 40}; !slices.Equal(got, want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	if s := sortedSet([]int64{5, 3, 5, 1}); !slices.Equal(s, []int64{1, 3, 5}) {
		t.Errorf("sortedSet: %v", s)
	}
	for _, bad := range [][]byte{
		{0x80},       // a varint cut short
		{0},          // a restart without its id
		{0, 0},       // id 0
		{5, 0, 0x80}, // a restart's id cut short
	} {
		if _, err := decodePostings(nil, bad); err == nil {
			t.Errorf("% x decoded", bad)
		}
	}
}

// FuzzPostings: any ascending ids, appended in two parts to a list
// ending at any id, decode to that list; arbitrary bytes never panic.
func FuzzPostings(f *testing.F) {
	f.Add([]byte{3, 127, 1}, int64(0), 1)
	f.Add([]byte{0, 9, 1}, int64(100), 0)
	f.Fuzz(func(t *testing.T, raw []byte, prev int64, split int) {
		decodePostings(nil, raw)
		var ids []int64
		var id int64
		for len(raw) > 0 {
			d, n := binary.Uvarint(raw)
			if n <= 0 {
				break
			}
			raw = raw[n:]
			id += int64(d%(1<<20)) + 1
			ids = append(ids, id)
		}
		// A list that ends at prev, then ids in two appends.
		var want []int64
		if prev = max(prev%(1<<40), 0); prev > 0 {
			want = append(want, prev)
		}
		want = append(want, ids...)
		split = min(max(split, 0), len(ids))
		b, last := appendPostings(nil, 0, want[:len(want)-len(ids)])
		b, last = appendPostings(b, last, ids[:split])
		b, _ = appendPostings(b, last, ids[split:])
		got, err := decodePostings(nil, b)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("ids %v after %d: decoded %v, %v", ids, prev, got, err)
		}
	})
}
