package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/admin/web"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlscfg"
)

// buildWebUI builds the admin web UI from the configuration (ADMIN,
// WEB_ADMIN, SESSION_*, LOGO_*), or returns nil when ADMIN is off.
func buildWebUI(p *parts) (http.Handler, error) {
	cfg := p.cfg
	if !cfg.Admin {
		return nil, nil
	}
	tls := cfg.TLSFlavor != tlscfg.FlavorNoTLS
	dns := dnsOptions(cfg) // webapi.go: the same records as the API and petrel dns
	h, err := web.New(web.Options{
		Admin:    p.admin,
		Store:    p.store,
		Auth:     p.auth,
		Announce: announcer{p},
		Prefix:   cfg.WebAdmin,
		// Mailu: SESSION_COOKIE_SECURE, and never Secure without TLS at all.
		Secure:          cfg.SessionCookieSecure && tls,
		SessionTimeout:  cfg.SessionTimeout,
		SessionLifetime: cfg.SessionLifetime,
		SiteName:        cfg.SiteName,
		Website:         cfg.Website,
		LogoURL:         cfg.LogoURL,
		LogoBackground:  cfg.LogoBackground,
		Hostname:        cfg.Hostnames[0],
		TLS:             tls,
		Records: func(info admin.DKIMInfo) ([]msgauth.Record, error) {
			return msgauth.Records(msgauth.RecordsOptions{
				Domain: info.Domain, Hostnames: dns.Hostnames, ServerDomain: dns.ServerDomain,
				DMARCRUA: dns.DMARCRUA, DMARCRUF: dns.DMARCRUF,
				DKIMSelector: info.Selector, DKIMRecord: info.Record,
				Ports: dns.Ports, Served: dns.Served, TLS: dns.TLS,
			})
		},
		Log:     p.log.With("part", "web"),
		Fetches: p.fetchPages(),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.onClose(cancel)
	go pruneWebSessions(ctx, p, h)
	return h, nil
}

// pruneWebSessions removes ended sessions hourly until ctx ends (the
// parts close).
func pruneWebSessions(ctx context.Context, p *parts, h *web.Handler) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := h.Prune(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("web sessions not pruned", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// announcer delivers an announcement to every user through local
// delivery (Mailu: ui/views/base.py announcement sends one mail per user
// from POSTMASTER@DOMAIN). The body is written once and shared by every
// mailbox; each user's forwarding applies, auto-replies do not.
type announcer struct{ p *parts }

// announceBatch is how many users share one delivery transaction.
const announceBatch = 500

func (a announcer) Announce(ctx context.Context, subject, body string) (int, error) {
	p := a.p
	users, err := p.store.ListUsers(ctx, "")
	if err != nil {
		return 0, err
	}
	from := p.cfg.Postmaster + "@" + p.cfg.Domain
	now := time.Now()
	raw := announcement(p.cfg.SiteName, from, subject, body, p.connIDs.Next()+"@"+p.cfg.Hostnames[0], now)
	return p.localMail().deliver(ctx, from, raw, users, now, true)
}

// localMail is the local delivery of messages Petrel writes itself (the
// announcement, the welcome message): the router resolves each user, the
// deliverer writes one body shared by every mailbox.
type localMail struct {
	router    *inbound.Router
	deliverer *inbound.Deliverer
	queue     *queue.Worker // nil: forwarding is never kept
	newID     func() string
	log       *slog.Logger
}

func (p *parts) localMail() localMail {
	return localMail{router: p.router, deliverer: p.deliverer, queue: p.queue, newID: p.connIDs.Next, log: p.log}
}

// deliver delivers raw from from to every enabled user in users. forward
// keeps each user's forwarding (the announcement); without it the message
// goes to the mailbox only (the welcome message is for the INBOX).
// Auto-replies never answer it.
func (m localMail) deliver(ctx context.Context, from string, raw []byte, users []store.User, now time.Time, forward bool) (int, error) {
	sent := 0
	for start := 0; start < len(users); start += announceBatch {
		var routes []inbound.Route
		for _, u := range users[start:min(start+announceBatch, len(users))] {
			if !u.Enabled {
				continue
			}
			rt, err := m.router.Resolve(ctx, u.Email)
			if err != nil {
				m.log.Warn("message not delivered to a user", "user", u.Email, "err", err)
				continue
			}
			rt.AutoReply = nil
			if !forward || m.queue == nil {
				rt.Remote = nil
				rt.Mailboxes = []string{u.Email}
			}
			routes = append(routes, rt)
		}
		if len(routes) == 0 {
			continue
		}
		sp, err := m.deliverer.NewSpool()
		if err != nil {
			return sent, err
		}
		if _, err := sp.Write(raw); err != nil {
			sp.Abort()
			return sent, err
		}
		env := &inbound.Envelope{ID: m.newID(), Sender: from, Routes: routes, ReceivedAt: now}
		if err := (delivererAdapter{m.deliverer, m.queue}).Deliver(ctx, env, sp); err != nil {
			sp.Abort()
			return sent, fmt.Errorf("local delivery: %w", err)
		}
		sent += len(routes)
	}
	return sent, nil
}

// announcement builds the message: UTF-8 text, quoted-printable, an
// encoded subject (RFC 2047), undisclosed recipients.
func announcement(site, from, subject, body, msgID string, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <%s>\r\n", mime.QEncoding.Encode("utf-8", site), from)
	b.WriteString("To: undisclosed-recipients:;\r\n")
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s>\r\n", msgID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Write(bytes.ReplaceAll([]byte(body), []byte("\n"), []byte("\r\n")))
	w.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}
