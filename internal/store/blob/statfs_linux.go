package blob

import (
	"fmt"
	"os"
	"syscall"
)

// freeSpace is the space an unprivileged writer may still use on dir's
// filesystem (f_bavail: root's reserved blocks do not count).
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("blob: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// allocate reserves size bytes of real blocks for f (fallocate(2)), so a
// ballast file gives back real space when it is removed.
func allocate(f *os.File, size int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, size)
}
