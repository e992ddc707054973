package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// welcomeSender sends WELCOME_SUBJECT / WELCOME_BODY to a user just
// created, through the same local delivery as the announcement (Mailu:
// models.py User.send_welcome, from POSTMASTER@DOMAIN, on creation).
type welcomeSender struct {
	cfg  *config.Config
	mail localMail
}

// send is admin.Options.Welcome: called once, right after the user row
// committed; a failure is logged and the user stays created.
func (w welcomeSender) send(ctx context.Context, u *store.User) {
	from := w.cfg.Postmaster + "@" + w.cfg.Domain
	now := time.Now()
	raw := announcement(w.cfg.SiteName, from, w.cfg.WelcomeSubject, w.cfg.WelcomeBody, w.mail.newID()+"@"+w.cfg.Hostnames[0], now)
	n, err := w.mail.deliver(context.WithoutCancel(ctx), from, raw, []store.User{*u}, now, false)
	switch {
	case err != nil:
		w.mail.log.Error("welcome message not delivered", "user", u.Email, "err", err)
	case n == 1:
		w.mail.log.Info("welcome message delivered", "user", u.Email)
	}
}

// WelcomeHook builds, for a CLI process, the admin.Options.Welcome that
// delivers the welcome message into st with the serve's local delivery
// (router and deliverer), and a close function to call when the command
// is done. It returns nil hooks when WELCOME is off.
func WelcomeHook(ctx context.Context, cfg *config.Config, st *sqlstore.Store, log *slog.Logger) (func(context.Context, *store.User), func() error) {
	if !cfg.Welcome {
		return nil, func() error { return nil }
	}
	router := inbound.NewRouter(inbound.RouterOptions{
		Accounts:   st,
		Delimiters: cfg.RecipientDelimiter,
		Logger:     log.With("part", "inbound"),
	})
	d := inbound.NewDeliverer(inbound.DelivererOptions{
		Store:            st,
		Blobs:            st.Blobs(),
		BodiesInDatabase: st.BodiesInDatabase(),
		Logger:           log.With("part", "delivery"),
	})
	d.Start(context.WithoutCancel(ctx))
	w := welcomeSender{cfg: cfg, mail: localMail{router: router, deliverer: d, newID: obs.NewConnIDs().Next, log: log}}
	return w.send, d.Close
}
