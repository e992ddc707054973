package sqlstore

import (
	"os"
	"syscall"
)

// datasync flushes f's data and the metadata needed to read it back, as
// SQLite's own sync does on Linux (fdatasync): unlike fsync it does not
// wait for a journal commit of the mtime that every WAL write changes.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
