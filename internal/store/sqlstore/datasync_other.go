//go:build !linux

package sqlstore

import "os"

// datasync is os.File.Sync where fdatasync is not available.
func datasync(f *os.File) error { return f.Sync() }
