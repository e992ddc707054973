// Package app is Petrel's composition root: it builds every part from the
// Config, runs the listeners and shuts down cleanly. It is the only package
// that knows all the others.
package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/petrelmail/petrel/internal/config"
)

// Run serves until ctx is cancelled (SIGTERM/SIGINT), then stops accepting,
// drains and returns nil.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	_ = cfg
	_ = log
	<-ctx.Done()
	return errors.New("app: not wired yet")
}
