package blob

import (
	"fmt"
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
