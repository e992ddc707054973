package cli

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/httpd/mtasts"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlscfg"
	"github.com/petrelmail/petrel/internal/tlscfg/acme"
)

// dnsCommands are `petrel dns DOMAIN` and `petrel dkim DOMAIN` (the
// outbound issue).
func dnsCommands() []*command {
	return []*command{
		{name: "dns", args: "DOMAIN", min: 1, max: 1, store: true,
			summary: "Print the DNS records to publish for a domain.",
			help: `Prints the records Mailu's admin shows on the domain's page, as zone-file
lines ready to paste: MX, SPF, DKIM, DMARC, the DMARC report authorisation,
the RFC 6186 SRV records and the autoconfig/autodiscover CNAMEs. They follow
HOSTNAMES (the first one), DOMAIN, DMARC_RUA, DMARC_RUF, DKIM_SELECTOR,
PORTS and TLS_FLAVOR, and suggest only services this server answers: an SRV
record for a port that is off (587 unless PORTS names it) says "not
offered" (target ".", RFC 6186 3), autoconfig needs 80 or 443 served and
autodiscover 443. For an alternative domain the DKIM record carries its
domain's key, which signs its mail.

It also prints, for what this server really answers: the MTA-STS records
(_mta-sts TXT with the id of the policy served at
https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and the mta-sts CNAME) when
port 443 or 80 is served; the TLS-RPT record (_smtp._tls TXT, reports to
TLSRPT_RUA@DOMAIN, shown by petrel tlsrpt); and DANE TLSA 3 1 1 records
for port 25, computed from the certificates being served (the key's
SHA-256, which ACME keeps across renewals). Publish TLSA records only in a
DNSSEC-signed zone.`,
			run: runDNS},
		{name: "dkim", args: "DOMAIN", min: 1, max: 1, store: true,
			summary: "Generate a new DKIM key for a domain and print its DNS record.",
			help: `Replaces the domain's key (Mailu: "Regenerate keys"); its alternatives use
it too. Mail signed from now on only verifies once the new record is
published, so publish it promptly (or use a new DKIM_SELECTOR).`,
			run: runDKIM},
	}
}

// records builds the records of info's domain from the configuration.
func (c *call) records(info admin.DKIMInfo) ([]msgauth.Record, error) {
	return msgauth.Records(msgauth.RecordsOptions{
		Domain:       info.Domain,
		Hostnames:    c.cfg.Hostnames,
		ServerDomain: c.cfg.Domain,
		DMARCRUA:     c.cfg.DMARCRUA,
		DMARCRUF:     c.cfg.DMARCRUF,
		DKIMSelector: info.Selector,
		DKIMRecord:   info.Record,
		Ports:        c.cfg.Ports,
		Served:       c.cfg.ServedPorts(),
		TLS:          c.cfg.TLSFlavor != "notls",
		// Mailu adds DANE TLSA records for the Let's Encrypt roots; Petrel
		// does not fetch Let's Encrypt certificates yet (those flavors
		// behave like cert), so such records could make senders defer.
		LetsEncrypt: false,
		MTASTSID:    c.mtastsID(),
		TLSRPTRUA:   c.tlsrptRUA(),
		TLSA:        c.tlsa,
	})
}

// mtastsID is the id of the MTA-STS policy the HTTP roles serve, or ""
// when none serves it (RFC 8461 3.3 needs HTTPS: 443, or 80 behind a TLS
// proxy).
func (c *call) mtastsID() string {
	served := c.cfg.ServedPorts()
	if !slices.Contains(served, 443) && !slices.Contains(served, 80) {
		return ""
	}
	pol, err := mtasts.New(c.cfg.MTASTSMode, c.cfg.Hostnames, c.cfg.MTASTSMaxAge)
	if err != nil {
		return ""
	}
	return pol.ID()
}

// tlsrptRUA is the reporting address of the _smtp._tls record
// (TLSRPT_RUA at DOMAIN, RFC 8460 3), or "" with TLSRPT_RUA=none.
func (c *call) tlsrptRUA() string {
	if c.cfg.TLSRPTRUA == "" || c.cfg.Domain == "" {
		return ""
	}
	d, err := mailaddr.NormalizeDomain(c.cfg.Domain)
	if err != nil {
		return ""
	}
	return "mailto:" + c.cfg.TLSRPTRUA + "@" + d
}

