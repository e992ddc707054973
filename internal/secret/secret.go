// Package secret holds Petrel's master secret (SECRET_KEY) and derives
// the purpose-specific keys from it, so that serve and the CLI commands
// that write sealed data (import-mailu) agree on every key.
package secret

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
)

// Load returns SECRET_KEY (or SECRET_KEY_FILE's content). Without one,
// Petrel keeps a random key in DATA_DIR/secret.key so that restarts and
// every CLI call agree on it; Mailu instead falls back to "changeMe".
func Load(cfg *config.Config, log *slog.Logger) ([]byte, error) {
	if cfg.SecretKey != "" {
		return []byte(cfg.SecretKey), nil
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	key := hex.EncodeToString(raw)
	if err := WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	log.Warn("SECRET_KEY is not set: generated one and stored it in DATA_DIR", "file", path)
	return []byte(key), nil
}

// Derive derives a purpose-specific key from the master secret, as
// Mailu derives its sub-keys from SECRET_KEY with HMAC.
func Derive(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// WriteFile writes a file that holds secrets durably: temp file, fsync,
// rename, fsync dir, so that a crash never leaves half a key.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
