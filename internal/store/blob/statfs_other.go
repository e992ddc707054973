//go:build !linux

package blob

import "errors"

// freeSpace is only implemented on Linux; elsewhere the reserve logs once
// that it cannot be enforced.
func freeSpace(string) (int64, error) {
	return 0, errors.New("blob: free space is only read on Linux")
}
