package diagnose

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// Severity of a finding.
const (
	OK      = "ok"
	Info    = "info"
	Warning = "warning"
	Problem = "problem"
)

// Finding is one line of the doctor's report: what was checked, what was
// found and, for anything not OK, what to do about it.
type Finding struct {
	Area     string `json:"area"` // dns, certificate, ports, queue, disk, store
	Severity string `json:"severity"`
	Subject  string `json:"subject"` // the name, address or port concerned
	Detail   string `json:"detail"`
	Fix      string `json:"fix,omitempty"`
}

// Resolver is the DNS the doctor asks (*dnsres.Net; RESOLVER_ADDRESS).
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// DomainRecords are the records `petrel dns DOMAIN` suggests for one
// domain; the doctor compares them with what DNS answers.
type DomainRecords struct {
	Domain  string
	Records []msgauth.Record
	NoDKIM  bool // the domain has no DKIM key yet
}

// Store is what the queue and store checks read.
type Store interface {
	Ping(ctx context.Context) error
	ListQueueEntries(ctx context.Context) ([]store.QueueItem, error)
}

// BodyStore is the S3-compatible bucket large bodies go to (BLOB_S3_*).
type BodyStore interface {
	// Probe checks the bucket: HEAD bucket, then PUT and DELETE of a
	// probe object.
	Probe(ctx context.Context) error
	String() string // endpoint/bucket, no credentials
}

// DoctorOptions says what to check.
type DoctorOptions struct {
	Config   *config.Config
	Resolver Resolver        // nil: no DNS checks
	Domains  []DomainRecords // the domains to check
	Store    Store           // nil: no queue and store checks
	Bodies   BodyStore       // nil: no S3 bucket configured
	// Accounts and Login: explain one user's login as `diagnose LOGIN`
	// does (bare username, disabled account, tokens); "" skips it.
	Accounts Accounts
	Login    string
	Probe    bool // connect to this machine's ports (serve must run)
	// Outbound, when set, is a host whose port 25 is dialled to see
	// whether the provider lets mail out ("" skips it).
	Outbound string
	Timeout  time.Duration
	Now      func() time.Time
	// Roots verify the served certificate; nil: the system's.
	Roots *x509.CertPool
}

// Doctor checks a running install end to end and returns every finding.
func Doctor(ctx context.Context, opt DoctorOptions) []Finding {
	if opt.Timeout == 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	d := &doctor{opt: opt, cfg: opt.Config}
	d.ports(ctx)
	d.add("ports", Info, "logins", "mail clients log in on 465/993/995 (or 587/143/110 after STARTTLS) with the full email address as the username, never the bare name, and never send on 25",
		"")
	if opt.Probe {
		d.certificate(ctx)
	}
	if opt.Resolver != nil {
		d.host(ctx)
		for _, dr := range opt.Domains {
			d.domain(ctx, dr)
		}
	}
	if opt.Outbound != "" {
		d.outbound(ctx)
	}
	if opt.Store != nil {
		d.store(ctx)
	}
	if opt.Bodies != nil {
		d.bodyStore(ctx)
	}
	d.disk()
	if opt.Login != "" && opt.Accounts != nil {
		d.account(ctx)
	}
	return d.out
}

// account turns diagnose's login explanation into findings: each PROBLEM
// line becomes one problem, the rest one info finding.
func (d *doctor) account(ctx context.Context) {
	var b strings.Builder
	explainAccount(ctx, &b, d.opt.Accounts, d.cfg, d.opt.Login)
	var notes []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n")[1:] {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "PROBLEM: "); ok {
			detail, fix, _ := strings.Cut(p, "; ")
			if fix == "" {
				fix = "mail clients must log in with the full email address and the account's password (or an app token)"
			}
			d.add("account", Problem, d.opt.Login, detail, fix)
			continue
		}
		notes = append(notes, line)
	}
	if len(notes) > 0 {
		d.add("account", Info, d.opt.Login, strings.Join(notes, "; "), "")
	}
}

type doctor struct {
	opt DoctorOptions
	cfg *config.Config
	out []Finding
}

func (d *doctor) add(area, sev, subject, detail, fix string) {
	d.out = append(d.out, Finding{Area: area, Severity: sev, Subject: subject, Detail: detail, Fix: fix})
}

func (d *doctor) hostname() string {
	if len(d.cfg.Hostnames) > 0 {
		return strings.ToLower(strings.TrimSuffix(d.cfg.Hostnames[0], "."))
	}
	return "localhost"
}

