// Package tlspolicy decides how Petrel's outbound SMTP client secures a
// connection to an MX host: DANE (RFC 7672) when the host's TLSA records
// are DNSSEC-authenticated, else the recipient domain's MTA-STS policy
// (RFC 8461), else the OUTBOUND_TLS_LEVEL fallback. DANE takes precedence
// over MTA-STS (RFC 8461 2). It caches MTA-STS policies in the store for
// every node, counts TLS results for TLS-RPT (RFC 8460) and sends the
// daily aggregate reports (report.go).
//
// Mailu's defaults decide the behaviour: OUTBOUND_TLS_LEVEL=dane
// (Postfix: DANE where published, else opportunistic STARTTLS) and
// DEFER_ON_TLS_ERROR=true, which in Mailu means
// smtp_tls_dane_insecure_mx_policy=dane (TLSA records count even when
// the MX answer is not DNSSEC-signed) and postfix-mta-sts-resolver's
// strict_testing (a policy in testing mode is enforced as well). With
// DEFER_ON_TLS_ERROR=false, DANE needs a signed MX answer and testing
// mode delivers and only reports, as RFC 8461 5 describes.
package tlspolicy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/store"
)

// Resolver is the DNS the checker needs.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	dnsres.SecureResolver
}

// Store is the part of the store the checker uses.
type Store interface {
	GetMTASTSPolicy(ctx context.Context, domain string) (*store.MTASTSPolicy, error)
	PutMTASTSPolicy(ctx context.Context, p store.MTASTSPolicy) error
	AddTLSResults(ctx context.Context, rs []store.TLSResult) error
}

// Level is OUTBOUND_TLS_LEVEL: what applies to an MX host with neither
// DANE nor MTA-STS.
type Level string

const (
	LevelMay     Level = "may"     // STARTTLS when offered, unverified; else plaintext
	LevelEncrypt Level = "encrypt" // STARTTLS required, unverified
	LevelDANE    Level = "dane"    // Mailu's default: as may, DANE where published
)

// ParseLevel checks an OUTBOUND_TLS_LEVEL value ("" = dane).
func ParseLevel(s string) (Level, error) {
	switch l := Level(strings.ToLower(s)); l {
	case "":
		return LevelDANE, nil
	case LevelMay, LevelEncrypt, LevelDANE:
		return l, nil
	}
	return "", fmt.Errorf("unknown TLS level %q (may, encrypt or dane)", s)
}

// Options configure a Checker. Resolver is required.
type Options struct {
	Resolver Resolver
	// Store caches policies and counts results; nil keeps policies in
	// memory only and counts nothing.
	Store Store
	Level Level // "" = dane
	// DeferOnTLSError is Mailu's DEFER_ON_TLS_ERROR (default true): see
	// the package comment.
	DeferOnTLSError bool
	// RootCAs verify MTA-STS policy hosts and MTA-STS MX hosts; nil = the
	// system pool.
	RootCAs *x509.CertPool
	// Dial, when set, makes the HTTPS connections of policy fetches (tests
	// point mta-sts.<domain>:443 at a local server).
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
	Now    func() time.Time
}

// Checker answers how to secure a connection. It is safe for concurrent
// use.
type Checker struct {
	o     Options
	log   *slog.Logger
	fetch *fetcher

	mu       sync.Mutex
	inflight map[string]*call               // MTA-STS look-ups in progress, by domain
	mem      map[string]*store.MTASTSPolicy // without a Store
	counts   map[resultKey]*store.TLSResult // TLS-RPT results not yet in the store
	failed   map[string]failedFetch         // recent failed fetches, by domain
}

// failedFetch remembers a failed policy fetch for FetchRetry, so that a
// policy server that is down costs one timeout per domain and period
// rather than one per delivery.
type failedFetch struct {
	id    string
	until time.Time
	err   error
}

