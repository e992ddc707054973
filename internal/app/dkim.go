package app

import (
	"context"
	"log/slog"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store"
)

// newDKIMKeys returns the DKIM keys kept in the store, sealed under
// SECRET_KEY, with DKIM_PATH as the import format and, when DKIM_PATH is
// set explicitly, the export format too (docs/dkim.md).
func newDKIMKeys(cfg *config.Config, st store.DKIMKeys, master []byte, log *slog.Logger) (*msgauth.Keys, error) {
	sealer, err := secret.NewSealer(master, msgauth.SealPurpose)
	if err != nil {
		return nil, err
	}
	return msgauth.NewStoreKeys(msgauth.KeysOptions{
		Store: st, Sealer: sealer, Path: cfg.DKIMPath, ExportFiles: cfg.DKIMPathSet,
		Selector: cfg.DKIMSelector, Logger: log,
	})
}

// importDKIMFiles imports at start the DKIM_PATH key files of local
// domains that the store lacks (a key copied in by hand or by
// import-mailu), so that every node signs with them.
func importDKIMFiles(ctx context.Context, keys *msgauth.Keys, st store.Accounts, log *slog.Logger) {
	ds, err := st.ListDomains(ctx)
	if err != nil {
		log.Error("DKIM key import: listing domains", "err", err)
		return
	}
	names := make([]string, len(ds))
	for i := range ds {
		names[i] = ds[i].Name
	}
	n, err := keys.ImportFiles(ctx, names)
	if n > 0 {
		log.Info("DKIM keys imported from DKIM_PATH into the store", "keys", n)
	}
	if err != nil {
		log.Error("DKIM key import", "err", err)
	}
}
