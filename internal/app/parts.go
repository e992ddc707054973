package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/fetch"
	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/fts"
	"github.com/petrelmail/petrel/internal/imapd"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/metrics"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/smtpd"
	"github.com/petrelmail/petrel/internal/srs"
	"github.com/petrelmail/petrel/internal/stats"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
	"github.com/petrelmail/petrel/internal/store/configcache"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/tlscfg"
	"github.com/petrelmail/petrel/internal/tlscfg/acme"
	"github.com/petrelmail/petrel/internal/tlspolicy"
	"github.com/petrelmail/petrel/internal/tlsrptin"
)

// parts are the long-lived pieces every listener shares.
type parts struct {
	cfg         *config.Config
	log         *slog.Logger
	secret      []byte
	store       *sqlstore.Store
	admin       *admin.Service
	certs       *tlscfg.Manager
	acme        *acme.Manager // TLS_FLAVOR letsencrypt and mail-letsencrypt; nil otherwise
	signers     *msgauth.Signers
	srs         *srs.Rewriter
	auth        *auth.Authenticator
	router      *inbound.Router
	deliverer   *inbound.Deliverer
	connIDs     *obs.ConnIDs
	resolver    *dnsres.Net
	queue       *queue.Worker
	tlsPolicy   *tlspolicy.Checker // DANE, MTA-STS and TLS-RPT counts for the relay
	reserve     *blob.Reserve      // DISK_RESERVE on DATA_DIR's filesystem
	checker     smtpd.Checker      // port 25's scanners (checks.go); nil: none
	learner     *filter.Learner    // spam learning from IMAP Junk moves (checks.go); nil: none
	stats       *stats.Recorder    // the status page's hourly counters
	metrics     *metrics.Metrics   // METRICS; nil: off
	fetcher     *fetch.Poller      // FETCHMAIL_ENABLED; nil: off
	fetchSealer *fetch.Sealer      // seals fetched accounts' passwords (always built: the web pages need it)
	tlsrpt      *tlsrptin.Receiver // parses TLS-RPT reports mailed to TLSRPT_RUA; nil: none
	lookups     *configcache.Cache // domain look-ups of the inbound path, users of logins (configcache.go)
	// activity counts the work done for users (messages delivered, IMAP
	// commands): while it moves, the full-text indexer yields to them.
	activity atomic.Uint64
	closers  []func() // run in reverse order by close
}

