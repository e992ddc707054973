package mailuimport

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
)

// Mailu's COMPRESSION (gz, bz2, zstd; Dovecot's zlib plugin) compresses
// Maildir files in place under their usual names; Dovecot tells them by
// their first bytes, and so does the import.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicLz4   = []byte("Dovecot-LZ4\x0d\x2a\x9b\xc5")
	bzipBlock  = []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59} // first block: BCD(pi)
	bzipEmpty  = []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90} // end of stream: BCD(sqrt(pi))
	errUnknown = errors.New("compressed with a method Petrel cannot read")
)

// decoder is reused across messages (a zstd decoder is costly to make)
// and shared by the reading goroutines (zstd's DecodeAll may run
// concurrently; gzip readers are made per message, bzip2 readers come
// from a pool).
//
// bzip2 is dsnet/compress's and not the standard library's: Go's
// compress/bzip2 has no Reset, and each new reader allocates and clears
// a table for the largest block (3.6 MB at -9), which was 80 % of the
// CPU time of a bzip2 Maildir; a pooled dsnet reader keeps its buffers,
// sized to the blocks it has seen, across messages.
type decoder struct {
	zstd *zstd.Decoder
	bz2  sync.Pool // of *bzip2.Reader
}

func newDecoder() (*decoder, error) {
	z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	return &decoder{zstd: z}, nil
}

func (d *decoder) Close() { d.zstd.Close() }

// isBzip2 checks "BZh" + block size digit + a block or end marker, so that
// a message starting with a header named "BZh9..." is not taken for one.
func isBzip2(b []byte) bool {
	return len(b) >= 10 && b[0] == 'B' && b[1] == 'Z' && b[2] == 'h' && b[3] >= '1' && b[3] <= '9' &&
		(bytes.Equal(b[4:10], bzipBlock) || bytes.Equal(b[4:10], bzipEmpty))
}

// decode returns the message in data, decompressed when it is, and the
// method found ("" when plain).
func (d *decoder) decode(data []byte) ([]byte, string, error) {
	switch {
	case bytes.HasPrefix(data, magicGzip):
		r, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, "gz", fmt.Errorf("gzip: %w", err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			return nil, "gz", fmt.Errorf("gzip: %w", err)
		}
		return out, "gz", nil
	case isBzip2(data):
		out, err := d.bunzip(data)
		if err != nil {
			return nil, "bz2", fmt.Errorf("bzip2: %w", err)
		}
		return out, "bz2", nil
	case bytes.HasPrefix(data, magicZstd):
		out, err := d.zstd.DecodeAll(data, nil)
		if err != nil {
			return nil, "zstd", fmt.Errorf("zstd: %w", err)
		}
		return out, "zstd", nil
	case bytes.HasPrefix(data, magicXz):
		return nil, "xz", fmt.Errorf("xz: %w", errUnknown)
	case bytes.HasPrefix(data, magicLz4):
		return nil, "lz4", fmt.Errorf("lz4: %w", errUnknown)
	}
	return data, "", nil
}

// bunzip decompresses one bzip2 file (one or more streams) with a
// pooled reader.
func (d *decoder) bunzip(data []byte) ([]byte, error) {
	src := bytes.NewReader(data)
	zr, _ := d.bz2.Get().(*bzip2.Reader)
	if zr == nil {
		var err error
		if zr, err = bzip2.NewReader(src, nil); err != nil {
			return nil, err
		}
	} else if err := zr.Reset(src); err != nil {
		return nil, err
	}
	// Mail text compresses about 3 to 1: start there, so most messages
	// need no second allocation.
	buf := bytes.NewBuffer(make([]byte, 0, 4*len(data)+512))
	_, err := buf.ReadFrom(zr)
	d.bz2.Put(zr)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
