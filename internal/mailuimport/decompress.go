package mailuimport

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

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
// concurrently; gzip and bzip2 readers are made per message).
type decoder struct {
	zstd *zstd.Decoder
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
		out, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(data)))
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