// ports: which roles are on, whether they answer, and the port policy
// Mailu users trip over (a client on 25, a closed 587).
func (d *doctor) ports(ctx context.Context) {
	for _, p := range smtpPorts {
		l := d.cfg.Listeners[p.num]
		subject := fmt.Sprintf("%d %s", p.num, p.name)
		if !(l.Enabled || p.num == 25) {
			d.add("ports", Info, subject, "off", p.offHint)
			if d.opt.Probe {
				if msg := probeClosed(ctx, l.Addr, d.opt.Timeout); msg != "" {
					d.add("ports", Problem, subject, msg, "stop the other program, or turn the role on with PORTS")
				}
			}
			continue
		}
		if !d.opt.Probe {
			d.add("ports", Info, subject, "on at "+l.Addr+": "+p.advice, "")
			continue
		}
		banner, err := probeOpen(ctx, l.Addr, p.implicit, d.opt.Timeout)
		if err != nil {
			d.add("ports", Problem, subject, err.Error(),
				fmt.Sprintf("start `petrel serve`, check LISTEN_%d/BIND_ADDRESS and that no firewall drops the port", p.num))
			continue
		}
		d.add("ports", OK, subject, "answers: "+banner, "")
	}
	if d.opt.Probe {
		d.port25Policy(ctx)
	}
	for _, p := range []struct {
		num  int
		name string
	}{{993, "imaps"}, {143, "imap"}, {995, "pop3s"}, {110, "pop3"}} {
		l := d.cfg.Listeners[p.num]
		subject := fmt.Sprintf("%d %s", p.num, p.name)
		if !l.Enabled {
			continue
		}
		if !d.opt.Probe {
			d.add("ports", Info, subject, "on at "+l.Addr, "")
			continue
		}
		if err := dialOnly(ctx, l.Addr, d.opt.Timeout); err != nil {
			d.add("ports", Problem, subject, err.Error(),
				fmt.Sprintf("start `petrel serve`, check LISTEN_%d/BIND_ADDRESS and the firewall", p.num))
		} else {
			d.add("ports", OK, subject, "accepts connections", "")
		}
	}
}

// port25Policy checks that 25 offers no AUTH: a mail client set up for
// 25 cannot log in there, and that is right (Mailu's most common report).
func (d *doctor) port25Policy(ctx context.Context) {
	ehlo, err := ehloOn(ctx, localAddr(d.cfg.Listeners[25].Addr), d.opt.Timeout)
	if err != nil {
		return // already reported as unreachable
	}
	if slices.ContainsFunc(ehlo, func(s string) bool { return strings.HasPrefix(strings.ToUpper(s), "AUTH") }) {
		d.add("ports", Problem, "25 smtp (MX)", "port 25 offers AUTH", "port 25 is for other mail servers only; report this as a bug")
		return
	}
	d.add("ports", OK, "25 smtp (MX)", "offers no AUTH, as it should: mail clients that send on 25 get 502 5.5.1 or relay access denied",
		"")
}

// certificate checks what 465 (or 993) presents: expiry, names, chain.
func (d *doctor) certificate(ctx context.Context) {
	if d.cfg.TLSFlavor == "notls" {
		d.add("certificate", Warning, "TLS_FLAVOR", "notls: passwords cross the network in clear", "set TLS_FLAVOR=cert (or letsencrypt) with a certificate for "+d.hostname())
		return
	}
	var addr string
	for _, p := range []int{465, 993, 995} {
		if d.cfg.Listeners[p].Enabled {
			addr = localAddr(d.cfg.Listeners[p].Addr)
			break
		}
	}
	if addr == "" {
		return
	}
	dl := &net.Dialer{Timeout: d.opt.Timeout}
	c, err := (&tls.Dialer{NetDialer: dl, Config: &tls.Config{InsecureSkipVerify: true, ServerName: d.hostname()}}).DialContext(ctx, "tcp", addr)
	if err != nil {
		d.add("certificate", Problem, addr, "TLS handshake failed: "+err.Error(), "check the certificate files (TLS_CERT_FILENAME, TLS_KEYPAIR_FILENAME) and the log")
		return
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return
	}
	leaf := certs[0]
	now := d.opt.Now()
	left := leaf.NotAfter.Sub(now)
	switch {
	case left <= 0:
		d.add("certificate", Problem, leaf.Subject.CommonName, "expired on "+leaf.NotAfter.UTC().Format("2006-01-02"),
			"renew the certificate and reload (SIGHUP) or restart Petrel")
	case left < 14*24*time.Hour:
		d.add("certificate", Warning, leaf.Subject.CommonName, fmt.Sprintf("expires in %d days (%s)", int(left.Hours()/24), leaf.NotAfter.UTC().Format("2006-01-02")),
			"renew it now; Petrel picks up new files without a restart")
	default:
		d.add("certificate", OK, leaf.Subject.CommonName, "valid until "+leaf.NotAfter.UTC().Format("2006-01-02"), "")
	}
	for _, h := range d.cfg.Hostnames {
		if err := leaf.VerifyHostname(h); err != nil {
			d.add("certificate", Problem, h, "the certificate does not cover "+h+" (it names "+strings.Join(leaf.DNSNames, ", ")+")",
				"get a certificate for every name in HOSTNAMES")
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: d.opt.Roots, Intermediates: inter, CurrentTime: now}); err != nil {
		d.add("certificate", Warning, leaf.Subject.CommonName, "the chain does not verify: "+err.Error(),
			"serve the full chain (leaf and intermediates) from a public CA; mail clients warn about anything else")
	}
}