// FetchRetry is how long a failed policy fetch is not repeated for the
// same record id.
const FetchRetry = 5 * time.Minute

// maxFailed bounds the remembered failures (a sweep drops expired ones,
// then arbitrary ones).
const maxFailed = 10000

type call struct {
	done chan struct{}
	p    *Policy
	id   string
	err  error
}

// New returns a Checker for o.
func New(o Options) *Checker {
	if o.Level == "" {
		o.Level = LevelDANE
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Checker{o: o, log: o.Logger, fetch: newFetcher(o.RootCAs, o.Dial),
		inflight: map[string]*call{}, mem: map[string]*store.MTASTSPolicy{}, counts: map[resultKey]*store.TLSResult{}, failed: map[string]failedFetch{}}
}

// Domain is what applies to every MX host of one recipient domain.
type Domain struct {
	Name     string
	STS      *Policy // nil: no MTA-STS policy (or mode none)
	STSID    string
	MXSecure bool // the MX answer was DNSSEC-authenticated
	// stsFailure is why a published policy could not be used (TLS-RPT
	// sts-policy-fetch-error and friends); "" when none.
	stsFailure, stsDetail string
}

// ForDomain looks up domain's MTA-STS policy (cached) and whether its MX
// answer is authenticated. It does not fail: what cannot be learnt counts
// as absent, and is logged.
func (c *Checker) ForDomain(ctx context.Context, domain string) *Domain {
	d := &Domain{Name: strings.ToLower(strings.TrimSuffix(domain, "."))}
	if sec, err := c.o.Resolver.MXSecure(ctx, d.Name); err == nil {
		d.MXSecure = sec
	}
	p, id, err := c.sts(ctx, d.Name)
	if err != nil {
		var fe *fetchError
		if errors.As(err, &fe) {
			d.stsFailure, d.stsDetail = fe.resultType, fe.Error()
		}
		c.log.Warn("tlspolicy: MTA-STS policy not usable; delivering without it", "domain", d.Name, "err", err)
		if d.stsFailure != "" {
			c.report(d, nil, "", "", d.stsFailure, d.stsDetail) // RFC 8460 4.3.2.3
		}
	}
	if p != nil && p.Mode != ModeNone {
		d.STS, d.STSID = p, id
	}
	return d
}

// sts returns domain's policy: from the cache while it is valid and the
// TXT record names the same id, else fetched anew (RFC 8461 5.1). A
// failed fetch falls back to a still valid cached policy.
func (c *Checker) sts(ctx context.Context, domain string) (*Policy, string, error) {
	c.mu.Lock()
	if cl, ok := c.inflight[domain]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.p, cl.id, cl.err
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[domain] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.inflight, domain)
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.p, cl.id, cl.err = c.stsLookup(ctx, domain)
	return cl.p, cl.id, cl.err
}

