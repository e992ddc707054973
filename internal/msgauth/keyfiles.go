package msgauth

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/net/idna"
)

// keyFiles are DKIM keys as Mailu keeps them: one PEM file per domain at
// a DKIM_PATH template. Parsed keys are cached and re-read when the file
// is replaced.
type keyFiles struct {
	template string // path with {domain} and {selector}
	selector string

	mu    sync.Mutex
	cache map[string]cachedFile // by file path
}

type cachedFile struct {
	fi     fs.FileInfo
	signer crypto.Signer
}

func (k *keyFiles) path(asciiDomain string) string {
	return strings.NewReplacer("{domain}", asciiDomain, "{selector}", k.selector).Replace(k.template)
}

// candidates lists the files a domain's key may be in: Petrel writes the
// A-label name; Mailu names the file after the decoded domain
// (models.py::IdnaDomain returns U-labels), so a copied Mailu key for an
// internationalised domain has the Unicode name.
func (k *keyFiles) candidates(d string) []string {
	paths := []string{k.path(d)}
	if u, err := idna.ToUnicode(d); err == nil && u != d {
		paths = append(paths, k.path(u))
	}
	return paths
}

func (k *keyFiles) exists(d string) bool {
	for _, p := range k.candidates(d) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

func (k *keyFiles) remove(d string) error {
	for _, p := range k.candidates(d) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove dkim key: %w", err)
		}
	}
	return nil
}

// write stores data at d's path: temp file, fsync, rename, fsync dir,
// so a crash leaves the old key or the new one, never half a key.
func (k *keyFiles) write(d string, data []byte) error {
	p := k.path(d)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readPEM returns the content of d's key file; ErrNoKey when none.
func (k *keyFiles) readPEM(d string) ([]byte, error) {
	for _, p := range k.candidates(d) {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read dkim key: %w", err)
		}
		data, err := readKeyFile(f, p)
		f.Close()
		return data, err
	}
	return nil, fmt.Errorf("%w for %s", ErrNoKey, d)
}

func readKeyFile(f *os.File, p string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read dkim key: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s: file too large", ErrBadKey, p)
	}
	return data, nil
}

// load returns d's parsed key from its file, cached until the file changes.
func (k *keyFiles) load(d string) (crypto.Signer, error) {
	for _, p := range k.candidates(d) {
		s, err := k.loadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return s, err
	}
	return nil, fmt.Errorf("%w for %s", ErrNoKey, d)
}

func (k *keyFiles) loadFile(p string) (crypto.Signer, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Stat the open file, not the path: what we compare is what we read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load dkim key: %w", err)
	}
	k.mu.Lock()
	c, ok := k.cache[p]
	k.mu.Unlock()
	if ok && sameFile(c.fi, fi) {
		return c.signer, nil
	}
	data, err := readKeyFile(f, p)
	if err != nil {
		return nil, err
	}
	s, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	k.mu.Lock()
	k.cache[p] = cachedFile{fi: fi, signer: s}
	k.mu.Unlock()
	return s, nil
}

// sameFile: same inode, size and modification time. A rename-replaced key
// has a new inode; an in-place rewrite changes the time or size.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