// host checks the server name: A/AAAA and reverse DNS that points back
// (forward-confirmed), which many receivers demand.
func (d *doctor) host(ctx context.Context) {
	host := d.hostname()
	addrs, err := d.opt.Resolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		d.add("dns", Problem, host, "no A or AAAA record", "publish "+host+". A <this server's public IPv4> (and AAAA for IPv6)")
		return
	}
	for _, a := range addrs {
		ip := a.IP.String()
		names, err := d.opt.Resolver.LookupAddr(ctx, ip)
		if err != nil || len(names) == 0 {
			d.add("dns", Problem, ip, "no reverse DNS (PTR) for "+ip,
				"ask the provider of "+ip+" to set its reverse DNS to "+host+" (receivers refuse or junk mail without it)")
			continue
		}
		match := false
		for _, n := range names {
			if strings.EqualFold(strings.TrimSuffix(n, "."), host) {
				match = true
			}
		}
		if !match {
			d.add("dns", Problem, ip, "reverse DNS of "+ip+" is "+strings.Join(names, ", ")+", not "+host,
				"ask the provider of "+ip+" to set its reverse DNS (PTR) to "+host)
			continue
		}
		d.add("dns", OK, ip, "reverse DNS is "+host+" and "+host+" points back to it", "")
	}
}

// domain compares what DNS answers with what `petrel dns` suggests.
func (d *doctor) domain(ctx context.Context, dr DomainRecords) {
	host := d.hostname()
	dom := dr.Domain
	if dr.NoDKIM {
		d.add("dns", Problem, dom, "the domain has no DKIM key, so its mail goes out unsigned", "petrel dkim "+dom+", then publish the record it prints")
	}
	for _, r := range dr.Records {
		name := strings.TrimSuffix(r.Name, ".")
		switch {
		case r.Type == "MX":
			mxs, err := d.opt.Resolver.LookupMX(ctx, dom)
			if err != nil || len(mxs) == 0 {
				d.add("dns", Problem, dom, "no MX record: other servers cannot find where to deliver", "publish: "+r.String())
				continue
			}
			var targets []string
			ok := false
			for _, mx := range mxs {
				t := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
				targets = append(targets, t)
				ok = ok || t == host
			}
			if ok {
				d.add("dns", OK, dom, "MX points to "+host, "")
			} else {
				d.add("dns", Problem, dom, "MX points to "+strings.Join(targets, ", ")+", not to this server ("+host+")", "publish: "+r.String())
			}
		case r.Type == "TXT" && strings.HasPrefix(r.Value, "v=spf1"):
			d.txtRecord(ctx, dom, name, "v=spf1", "SPF", r, func(v string) (string, string) {
				f := strings.Fields(strings.ToLower(v))
				if slices.Contains(f, "mx") || slices.Contains(f, "a:"+host) || slices.Contains(f, "+mx") || slices.Contains(f, "include:"+host) {
					return "", ""
				}
				return Warning, "the SPF record may not allow this server (no mx, no a:" + host + ")"
			})
		case r.Type == "TXT" && strings.Contains(name, "._domainkey."):
			want := dkimKey(r.Value)
			d.txtRecord(ctx, dom, name, "v=DKIM1", "DKIM", r, func(v string) (string, string) {
				if dkimKey(v) != want {
					return Problem, "the published DKIM key is not the key Petrel signs with"
				}
				return "", ""
			})
		case r.Type == "TXT" && strings.HasPrefix(name, "_dmarc."):
			d.txtRecord(ctx, dom, name, "v=DMARC1", "DMARC", r, func(v string) (string, string) {
				if strings.Contains(strings.ReplaceAll(strings.ToLower(v), " ", ""), "p=none") {
					return Info, "the DMARC policy is p=none: receivers only report, spoofed mail still gets through"
				}
				return "", ""
			})
		case r.Type == "TXT" && strings.Contains(name, "._report._dmarc."):
			d.txtRecord(ctx, dom, name, "v=DMARC1", "DMARC report authorisation", r, nil)
		case r.Type == "CNAME" && (strings.HasPrefix(name, "autoconfig.") || strings.HasPrefix(name, "autodiscover.")):
			d.sameAddresses(ctx, dom, name, r)
		case r.Type == "TXT" && strings.HasPrefix(name, "_mta-sts."):
			d.mtastsID(ctx, dom, name, r)
		}
	}
	d.optionalPolicies(ctx, dom)
}