// build opens the store, bootstraps the first admin and builds the shared
// parts. On error everything already opened is closed again.
func build(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *parts, err error) {
	p := &parts{cfg: cfg, log: log, connIDs: obs.NewConnIDs()}
	if cfg.Metrics {
		// Every part logs through the observer, which counts the
		// message and login events (internal/metrics).
		p.metrics = metrics.New()
		log = slog.New(p.metrics.Observe(log.Handler()))
		p.log = log
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	if p.secret, err = secret.Load(cfg, log); err != nil {
		return nil, err
	}

	// Postfix queue_minfree: the free space on DATA_DIR (the SQLite
	// database and the message files) below which new mail is refused.
	// The ballast (a quarter of the reserve, at most 16 MiB) is given up
	// if the disk fills all the same, so EXPUNGE can still be written;
	// made before the store opens, so that a start on a full disk finds
	// room to open the database.
	p.reserve = blob.NewReserve(blob.ReserveOptions{
		Dir: cfg.DataDir, Min: cfg.DiskReserve, Ballast: min(cfg.DiskReserve/4, 16<<20),
		Logger: log.With("part", "disk"),
	})
	log.Info("disk reserve", "part", "disk", "reserve", p.reserve.String())

	if p.store, err = sqlstore.OpenConfig(ctx, cfg, log.With("part", "store")); err != nil {
		return nil, err
	}
	// Deliveries and APPENDs store the header fields IMAP SEARCH looks up
	// (docs/search.md); older messages get them at their first search.
	p.store.SetHeaderIndexer(imapd.HeaderIndexer())
	p.onClose(func() {
		if err := p.store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	})

	// Fetched accounts' passwords: the web pages, config-import and the
	// poller seal and open them with this key.
	if p.fetchSealer, err = fetch.NewSealerFor(p.secret); err != nil {
		return nil, err
	}
	dkimKeys, err := newDKIMKeys(cfg, p.store, p.secret, log.With("part", "dkim"))
	if err != nil {
		return nil, fmt.Errorf("DKIM keys: %w", err)
	}
	importDKIMFiles(ctx, dkimKeys, p.store, log.With("part", "dkim"))
	svc := admin.New(p.store, admin.Options{
		DefaultQuota:         cfg.DefaultQuota,
		DefaultSpamThreshold: cfg.DefaultSpamThreshold,
		CredentialRounds:     cfg.CredentialRounds,
		DKIMKeys:             dkimKeys,
		DKIMSelector:         cfg.DKIMSelector,
		Logger:               log.With("part", "admin"),
		Welcome:              p.welcome, // WELCOME; the deliverer exists before any user is created
		FetchSealer:          p.fetchSealer,
	})
	p.admin = svc

	topts := tlscfg.Options{
		Flavor:    cfg.TLSFlavor,
		CertsDir:  filepath.Join(cfg.DataDir, "certs"),
		CertFile:  cfg.TLSCertFilename,
		KeyFile:   cfg.TLSKeyFilename,
		Hostnames: cfg.Hostnames,
		Logger:    log.With("part", "tls"),
	}
	if p.acme, err = newACME(cfg, p.store, log.With("part", "acme")); err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	if p.acme != nil {
		topts.Managed = p.acme // a nil *acme.Manager must not become a non-nil interface
		p.onClose(p.acme.Stop)
	}
	if p.certs, err = tlscfg.New(topts); err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}

	p.stats = stats.New(p.store, log.With("part", "stats"), nil)
	// Several nodes share one PostgreSQL: the failed-login limits live
	// there too, so N nodes do not give an attacker N times the limit.
	// SQLite is one node; its limits stay in memory.
	var limits auth.LoginLimiter
	if p.store.Flavor() == sqlstore.FlavorPostgreSQL {
		limits = auth.NewStoreLimits(p.store, auth.LimitRates{
			Network:        ratelimit.Rate(cfg.AuthRateLimitIP),
			Account:        ratelimit.Rate(cfg.AuthRateLimitUser),
			AccountNetwork: ratelimit.Rate(cfg.AuthRateLimitUserNetwork),
		})
	}
	p.lookups = p.newConfigCache()
	p.auth = auth.New(auth.Options{
		Limits:          limits,
		OnFailure:       func() { p.stats.Count(stats.AuthFailed) },
		Users:           cachedUsers{p.store, p.lookups},
		IPLimit:         ratelimit.Rate(cfg.AuthRateLimitIP),
		UserLimit:       ratelimit.Rate(cfg.AuthRateLimitUser),
		UserNetLimit:    ratelimit.Rate(cfg.AuthRateLimitUserNetwork),
		IPv4Mask:        cfg.AuthRateLimitIPv4Mask,
		IPv6Mask:        cfg.AuthRateLimitIPv6Mask,
		Exemptions:      cfg.AuthRateLimitExemption,
		ExemptionLength: cfg.AuthRateLimitExemptionLen,
		RequireTokens:   cfg.AuthRequireTokens,
		Rounds:          cfg.CredentialRounds,
		Logger:          log.With("part", "auth"),
		FingerprintKey:  secret.Derive(p.secret, "auth-fingerprint"),
	})

	if p.metrics != nil {
		p.metrics.WatchQueue(p.store, nil)
		p.metrics.WatchCertificate(func() (time.Time, bool) {
			info, ok := p.certs.Leaf()
			return info.NotAfter, ok
		})
	}
	p.signers = msgauth.NewSigners(dkimKeys, msgauth.NewStoreLookup(p.lookups))
	// SRS derives its own key from the master secret, as Mailu does, so
	// addresses Mailu issued still reverse.
	p.srs = srs.New(p.secret, cfg.Domain, time.Now)

	p.router = inbound.NewRouter(inbound.RouterOptions{
		Accounts:   cachedAccounts{p.store, p.lookups},
		Delimiters: cfg.RecipientDelimiter,
		SRS:        p.srs,
		Logger:     log.With("part", "inbound"),
	})
	p.tlsrpt = newTLSRPTReceiver(cfg, p)
	p.deliverer = inbound.NewDeliverer(p.delivererOptions(p.sieveOptions()))
	// A script changed on any node applies to the next delivery here.
	p.onClose(p.store.OnConfigChange(func(topic, key string) {
		if topic == sqlstore.TopicSieve || topic == "" {
			p.deliverer.ForgetSieve(key)
		}
	}))
	p.resolver = dnsres.New(cfg.ResolverAddress)
	if p.queue, err = p.newQueue(p.resolver); err != nil {
		return nil, fmt.Errorf("outbound queue: %w", err)
	}
	if p.checker, err = newInboundChecker(ctx, cfg, p); err != nil {
		return nil, fmt.Errorf("inbound checks: %w", err)
	}
	if p.fetcher, err = p.newFetcher(); err != nil {
		return nil, fmt.Errorf("fetched accounts: %w", err)
	}

	// The deliverer outlives the request contexts: Close drains it after
	// the listeners have stopped.
	p.deliverer.Start(context.WithoutCancel(ctx))
	p.onClose(func() {
		if err := p.deliverer.Close(); err != nil {
			log.Error("closing the deliverer", "err", err)
		}
	})
	// After the deliverer: the first admin gets the welcome message too.
	if _, err := svc.EnsureInitialAdmin(ctx, cfg.InitialAdminAccount, cfg.InitialAdminDomain, cfg.InitialAdminPw, cfg.InitialAdminMode); err != nil {
		if !errors.Is(err, admin.ErrDKIMKey) {
			return nil, fmt.Errorf("INITIAL_ADMIN_ACCOUNT: %w", err)
		}
		log.Warn("the first admin's domain has no DKIM key; outbound mail from it goes unsigned", "err", err)
	}
	return p, nil
}

