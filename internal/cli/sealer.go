package cli

import (
	"log/slog"
	"sync"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/secret"
)

// lazySealer seals fetched accounts' passwords with the key serve opens
// them with (SECRET_KEY, or DATA_DIR/secret.key). It loads the key at
// first use, so that only a config-import that carries fetches reads it
// (or creates the key file, as serve would).
type lazySealer struct {
	cfg  *config.Config
	log  *slog.Logger
	once sync.Once
	s    *fetch.Sealer
	err  error
}

func (l *lazySealer) get() (*fetch.Sealer, error) {
	l.once.Do(func() {
		master, err := secret.Load(l.cfg, l.log)
		if err != nil {
			l.err = err
			return
		}
		l.s, l.err = fetch.NewSealerFor(master)
	})
	return l.s, l.err
}

func (l *lazySealer) Seal(password string) (string, error) {
	s, err := l.get()
	if err != nil {
		return "", err
	}
	return s.Seal(password)
}

func (l *lazySealer) Open(sealed string) (string, error) {
	s, err := l.get()
	if err != nil {
		return "", err
	}
	return s.Open(sealed)
}