// txtRecord finds the TXT record at name that starts with tag; check may
// judge its value (severity "" = fine).
func (d *doctor) txtRecord(ctx context.Context, dom, name, tag, what string, want msgauth.Record, check func(string) (string, string)) {
	txts, err := d.opt.Resolver.LookupTXT(ctx, name)
	var found []string
	for _, t := range txts {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(t)), strings.ToLower(tag)) {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 0:
		detail := "no " + what + " record at " + name
		if err != nil && !isNotFound(err) {
			detail += " (" + err.Error() + ")"
		}
		d.add("dns", Problem, dom, detail, "publish: "+want.String())
	case len(found) > 1:
		d.add("dns", Problem, dom, fmt.Sprintf("%d %s records at %s: receivers treat that as an error", len(found), what, name),
			"keep only one: "+want.String())
	default:
		if check != nil {
			if sev, msg := check(found[0]); sev != "" {
				d.add("dns", sev, dom, msg+" (found: "+found[0]+")", "publish: "+want.String())
				return
			}
		}
		d.add("dns", OK, dom, what+" record present", "")
	}
}

// mtastsID compares a published _mta-sts id with the id of the policy
// Petrel serves (want): senders refetch the policy only when the id
// changes (RFC 8461 3.1), so a stale id keeps them on the old policy.
// A missing record is optionalPolicies' business.
func (d *doctor) mtastsID(ctx context.Context, dom, name string, want msgauth.Record) {
	txts, _ := d.opt.Resolver.LookupTXT(ctx, name)
	wantID := stsID(want.Value)
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		if got := stsID(t); got != wantID {
			d.add("dns", Warning, dom, "the published MTA-STS id "+got+" is not the id of the policy Petrel serves ("+wantID+
				"): senders that cached an older policy keep it", "publish: "+want.String())
		}
		return
	}
}

