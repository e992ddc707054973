//go:build !linux

package blob

import (
	"errors"
	"os"
)

// freeSpace is only implemented on Linux; elsewhere the reserve logs once
// that it cannot be enforced.
func freeSpace(string) (int64, error) {
	return 0, errors.New("blob: free space is only read on Linux")
}

// allocate writes size zero bytes to f.
func allocate(f *os.File, size int64) error {
	buf := make([]byte, 64<<10)
	for size > 0 {
		n := min(size, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		size -= n
	}
	return nil
}
