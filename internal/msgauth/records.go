package msgauth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// TTLs Mailu's admin prints (models.py Domain.dns_*).
const (
	recordTTL = 600
	tlsaTTL   = 86400
	// txtChunk: a zone-file character-string holds at most 255 octets
	// (RFC 1035 3.3); longer TXT data is split into several strings, which
	// receivers join (RFC 6376 3.6.2.2, RFC 7208 3.3).
	txtChunk = 255
)

// Record is one DNS record to publish.
type Record struct {
	Name  string // owner name, absolute (ends with ".")
	TTL   int
	Type  string // MX, TXT, SRV, CNAME, TLSA
	Value string // RDATA in zone-file form, except TXT: the text itself, unquoted
}

// String returns the record as one zone-file line, the way Mailu's admin
// shows it: `example.com. 600 IN MX 10 mail.example.com.`. TXT text is
// quoted and split into strings of at most 255 characters.
func (r Record) String() string {
	return fmt.Sprintf("%s %d IN %s %s", r.Name, r.TTL, r.Type, r.Data())
}

// Data returns the RDATA as written in a zone file.
func (r Record) Data() string {
	if r.Type != "TXT" {
		return r.Value
	}
	return quoteTXT(r.Value)
}

func quoteTXT(s string) string {
	esc := func(s string) string {
		return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
	}
	if len(s) <= txtChunk {
		return `"` + esc(s) + `"`
	}
	var parts []string
	for len(s) > txtChunk {
		parts = append(parts, `"`+esc(s[:txtChunk])+`"`)
		s = s[txtChunk:]
	}
	parts = append(parts, `"`+esc(s)+`"`)
	return strings.Join(parts, " ")
}