// stsID is the id= field of an MTA-STS record.
func stsID(v string) string {
	for _, f := range strings.Split(v, ";") {
		if k, val, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k == "id" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

// sameAddresses checks that an autoconfig name reaches this server.
func (d *doctor) sameAddresses(ctx context.Context, dom, name string, want msgauth.Record) {
	got, err := d.opt.Resolver.LookupIPAddr(ctx, name)
	if err != nil || len(got) == 0 {
		d.add("dns", Warning, dom, name+" does not resolve: mail clients cannot set themselves up", "publish: "+want.String())
		return
	}
	hostIPs, _ := d.opt.Resolver.LookupIPAddr(ctx, d.hostname())
	for _, a := range got {
		for _, h := range hostIPs {
			if a.IP.Equal(h.IP) {
				d.add("dns", OK, dom, name+" reaches this server", "")
				return
			}
		}
	}
	d.add("dns", Warning, dom, name+" resolves elsewhere than "+d.hostname(), "publish: "+want.String())
}

// optionalPolicies checks MTA-STS and TLS-RPT where the admin published
// them: a broken record is worse than none.
func (d *doctor) optionalPolicies(ctx context.Context, dom string) {
	if txts, _ := d.opt.Resolver.LookupTXT(ctx, "_mta-sts."+dom); len(txts) > 0 {
		v := strings.Join(txts, "")
		switch {
		case !strings.HasPrefix(v, "v=STSv1"):
			d.add("dns", Problem, dom, "_mta-sts."+dom+" is not an MTA-STS record: "+v, `publish "_mta-sts.`+dom+`. TXT \"v=STSv1; id=20260101000000\"" or remove it (RFC 8461 3.1)`)
		case !strings.Contains(v, "id="):
			d.add("dns", Problem, dom, "the MTA-STS record has no id", "add id=<a new value each time the policy changes> (RFC 8461 3.1)")
		default:
			if ips, err := d.opt.Resolver.LookupIPAddr(ctx, "mta-sts."+dom); err != nil || len(ips) == 0 {
				d.add("dns", Problem, dom, "MTA-STS is announced but mta-sts."+dom+" does not resolve, so senders cannot fetch the policy",
					"publish mta-sts."+dom+" pointing at the HTTPS server holding /.well-known/mta-sts.txt, or remove _mta-sts."+dom)
			} else {
				d.add("dns", OK, dom, "MTA-STS record present", "")
			}
		}
	}
	if txts, _ := d.opt.Resolver.LookupTXT(ctx, "_smtp._tls."+dom); len(txts) > 0 {
		v := strings.Join(txts, "")
		if !strings.HasPrefix(v, "v=TLSRPTv1") || !strings.Contains(v, "rua=") {
			d.add("dns", Problem, dom, "_smtp._tls."+dom+" is not a valid TLS-RPT record: "+v,
				`publish "_smtp._tls.`+dom+`. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@`+dom+`\"" (RFC 8460 3)`)
		} else {
			d.add("dns", OK, dom, "TLS-RPT record present", "")
		}
	}
}

// dkimKey is the p= tag of a DKIM record, without spaces.
func dkimKey(v string) string {
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.TrimSpace(k) == "p" {
			return strings.Join(strings.Fields(val), "")
		}
	}
	return ""
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// outbound dials the named host's port 25: many providers block it.
func (d *doctor) outbound(ctx context.Context) {
	addr := d.opt.Outbound
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "25")
	}
	banner, err := smtpBanner(ctx, addr, d.opt.Timeout)
	if err != nil {
		fix := "your provider may block outbound port 25: ask them to open it, or send through a relay (RELAYHOST, RELAYUSER, RELAYPASSWORD)"
		if d.cfg.RelayHost != "" {
			fix = "RELAYHOST is set, so outbound mail does not need port 25; check that the relay answers instead"
		}
		d.add("ports", Problem, "outbound 25", "cannot reach "+addr+": "+err.Error(), fix)
		return
	}
	d.add("ports", OK, "outbound 25", addr+" answers: "+banner, "")
}

// store checks that the database answers and the queue moves.
func (d *doctor) store(ctx context.Context) {
	if err := d.opt.Store.Ping(ctx); err != nil {
		d.add("store", Problem, "database", "the database does not answer: "+err.Error(), "check DB_FLAVOR/DB_HOST (or DATA_DIR/main.db) and the database server's log")
		return
	}
	d.add("store", OK, "database", "answers", "")
	items, err := d.opt.Store.ListQueueEntries(ctx)
	if err != nil {
		d.add("queue", Problem, "queue", "cannot read the queue: "+err.Error(), "check the database")
		return
	}
	now := d.opt.Now()
	var deferred, held int
	var oldest time.Time
	errs := map[string]int{}
	for _, it := range items {
		if it.Held {
			held++
		}
		if it.Attempts > 0 {
			deferred++
			if it.LastError != "" {
				errs[firstLineOf(it.LastError)]++
			}
		}
		if oldest.IsZero() || it.CreatedAt.Before(oldest) {
			oldest = it.CreatedAt
		}
	}
	if len(items) == 0 {
		d.add("queue", OK, "queue", "empty", "")
		return
	}
	detail := fmt.Sprintf("%d entries, %d deferred, %d held, oldest %s old", len(items), deferred, held, now.Sub(oldest).Round(time.Minute))
	sev, fix := OK, ""
	if deferred > 0 {
		common, n := "", 0
		for e, k := range errs {
			if k > n || (k == n && e < common) {
				common, n = e, k
			}
		}
		if common != "" {
			detail += "; most common error: " + common
		}
		sev, fix = Warning, "petrel queue list shows each entry's last error; check outbound port 25 (petrel doctor --outbound HOST) or RELAYHOST"
	}
	if now.Sub(oldest) > 24*time.Hour && deferred > 0 {
		sev = Problem
	}
	d.add("queue", sev, "queue", detail, fix)
}

