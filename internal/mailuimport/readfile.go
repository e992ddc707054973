package mailuimport

import (
	"errors"
	"io/fs"
	"syscall"
)

// readFile reads a whole message file with plain system calls: open,
// read into a buffer of the size the listing saw, close. os.ReadFile
// costs more per file (an fstat, a poller registration attempt, a
// finalizer), and an import reads every message file once; a profile of
// the import had open and its bookkeeping at a third of the CPU time.
func readFile(path string, size int64) ([]byte, error) {
	fd, err := openRetry(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	// One byte more than listed, so a file that grew is seen at once.
	buf := make([]byte, 0, max(size, 0)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func openRetry(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if !errors.Is(err, syscall.EINTR) {
			return fd, err
		}
	}
}
