package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/httpd/mtasts"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlscfg"
)

// MTASTSPolicy is the MTA-STS policy every local domain publishes
// (MTA_STS_MODE, MTA_STS_MAX_AGE, HOSTNAMES as MX). `petrel dns` uses it
// for the id of the _mta-sts record, so both always agree.
func MTASTSPolicy(cfg *config.Config) (mtasts.Policy, error) {
	return mtasts.New(cfg.MTASTSMode, cfg.Hostnames, cfg.MTASTSMaxAge)
}

// newMTASTS builds the handler of https://mta-sts.<domain>/.well-known/mta-sts.txt.
func newMTASTS(cfg *config.Config, p *parts) (http.Handler, error) {
	pol, err := MTASTSPolicy(cfg)
	if err != nil {
		return nil, err
	}
	return mtasts.Handler(mtasts.Options{
		Policy:  pol,
		IsLocal: func(ctx context.Context, d string) (bool, error) { return isLocalDomain(ctx, p.store, d) },
		Logger:  p.log.With("part", "mta-sts"),
	}), nil
}

// isLocalDomain reports whether d is a domain or an alternative.
func isLocalDomain(ctx context.Context, st store.Accounts, d string) (bool, error) {
	if _, err := st.GetDomain(ctx, d); err == nil {
		return true, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if _, err := st.GetAlternative(ctx, d); err == nil {
		return true, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return false, nil
}

// logMTASTS says at start-up which policy is served, with which id, and
// which domains' policy hosts the certificate does not cover: senders
// ignore a policy fetched without a valid certificate (RFC 8461 3.3), and
// Petrel does not add mta-sts.<domain> to the ACME names by itself.
func logMTASTS(ctx context.Context, cfg *config.Config, p *parts, served bool) {
	log := p.log.With("part", "mta-sts")
	if !served {
		log.Info("MTA-STS policy not served: it needs HTTPS on port 443 (or port 80 behind a TLS proxy)")
		return
	}
	pol, err := MTASTSPolicy(cfg)
	if err != nil {
		return // newMTASTS reported it
	}
	var names []string
	doms, err := p.store.ListDomains(ctx)
	if err != nil {
		log.Warn("MTA-STS: could not list the domains", "err", err)
		return
	}
	for _, d := range doms {
		names = append(names, d.Name)
	}
	alts, err := p.store.ListAlternatives(ctx, "")
	if err == nil {
		for _, a := range alts {
			names = append(names, a.Name)
		}
	}
	noteMTASTSChange(ctx, p.store, log, pol.ID())
	log.Info("MTA-STS policy served at https://mta-sts.<domain>"+mtasts.Path+"; publish the _mta-sts record petrel dns prints (its id changes with the policy)",
		"mode", pol.Mode, "mx", strings.Join(pol.MX, ","), "max_age", pol.MaxAge, "id", pol.ID())
	uncovered := coverMTASTS(cfg, p.certs, names)
	if len(uncovered) > 0 {
		fix := "add them to the certificate file"
		if p.acme != nil {
			fix = "add them to HOSTNAMES (with DNS records pointing here) so that ACME gets certificates for them"
		}
		msg := fmt.Sprintf("MTA-STS: the certificate does not cover %s, so senders cannot fetch those domains' policies; %s",
			strings.Join(uncovered, ", "), fix)
		if cfg.MTASTSMode == "none" {
			// A "none" policy only withdraws one published before: worth
			// a note, not a warning (quickstart serves it on loopback).
			log.Info(msg, "names", strings.Join(uncovered, ","))
			return
		}
		log.Warn(msg, "names", strings.Join(uncovered, ","))
	}
}

// mtastsIDKey is where the store remembers the id of the policy served
// last, so that a change of policy (a setting, HOSTNAMES) is pointed out.
const mtastsIDKey = "petrel.mta_sts_policy_id"

// noteMTASTSChange warns when the policy id differs from the one served
// before: senders refetch the policy only once the _mta-sts record
// carries the new id (RFC 8461 3.1), so the records must be updated.
func noteMTASTSChange(ctx context.Context, st store.Accounts, log *slog.Logger, id string) {
	raw, err := st.GetConfig(ctx, mtastsIDKey)
	var prev string
	switch {
	case err == nil:
		_ = json.Unmarshal(raw, &prev)
	case !errors.Is(err, store.ErrNotFound):
		log.Warn("MTA-STS: could not read the previous policy id", "err", err)
		return
	}
	if prev == id {
		return
	}
	if prev != "" {
		log.Warn("MTA-STS: the policy changed; publish the new id in every domain's _mta-sts TXT record (petrel dns DOMAIN), "+
			"or senders keep the old policy until its max_age ends", "old_id", prev, "id", id)
	}
	v, _ := json.Marshal(id)
	if err := st.SetConfig(ctx, mtastsIDKey, v); err != nil {
		log.Warn("MTA-STS: could not store the policy id", "err", err)
	}
}

// coverMTASTS returns the mta-sts.<domain> names no served certificate
// covers. Under ACME only HOSTNAMES get certificates; otherwise the file
// certificate's names are checked.
func coverMTASTS(cfg *config.Config, certs *tlscfg.Manager, domains []string) []string {
	if cfg.TLSFlavor == tlscfg.FlavorLetsencrypt || cfg.TLSFlavor == tlscfg.FlavorMailLetsencrypt {
		return mtasts.Uncovered(domains, cfg.Hostnames)
	}
	if !webTLS(cfg, certs) {
		return nil // mail flavors and notls: a TLS proxy in front holds the certificate
	}
	var out []string
	for _, n := range mtasts.Uncovered(domains, nil) {
		c, err := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: n})
		if err != nil || c == nil || c.Leaf == nil || c.Leaf.VerifyHostname(n) != nil {
			out = append(out, n)
		}
	}
	return out
}