func (c *Checker) stsLookup(ctx context.Context, domain string) (*Policy, string, error) {
	now := c.o.Now()
	cached := c.cached(ctx, domain)
	var valid *Policy
	if cached != nil && now.Before(cached.Expires) {
		if p, err := ParsePolicy(cached.Text); err == nil {
			valid = p
		}
	}
	txts, err := c.o.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		// 5.1: no record, or no answer: a valid cached policy still holds.
		if valid != nil {
			return valid, cached.ID, nil
		}
		if dnsres.IsNotFound(err) {
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("MTA-STS TXT lookup: %w", err)
	}
	id, err := ParseRecord(txts)
	if err != nil {
		if valid != nil {
			return valid, cached.ID, nil
		}
		if errors.Is(err, ErrNoRecord) && err == ErrNoRecord {
			return nil, "", nil
		}
		return nil, "", &fetchError{"sts-policy-invalid", err}
	}
	if valid != nil && cached.ID == id {
		return valid, id, nil
	}
	c.mu.Lock()
	f, recent := c.failed[domain]
	c.mu.Unlock()
	var p *Policy
	if recent && f.id == id && now.Before(f.until) {
		err = f.err
	} else {
		p, err = c.fetch.fetch(ctx, domain)
		c.mu.Lock()
		if err != nil && ctx.Err() == nil {
			if len(c.failed) >= maxFailed {
				for d, f := range c.failed {
					if !now.Before(f.until) || len(c.failed) >= maxFailed {
						delete(c.failed, d)
					}
				}
			}
			c.failed[domain] = failedFetch{id: id, until: now.Add(FetchRetry), err: err}
		} else {
			delete(c.failed, domain)
		}
		c.mu.Unlock()
	}
	if err != nil {
		if valid != nil {
			c.log.Warn("tlspolicy: MTA-STS policy refresh failed; using the cached one", "domain", domain, "err", err)
			return valid, cached.ID, nil
		}
		return nil, "", err
	}
	c.log.Info("tlspolicy: MTA-STS policy fetched", "domain", domain, "id", id, "mode", string(p.Mode), "max_age", p.MaxAge)
	c.store(ctx, store.MTASTSPolicy{Domain: domain, ID: id, Text: p.Text, FetchedAt: now, Expires: now.Add(p.MaxAge)})
	return p, id, nil
}

func (c *Checker) cached(ctx context.Context, domain string) *store.MTASTSPolicy {
	if c.o.Store == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.mem[domain]
	}
	p, err := c.o.Store.GetMTASTSPolicy(ctx, domain)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("tlspolicy: reading the MTA-STS cache", "domain", domain, "err", err)
		}
		return nil
	}
	return p
}

func (c *Checker) store(ctx context.Context, p store.MTASTSPolicy) {
	if c.o.Store == nil {
		c.mu.Lock()
		c.mem[p.Domain] = &p
		c.mu.Unlock()
		return
	}
	if err := c.o.Store.PutMTASTSPolicy(ctx, p); err != nil {
		c.log.Warn("tlspolicy: writing the MTA-STS cache", "domain", p.Domain, "err", err)
	}
}

// Kind is the TLS policy that applies to one MX host.
type Kind int

const (
	Opportunistic Kind = iota // STARTTLS if offered, certificate not checked
	Encrypt                   // STARTTLS required, certificate not checked
	DANE                      // STARTTLS required, certificate matches TLSA records
	STSEnforce                // STARTTLS required, WebPKI certificate for the MX name
	STSTesting                // as STSEnforce, but failures are only reported
)

func (k Kind) String() string {
	switch k {
	case Encrypt:
		return "encrypt"
	case DANE:
		return "dane"
	case STSEnforce:
		return "mta-sts-enforce"
	case STSTesting:
		return "mta-sts-testing"
	}
	return "may"
}

// Host is the policy for one MX host.
type Host struct {
	Kind   Kind
	Host   string
	Reason string // why this policy, for the log and the queue entry
	TLSA   []dnsres.TLSA
	// Strict: a verification failure defers (STSTesting with
	// DEFER_ON_TLS_ERROR); always true for DANE and STSEnforce.
	Strict bool
	domain *Domain
	// lenientFailed: verification failed under a lenient policy and was
	// reported; the session is not counted as a success.
	lenientFailed bool
	// unusableTLSA: Encrypt because of TLSA records none of which is
	// usable (a DANE outcome, not OUTBOUND_TLS_LEVEL=encrypt).
	unusableTLSA bool
}

// RecipientPolicy reports whether h comes from the recipient domain's
// DANE or MTA-STS publication, which "TLS-Required: No" may waive (RFC
// 8689 5), rather than from OUTBOUND_TLS_LEVEL, which stays in force.
func (h *Host) RecipientPolicy() bool {
	return h != nil && (h.Kind == DANE || h.Kind == STSEnforce || h.Kind == STSTesting || h.unusableTLSA)
}

