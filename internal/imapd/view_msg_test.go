package imapd

import (
	"math"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestViewMsgSize: viewMsg keeps sizes in 32 bits; a size beyond that
// (no server accepts such a message) saturates instead of wrapping.
func TestViewMsgSize(t *testing.T) {
	fs := newFlagSets()
	for _, tc := range []struct{ in, want int64 }{{0, 0}, {4321, 4321}, {math.MaxUint32, math.MaxUint32}, {5 << 30, math.MaxUint32}} {
		m := fs.compact(&store.MessageInfo{UID: 1, Size: tc.in})
		if got := m.info(1).Size; got != tc.want {
			t.Errorf("size %d: got %d, want %d", tc.in, got, tc.want)
		}
	}
}