// bodyStore probes the BLOB_S3_* bucket as a delivery would use it.
func (d *doctor) bodyStore(ctx context.Context) {
	subject := "S3 bucket " + d.opt.Bodies.String()
	if err := d.opt.Bodies.Probe(ctx); err != nil {
		d.add("store", Problem, subject, "the body store fails: "+err.Error()+"; until it works, messages over the inline limit are refused with 451 4.3.0 (senders retry) and such bodies cannot be read",
			"check BLOB_S3_ENDPOINT, BLOB_S3_TLS, BLOB_S3_BUCKET (it must exist), BLOB_S3_REGION and the keys' rights (list, get, put, delete)")
		return
	}
	d.add("store", OK, subject, "HEAD bucket, PUT and DELETE of a probe object succeeded", "")
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// disk checks the free space on DATA_DIR against DISK_RESERVE.
func (d *doctor) disk() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.cfg.DataDir, &st); err != nil {
		d.add("disk", Problem, d.cfg.DataDir, "cannot read the free space: "+err.Error(), "check DATA_DIR")
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	total := int64(st.Blocks) * int64(st.Bsize)
	reserve := d.cfg.DiskReserve
	detail := fmt.Sprintf("%s free of %s", humanSize(free), humanSize(total))
	switch {
	case free < reserve:
		d.add("disk", Problem, d.cfg.DataDir, detail+", less than DISK_RESERVE ("+humanSize(reserve)+"): new mail is refused",
			"free space on this filesystem or move DATA_DIR; expunge old mail")
	case free < 2*reserve || (total > 0 && free*20 < total):
		d.add("disk", Warning, d.cfg.DataDir, detail+": running low", "free space before it falls under DISK_RESERVE ("+humanSize(reserve)+")")
	default:
		d.add("disk", OK, d.cfg.DataDir, detail, "")
	}
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// dialOnly checks that addr accepts a connection.
func dialOnly(ctx context.Context, addr string, timeout time.Duration) error {
	addr = localAddr(addr)
	c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
	return c.Close()
}

// smtpBanner dials addr and reads the 220 greeting.
func smtpBanner(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "220") {
		return "", fmt.Errorf("greeting %q", line)
	}
	return line, nil
}

// ehloOn returns the EHLO keywords of the SMTP server at addr.
func ehloOn(ctx context.Context, addr string, timeout time.Duration) ([]string, error) {
	c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "EHLO doctor.invalid\r\n"); err != nil {
		return nil, err
	}
	var kw []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || !strings.HasPrefix(line, "250") {
			return nil, fmt.Errorf("EHLO: %q", line)
		}
		kw = append(kw, line[4:])
		if line[3] == ' ' {
			break
		}
	}
	_, _ = io.WriteString(c, "QUIT\r\n")
	return kw[1:], nil
}

// Problems counts the findings that need action.
func Problems(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == Problem {
			n++
		}
	}
	return n
}

// WriteText prints the findings for a person: grouped by area, each
// problem and warning with its fix.
func WriteText(w io.Writer, fs []Finding) {
	area := ""
	for _, f := range fs {
		if f.Area != area {
			area = f.Area
			fmt.Fprintf(w, "\n%s:\n", strings.ToUpper(area[:1])+area[1:])
		}
		mark := map[string]string{OK: "ok     ", Info: "info   ", Warning: "WARNING", Problem: "PROBLEM"}[f.Severity]
		fmt.Fprintf(w, "  %s %s: %s\n", mark, f.Subject, f.Detail)
		if f.Fix != "" && f.Severity != OK {
			fmt.Fprintf(w, "          fix: %s\n", f.Fix)
		}
	}
	n, warn := Problems(fs), 0
	for _, f := range fs {
		if f.Severity == Warning {
			warn++
		}
	}
	if n == 0 && warn == 0 {
		fmt.Fprintln(w, "\nNo problems found.")
	} else {
		fmt.Fprintf(w, "\n%d problem(s), %d warning(s).\n", n, warn)
	}
}

// WriteJSON prints the findings for scripts.
func WriteJSON(w io.Writer, fs []Finding) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Problems int       `json:"problems"`
		Findings []Finding `json:"findings"`
	}{Problems(fs), fs})
}
