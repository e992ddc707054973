package cli

import (
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/msgauth"
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
domain's key, which signs its mail.`,
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
	})
}

func runDNS(c *call) error {
	info, err := c.svc.DKIM(c.ctx, c.pos[0])
	if err != nil {
		return err
	}
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