// Zone joins records into zone-file lines, one per record, each ending in a
// newline.
func Zone(records []Record) string {
	var b strings.Builder
	for _, r := range records {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// RecordsOptions describes the server and domain the records are for.
type RecordsOptions struct {
	Domain string // the mail domain (or an alternative), Unicode or A-label
	// Hostnames is HOSTNAMES; the first is the MX, SPF, SRV and CNAME target
	// (Mailu: HOSTNAME).
	Hostnames []string
	// ServerDomain is DOMAIN: the domain of the DMARC report addresses and
	// the zone of the report authorisation record.
	ServerDomain string
	// DMARCRUA and DMARCRUF are local parts (DMARC_RUA, DMARC_RUF) at
	// ServerDomain; empty leaves the tag out.
	DMARCRUA, DMARCRUF string
	// DKIMSelector defaults to DefaultSelector.
	DKIMSelector string
	// DKIMRecord is the domain's key record (Keys.PublicKeyRecord; for an
	// alternative, its parent's). Empty: no key yet, so no DKIM, DMARC or
	// report authorisation record (Mailu shows them only once a key exists).
	DKIMRecord string
	// Ports are the enabled listener ports (PORTS). 465 and 993 always count
	// as enabled: Mailu switches them with TLS, not PORTS.
	Ports []int
	// TLS is false under TLS_FLAVOR=notls: then no _autodiscover,
	// _submissions, _imaps or _pop3s records.
	TLS bool
	// Served, when not nil, lists the ports the server really answers on
	// (Petrel's serve, not Mailu's PORTS rules): it replaces Ports and the
	// TLS-follows rule for the SRV records, and the autoconfig and
	// autodiscover names are suggested only when the web serves them
	// (autoconfig on 80 or 443, autodiscover on 443). Nil keeps Mailu's
	// records.
	Served []int
	// LetsEncrypt adds Mailu's DANE TLSA records for the ISRG roots
	// (TLS_FLAVOR letsencrypt or mail-letsencrypt).
	LetsEncrypt bool
	// MTASTSID, when set, adds the _mta-sts TXT record with this policy
	// id (RFC 8461 3.1) and the mta-sts.<domain> CNAME to the first
	// hostname, where the policy is served.
	MTASTSID string
	// TLSRPTRUA, when set, adds the _smtp._tls TXT record (RFC 8460 3)
	// with this reporting URI (mailto:...).
	TLSRPTRUA string
	// TLSA are the data ("3 1 1 <hex>") of the DANE TLSA records for
	// _25._tcp.<first hostname> (RFC 7672 3.1), one per served key.
	TLSA []string
}

// srvService is one RFC 6186 / RFC 8314 service record Mailu publishes.
type srvService struct {
	name     string
	port     int
	priority int
}

// Records returns the records to publish for opts.Domain, in the order of
// Mailu's domain details page: MX, SPF, DKIM, DMARC, DMARC report
// authorisation, TLSA, SRV, then the autoconfig/autodiscover CNAMEs
// (Mailu master, models.py Domain.dns_mx ... dns_autoconfig). Names are
// IDNA A-labels in lower case.
func Records(opts RecordsOptions) ([]Record, error) {
	d, err := mailaddr.NormalizeDomain(opts.Domain)
	if err != nil {
		return nil, fmt.Errorf("dns records: %w", err)
	}
	if len(opts.Hostnames) == 0 {
		return nil, fmt.Errorf("dns records: no hostname")
	}
	host, err := mailaddr.NormalizeDomain(opts.Hostnames[0])
	if err != nil {
		return nil, fmt.Errorf("dns records: hostname: %w", err)
	}
	server := d // DOMAIN is required in Mailu; without it reports go to d
	if opts.ServerDomain != "" {
		if server, err = mailaddr.NormalizeDomain(opts.ServerDomain); err != nil {
			return nil, fmt.Errorf("dns records: server domain: %w", err)
		}
	}
	selector := opts.DKIMSelector
	if selector == "" {
		selector = DefaultSelector
	}
	fq := func(n string) string { return n + "." }

	recs := []Record{
		{Name: fq(d), TTL: recordTTL, Type: "MX", Value: "10 " + fq(host)},
		{Name: fq(d), TTL: recordTTL, Type: "TXT", Value: "v=spf1 mx a:" + host + " ~all"},
	}
	if opts.DKIMRecord != "" {
		recs = append(recs,
			Record{Name: fq(selector + "._domainkey." + d), TTL: recordTTL, Type: "TXT", Value: opts.DKIMRecord},
			Record{Name: fq("_dmarc." + d), TTL: recordTTL, Type: "TXT", Value: dmarcRecord(opts, server)})
		// RFC 7489 7.1: the report domain authorises reports about d. Not
		// needed when the reports go to d itself (Mailu:
		// dns_dmarc_report_needed).
		if server != "" && server != d {
			recs = append(recs, Record{Name: fq(d + "._report._dmarc." + server), TTL: recordTTL, Type: "TXT", Value: "v=DMARC1;"})
		}
	}
	if opts.LetsEncrypt {
		for _, h := range []string{
			"0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3", // ISRG Root X1 SPKI sha256
			"762195c225586ee6c0237456e2107dc54f1efc21f61a792ebd515913cce68332", // ISRG Root X2 SPKI sha256
		} {
			recs = append(recs, Record{Name: fq("_25._tcp." + host), TTL: tlsaTTL, Type: "TLSA", Value: "2 1 1 " + h})
		}
	}
	for _, v := range opts.TLSA {
		recs = append(recs, Record{Name: fq("_25._tcp." + host), TTL: tlsaTTL, Type: "TLSA", Value: v})
	}
	if opts.MTASTSID != "" {
		recs = append(recs,
			Record{Name: fq("_mta-sts." + d), TTL: recordTTL, Type: "TXT", Value: "v=STSv1; id=" + opts.MTASTSID},
			Record{Name: fq("mta-sts." + d), TTL: recordTTL, Type: "CNAME", Value: fq(host)})
	}
	if opts.TLSRPTRUA != "" {
		recs = append(recs, Record{Name: fq("_smtp._tls." + d), TTL: recordTTL, Type: "TXT", Value: "v=TLSRPTv1; rua=" + opts.TLSRPTRUA})
	}
	on := func(port int) bool {
		if opts.Served != nil {
			return slices.Contains(opts.Served, port)
		}
		return portEnabled(opts.Ports, port)
	}
	for _, s := range srvServices(opts.TLS) {
		// RFC 6186 3: target "." means the service is not offered.
		v := "0 0 0 ."
		if on(s.port) {
			v = fmt.Sprintf("%d 1 %d %s", s.priority, s.port, fq(host))
		}
		recs = append(recs, Record{Name: fq("_" + s.name + "._tcp." + d), TTL: recordTTL, Type: "SRV", Value: v})
	}
	if opts.Served == nil || on(80) || on(443) {
		recs = append(recs, Record{Name: fq("autoconfig." + d), TTL: recordTTL, Type: "CNAME", Value: fq(host)})
	}
	if opts.Served == nil || on(443) {
		recs = append(recs, Record{Name: fq("autodiscover." + d), TTL: recordTTL, Type: "CNAME", Value: fq(host)})
	}
	return recs, nil
}

// dmarcRecord is Mailu's suggested policy: reject, strict alignment, reports
// to DMARC_RUA/DMARC_RUF at DOMAIN (models.py Domain.dns_dmarc).
func dmarcRecord(opts RecordsOptions, server string) string {
	var b strings.Builder
	b.WriteString("v=DMARC1; p=reject;")
	if opts.DMARCRUA != "" {
		b.WriteString(" rua=mailto:" + opts.DMARCRUA + "@" + server + ";")
	}
	if opts.DMARCRUF != "" {
		b.WriteString(" ruf=mailto:" + opts.DMARCRUF + "@" + server + ";")
	}
	b.WriteString(" adkim=s; aspf=s")
	return b.String()
}

// srvServices: the plain services at priority 20, the implicit-TLS ones
// (RFC 8314 5.1) at priority 10 (Mailu: models.py Domain.dns_autoconfig).
func srvServices(tls bool) []srvService {
	s := []srvService{{"imap", 143, 20}, {"pop3", 110, 20}, {"submission", 587, 20}}
	if tls {
		s = append(s, srvService{"autodiscover", 443, 10}, srvService{"submissions", 465, 10},
			srvService{"imaps", 993, 10}, srvService{"pop3s", 995, 10})
	}
	return s
}

// portEnabled: Mailu takes PORTS plus 465 and 993, which follow TLS.
func portEnabled(ports []int, port int) bool {
	return port == 465 || port == 993 || slices.Contains(ports, port)
}

// ParseTXT joins the quoted strings of a zone-file TXT RDATA, the inverse
// of Record.Data for TXT records. It handles \" and \\ escapes and \DDD
// decimal escapes (RFC 1035 5.1).
func ParseTXT(data string) (string, error) {
	var b strings.Builder
	i := 0
	for {
		for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
			i++
		}
		if i == len(data) {
			return b.String(), nil
		}
		if data[i] != '"' {
			return "", fmt.Errorf("txt: expected '\"' at %d", i)
		}
		i++
		for {
			if i >= len(data) {
				return "", fmt.Errorf("txt: unterminated string")
			}
			c := data[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' {
				if i+1 >= len(data) {
					return "", fmt.Errorf("txt: dangling escape")
				}
				if i+3 < len(data) && isDigits(data[i+1:i+4]) {
					n, _ := strconv.Atoi(data[i+1 : i+4])
					if n > 255 {
						return "", fmt.Errorf("txt: escape \\%s out of range", data[i+1:i+4])
					}
					b.WriteByte(byte(n))
					i += 4
					continue
				}
				b.WriteByte(data[i+1])
				i += 2
				continue
			}
			b.WriteByte(c)
			i++
		}
	}
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