// receives reports whether mail to addr reaches someone: a user, an
// alias or a wildcard alias of its domain. A failed look-up counts as yes
// (the note is only a hint).
func (c *call) receives(addr string) bool {
	if _, err := c.st.GetUser(c.ctx, addr); !errors.Is(err, store.ErrNotFound) {
		return true
	}
	if _, err := c.st.GetAlias(c.ctx, addr); !errors.Is(err, store.ErrNotFound) {
		return true
	}
	_, domain, _ := strings.Cut(addr, "@")
	w, err := c.st.ListWildcardAliases(c.ctx, domain)
	return err != nil || len(w) > 0
}

// servedTLSA computes the TLSA 3 1 1 data of the certificates port 25
// serves: the ACME certificates in the store under the letsencrypt
// flavors, else the certificate file. why says why there are none.
func (c *call) servedTLSA() (recs []string, why string) {
	var leaves []*x509.Certificate
	switch c.cfg.TLSFlavor {
	case tlscfg.FlavorNoTLS:
		return nil, ""
	case tlscfg.FlavorLetsencrypt, tlscfg.FlavorMailLetsencrypt:
		cs, ok := c.st.(store.CertStorage)
		if !ok {
			return nil, "the store holds no certificates"
		}
		m, err := acme.New(acme.Options{Hostnames: c.cfg.Hostnames, Storage: cs, Directory: c.cfg.ACMEDirectory})
		if err != nil {
			return nil, err.Error()
		}
		defer m.Stop()
		if leaves, err = m.StoredLeaves(c.ctx); err != nil {
			return nil, err.Error()
		}
		if len(leaves) == 0 {
			return nil, "the ACME CA has not issued a certificate for " + c.cfg.Hostnames[0] + " yet (petrel serve obtains it)"
		}
	default:
		chain, err := tlscfg.FileChain(filepath.Join(c.cfg.DataDir, "certs"), c.cfg.TLSCertFilename)
		if err != nil {
			return nil, "no certificate to read (" + err.Error() + "); petrel serve creates one when none exists"
		}
		leaves = chain[:1]
	}
	for _, l := range leaves {
		v := tlscfg.TLSA311(l)
		if !slices.Contains(recs, v) {
			recs = append(recs, v)
		}
	}
	return recs, ""
}

func runDNS(c *call) error {
	info, err := c.svc.DKIM(c.ctx, c.pos[0])
	if err != nil {
		return err
	}
	tlsa, noTLSA := c.servedTLSA()
	c.tlsa = tlsa
	recs, err := c.records(info)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprint(c.stdout, msgauth.Zone(recs)); err != nil {
		return err
	}
	if info.Record == "" {
		// Mailu shows DKIM and DMARC only once a key exists.
		fmt.Fprintf(c.stderr, "petrel dns: %s has no DKIM key yet, so no DKIM and DMARC records; create one with 'petrel dkim %s'\n",
			info.KeyDomain, info.KeyDomain)
	}
	if len(tlsa) > 0 {
		fmt.Fprintln(c.stderr, "petrel dns: publish the TLSA records only in a DNSSEC-signed zone (RFC 7672): senders ignore them otherwise, "+
			"and they pin the served key, so publish new ones before changing the key")
	} else if noTLSA != "" {
		fmt.Fprintf(c.stderr, "petrel dns: no TLSA records: %s\n", noTLSA)
	}
	if rua := c.tlsrptRUA(); rua != "" {
		if addr := strings.TrimPrefix(rua, "mailto:"); !c.receives(addr) {
			fmt.Fprintf(c.stderr, "petrel dns: %s is no user or alias yet, so TLS-RPT reports sent there are refused; create it, or set TLSRPT_RUA\n", addr)
		}
	}
	if id := c.mtastsID(); id != "" {
		fmt.Fprintf(c.stderr, "petrel dns: senders fetch the MTA-STS policy only if the HTTPS certificate covers mta-sts.%s", info.Domain)
		if c.cfg.TLSFlavor == tlscfg.FlavorLetsencrypt || c.cfg.TLSFlavor == tlscfg.FlavorMailLetsencrypt {
			fmt.Fprintf(c.stderr, ": list mta-sts.%s in HOSTNAMES so that ACME gets its certificate", info.Domain)
		}
		fmt.Fprintln(c.stderr)
	}
	return nil
}

func runDKIM(c *call) error {
	info, err := c.svc.RegenerateDKIM(c.ctx, c.pos[0])
	if err != nil {
		return err
	}
	recs, err := c.records(info)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Type == "TXT" && strings.HasSuffix(r.Name, "._domainkey."+info.Domain+".") {
			_, err := fmt.Fprintln(c.stdout, r.String())
			return err
		}
	}
	return fmt.Errorf("no DKIM record for %s", info.Domain)
}
