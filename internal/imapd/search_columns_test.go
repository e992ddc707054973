package imapd

import (
	"fmt"
	"strings"
	"testing"
)

// A column's values read back as added: empty, short, long (a two-byte
// length), repeated ones sharing their text, and unique ones past the
// point where the load stops looking for repeats.
func TestColumnLoadValues(t *testing.T) {
	col := &column{next: 1, data: []byte{0}}
	ld := &columnLoad{col: col, seen: make(map[string]uint32)}
	var want []string
	add := func(v string) {
		col.uids = append(col.uids, uint32(len(col.uids)+1))
		col.offs = append(col.offs, ld.add(v))
		want = append(want, v)
	}
	long := strings.Repeat("x", 300)
	for i := 0; i < 2000; i++ {
		add(fmt.Sprintf("Sender %d <s%d@example.org>", i%97, i%97))
		add("")
		add(long)
	}
	repeated := len(col.data)
	if max := 97*40 + 400; repeated > max {
		t.Fatalf("%d bytes of text for 98 distinct values (more than %d): repeats not shared", repeated, max)
	}
	// A second load of values that do not repeat.
	ld = &columnLoad{col: col, seen: make(map[string]uint32)}
	for i := 0; i < 2*dedupValues; i++ {
		add(fmt.Sprintf("Subject %d", i))
	}
	if ld.seen != nil {
		t.Error("still looking up repeats after thousands of distinct values")
	}
	cs := &colSnap{uids: col.uids, offs: col.offs, data: col.data}
	for i, w := range want {
		got, ok := cs.value(uint32(i + 1))
		if !ok || string(got) != w {
			t.Fatalf("value %d: %q %v, want %q", i+1, got, ok, w)
		}
		if cap(got) != len(got) {
			t.Fatalf("value %d: capacity beyond its length (an append would write into the column)", i+1)
		}
	}
	// Out of order, as the binary search fallback reads it.
	if got, _ := cs.value(3); string(got) != long {
		t.Fatalf("value 3 out of order: %q", got)
	}
}

// BenchmarkColumnValues is the cost of reading every value of a
// 100,000-message Subject column in UID order, as SEARCH does.
func BenchmarkColumnValues(b *testing.B) {
	col := &column{next: 1, data: []byte{0}}
	ld := &columnLoad{col: col, seen: make(map[string]uint32)}
	for i := 0; i < 100000; i++ {
		col.uids = append(col.uids, uint32(i+1))
		col.offs = append(col.offs, ld.add(fmt.Sprintf("Bench message %d about topic %d", i, i%50)))
	}
	b.ResetTimer()
	for b.Loop() {
		cs := &colSnap{uids: col.uids, offs: col.offs, data: col.data}
		n := 0
		for u := uint32(1); u <= 100000; u++ {
			v, _ := cs.value(u)
			n += len(v)
		}
		if n == 0 {
			b.Fatal("no text")
		}
	}
}