// startBackground starts the background workers; they stop when ctx ends
// and wg is done when they have.
func (p *parts) startBackground(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go runQueue(ctx, p.queue, wg, p.log)
	if p.fetcher != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fetcher.Run(ctx) // FETCHMAIL_ENABLED, every FETCHMAIL_DELAY
		}()
	}
	go func() {
		defer wg.Done()
		p.reserve.Watch(ctx) // DISK_RESERVE: log a crossing even without mail
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.stats.Run(ctx, 15*time.Second)
	}()
	if p.cfg.FullTextSearch {
		// FULL_TEXT_SEARCH: this node indexes what no node has indexed yet,
		// off the delivery path (docs/search.md).
		ix := fts.NewIndexer(fts.IndexerOptions{
			Store: p.store, Extract: imapd.FullTextExtractor(p.cfg.FullTextAttachments), Attachments: p.cfg.FullTextAttachments,
			Logger: p.log.With("part", "fts"), Activity: p.activity.Load,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			ix.Run(ctx)
		}()
	}
	wg.Add(1)
	go runMaintenance(ctx, p.store, wg, p.log)
	wg.Add(1)
	go p.runTLSReports(ctx, wg)
	if p.tlsrpt != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.tlsrpt.Run(ctx) // TLS-RPT reports mailed to us, parsed off the delivery path
		}()
	}
}

// maintenanceInterval spaces the store's clean-up runs (blob garbage,
// expunge records, delivery keys); the first runs a minute after start.
const maintenanceInterval = time.Hour

func runMaintenance(ctx context.Context, st *sqlstore.Store, wg *sync.WaitGroup, log *slog.Logger) {
	defer wg.Done()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := st.Maintain(ctx); err != nil && ctx.Err() == nil {
			log.Warn("store maintenance", "err", err)
		}
		t.Reset(maintenanceInterval)
	}
}

// welcome is admin.Options.Welcome under serve (WELCOME).
func (p *parts) welcome(ctx context.Context, u *store.User) {
	if p.cfg.Welcome {
		welcomeSender{cfg: p.cfg, mail: p.localMail()}.send(ctx, u)
	}
}

func (p *parts) onClose(f func()) { p.closers = append(p.closers, f) }

func (p *parts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// delivererAdapter lets smtpd's Deliverer interface hand back the concrete
// spool inbound.Deliverer made, and wakes the queue for remote recipients.
type delivererAdapter struct {
	d *inbound.Deliverer
	q *queue.Worker
}

func (a delivererAdapter) NewSpool() (smtpd.Spool, error) {
	sp, err := a.d.NewSpool()
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return sp, nil
}

func (a delivererAdapter) Deliver(ctx context.Context, env *inbound.Envelope, sp smtpd.Spool) error {
	s, ok := sp.(*inbound.Spool)
	if !ok {
		return errors.New("app: spool not made by the deliverer")
	}
	if err := a.d.Deliver(ctx, env, s); err != nil {
		return err
	}
	for _, r := range env.Routes {
		if len(r.Remote) > 0 {
			a.q.Kick() // send now rather than at the next poll
			break
		}
	}
	return nil
}

// delivererOptions are local delivery's settings; sv turns on Sieve.
func (p *parts) delivererOptions(sv *inbound.SieveOptions) inbound.DelivererOptions {
	cfg := p.cfg
	return inbound.DelivererOptions{
		OnDelivered: func(n int) {
			p.stats.Add(stats.Delivered, n)
			p.activity.Add(uint64(n))
		},
		Store:            p.timedCommits(),
		Blobs:            p.store.Blobs(),
		BodiesInDatabase: p.store.BodiesInDatabase(),
		Logger:           p.log.With("part", "delivery"),
		QuotaBounce:      p.quotaBounce,
		SuccessNotice:    p.successNotice,
		AutoReply: &inbound.AutoReplyOptions{
			Users:    p.store,
			Sent:     p.store,
			Router:   p.router,
			Signer:   p.signers,
			Hostname: cfg.Hostnames[0],
			NewID:    p.connIDs.Next,
			// p.queue is built after the deliverer; replies only start once serving.
			Queued: func() { p.queue.Kick() },
		},
		Sieve:   sv,
		Reports: p.reportTap(),
	}
}

// timedCommits is the store the deliverer commits to, timed for the
// metrics when they are on.
func (p *parts) timedCommits() inbound.MessageStore {
	if p.metrics == nil {
		return p.store
	}
	return timedStore{p.store, p.metrics}
}

type timedStore struct {
	inbound.MessageStore
	m *metrics.Metrics
}

func (t timedStore) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	start := time.Now()
	err := t.MessageStore.CommitMessages(ctx, msgs)
	t.m.StoreTime("commit_messages", time.Since(start))
	return err
}