// RequireTLS reports whether the host must not get the mail in clear.
func (h *Host) RequireTLS() bool {
	return h.Kind == Encrypt || h.Kind == DANE || h.Kind == STSEnforce || (h.Kind == STSTesting && h.Strict)
}

// Validated reports whether a session under h meets RFC 8689 4.2.1 for a
// message sent with REQUIRETLS: the MX host comes from a DNSSEC-signed
// answer or an MTA-STS policy in enforce mode that lists it, and the
// certificate is checked by DANE or by that policy. why says which rule
// held or failed, for the log and the DSN.
func (h *Host) Validated() (ok bool, why string) {
	switch {
	case h == nil || h.Kind == Opportunistic:
		return false, "no DANE or MTA-STS policy"
	case h.Kind == DANE && h.domain != nil && h.domain.MXSecure:
		return true, "DANE, with a DNSSEC-signed MX answer"
	case h.Kind == DANE && h.domain != nil && h.domain.STS != nil && h.domain.STS.Mode == ModeEnforce && h.domain.STS.MatchesMX(h.Host):
		return true, "DANE, with the MX host listed by an MTA-STS policy in enforce mode"
	case h.Kind == DANE:
		return false, "DANE records, but the MX answer is not DNSSEC-signed and no MTA-STS policy in enforce mode lists the host"
	case h.Kind == STSEnforce:
		return true, "MTA-STS policy in enforce mode"
	case h.Kind == STSTesting:
		return false, "MTA-STS policy in testing mode (REQUIRETLS needs enforce)"
	}
	return false, "TLS required but the certificate not verified (" + h.Reason + ")"
}

// Relaxed is the policy for a message whose sender wrote "TLS-Required:
// No" (RFC 8689 5): STARTTLS when offered, nothing verified, instead of
// the policy described by why. Its sessions are not counted for TLS-RPT.
func Relaxed(host, why string) *Host {
	return &Host{Kind: Opportunistic, Host: host,
		Reason: "TLS-Required: No (RFC 8689 5): " + why + " not enforced; STARTTLS when offered, certificate not verified"}
}

// Key tells connections made under different policies apart (the relay's
// session cache must not reuse a may-connection for a DANE delivery).
func (h *Host) Key() string {
	if h == nil {
		return ""
	}
	return h.Kind.String()
}

// PolicyError is a refusal by policy, before or during TLS.
type PolicyError struct {
	ResultType string // RFC 8460 4.3 result type
	Msg        string
}

func (e *PolicyError) Error() string { return e.Msg }

