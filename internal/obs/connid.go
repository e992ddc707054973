package obs

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
)

// connIDAlphabet is Crockford's base32 in lower case: no i, l, o or u, so an
// id read off a screen is copied back without mistakes.
const connIDAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

const (
	connIDLen     = 12 // characters, 5 bits each
	connIDSeqBits = 36 // unique for 2^36 (~69 billion) ids per generator
	connIDSeqMask = 1<<connIDSeqBits - 1
)

// ConnIDs hands out short connection ids. Create one per process with
// NewConnIDs and share it; it is safe for concurrent use. Each id is 12
// characters: 24 random bits chosen per generator (so ids from different
// nodes or restarts rarely meet) followed by a 36-bit counter that starts at
// a random value, so ids are unique for the first 2^36 calls.
type ConnIDs struct {
	tag uint64 // random, connIDLen*5-connIDSeqBits bits
	seq atomic.Uint64
}

// NewConnIDs returns a generator seeded from crypto/rand.
func NewConnIDs() *ConnIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	r := binary.BigEndian.Uint64(b[:])
	g := &ConnIDs{tag: r >> (64 - (connIDLen*5 - connIDSeqBits))}
	g.seq.Store(r & connIDSeqMask)
	return g
}

// Next returns a new id such as "k3v9d0a1b2c3".
func (g *ConnIDs) Next() string {
	v := g.tag<<connIDSeqBits | (g.seq.Add(1) & connIDSeqMask)
	var b [connIDLen]byte
	for i := connIDLen - 1; i >= 0; i-- {
		b[i] = connIDAlphabet[v&31]
		v >>= 5
	}
	return string(b[:])
}