// ForHost decides the policy for host (an MX of d) reached on port. An
// error means the host must not be used (the next MX may be): a
// DNSSEC-signed TLSA look-up that failed (RFC 7672 2.2), or an MTA-STS
// enforce policy that does not list it (RFC 8461 4.1).
func (c *Checker) ForHost(ctx context.Context, d *Domain, host string, port int) (*Host, error) {
	h := &Host{Host: host, domain: d}
	tlsaName := "_" + strconv.Itoa(port) + "._tcp." + strings.TrimSuffix(host, ".")
	recs, secure, err := c.o.Resolver.LookupTLSA(ctx, tlsaName)
	daneOK := secure && (d.MXSecure || c.o.DeferOnTLSError)
	switch {
	case err != nil && !dnsres.IsNotFound(err) && d.MXSecure:
		// RFC 7672 2.2.2: a signed zone whose TLSA look-up fails may
		// hide records an attacker suppressed: this MX is unusable.
		return nil, &PolicyError{"dnssec-invalid", "TLSA lookup of " + tlsaName + " failed: " + err.Error()}
	case err == nil && daneOK:
		var usable []dnsres.TLSA
		for _, r := range recs {
			if Usable(r) {
				usable = append(usable, r)
			}
		}
		if len(usable) == 0 {
			// RFC 7672 2.2: records exist but none is usable: encrypt
			// without authentication.
			h.unusableTLSA = true
			h.Kind, h.Reason, h.Strict = Encrypt, fmt.Sprintf("DANE: %d TLSA records at %s, none usable (only 2/3 x x count): TLS required, not verified", len(recs), tlsaName), true
			c.log.Warn("tlspolicy: unusable TLSA records", "name", tlsaName, "records", len(recs))
			return h, nil
		}
		h.Kind, h.TLSA, h.Strict = DANE, usable, true
		h.Reason = fmt.Sprintf("DANE: %d usable TLSA records at %s (DNSSEC authenticated)", len(usable), tlsaName)
		return h, nil
	}
	if d.STS != nil {
		strict := d.STS.Mode == ModeEnforce || c.o.DeferOnTLSError
		if !d.STS.MatchesMX(host) {
			msg := "MTA-STS policy of " + d.Name + " (" + string(d.STS.Mode) + ") does not list MX host " + host
			if strict {
				return nil, &PolicyError{"validation-failure", msg}
			}
			c.report(d, h, "", "", "validation-failure", msg)
			h.lenientFailed = true
			c.log.Info("tlspolicy: "+msg+"; delivering (testing mode)", "domain", d.Name)
		}
		h.Kind, h.Strict = STSEnforce, true
		if d.STS.Mode == ModeTesting {
			h.Kind, h.Strict = STSTesting, strict
		}
		h.Reason = "MTA-STS: policy " + d.STSID + " of " + d.Name + " in " + string(d.STS.Mode) + " mode"
		if h.Kind == STSTesting && strict {
			h.Reason += ", enforced (DEFER_ON_TLS_ERROR)"
		}
		return h, nil
	}
	if c.o.Level == LevelEncrypt {
		h.Kind, h.Reason, h.Strict = Encrypt, "OUTBOUND_TLS_LEVEL=encrypt", true
		return h, nil
	}
	h.Kind, h.Reason = Opportunistic, "no DANE or MTA-STS policy: opportunistic TLS"
	return h, nil
}

// TLSConfig returns the client configuration for h. Verification runs in
// VerifyConnection, so that a failure is classified for TLS-RPT; for a
// lenient policy (testing mode) it is recorded and the handshake goes on.
// rootCAs verify MTA-STS hosts.
func (c *Checker) TLSConfig(h *Host) *tls.Config {
	cfg := &tls.Config{ServerName: h.Host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	switch h.Kind {
	case Opportunistic, Encrypt:
		// Postfix smtp_tls_protocols = !SSLv2, !SSLv3: old versions
		// rather than plaintext.
		cfg.MinVersion = tls.VersionTLS10
		return cfg
	case DANE:
		names := []string{h.Host, h.domain.Name}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := VerifyDANE(h.TLSA, cs, names, c.o.Now()); err != nil {
				return &PolicyError{"validation-failure", "DANE: certificate of " + h.Host + " rejected: " + err.Error()}
			}
			return nil
		}
	case STSEnforce, STSTesting:
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verifyPKIX(cs, h.Host, c.o.RootCAs, c.o.Now())
			if err == nil {
				return nil
			}
			pe := &PolicyError{certResultType(err), "MTA-STS: certificate of " + h.Host + " rejected: " + err.Error()}
			if h.Strict {
				return pe
			}
			c.report(h.domain, h, "", "", pe.ResultType, pe.Msg)
			c.log.Info("tlspolicy: "+pe.Msg+"; delivering (testing mode)", "domain", h.domain.Name)
			h.lenientFailed = true
			return nil
		}
	}
	return cfg
}

func verifyPKIX(cs tls.ConnectionState, host string, roots *x509.CertPool, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now})
	return err
}

// certResultType classifies a certificate failure (RFC 8460 4.3.2).
func certResultType(err error) string {
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &hn):
		return "certificate-host-mismatch"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "certificate-expired"
	case errors.As(err, &ua):
		return "certificate-not-trusted"
	}
	return "validation-failure"
}
