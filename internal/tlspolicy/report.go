package tlspolicy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/store"
)

// TLS-RPT (RFC 8460): once a day the counted results of the previous UTC
// day go to each policy domain that publishes a reporting address in
// _smtp._tls.<domain>: by mail (mailto:, through the outbound queue) or
// by HTTPS POST.

// ParseRUA parses the TXT records at _smtp._tls.<domain> and returns the
// rua URIs (RFC 8460 3). Records not starting with "v=TLSRPTv1" are
// ignored; more than one such record, or none, is an error.
func ParseRUA(txts []string) ([]string, error) {
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=TLSRPTv1") {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0:
		return nil, errors.New("no TLSRPTv1 record")
	case len(recs) > 1:
		return nil, fmt.Errorf("%d TLSRPTv1 records (RFC 8460 3 allows one)", len(recs))
	}
	fields := strings.Split(recs[0], ";")
	if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
		return nil, fmt.Errorf("bad version field %q", fields[0])
	}
	var rua []string
	for _, f := range fields[1:] {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("field %q has no value", f)
		}
		if strings.TrimSpace(k) != "rua" {
			continue
		}
		for _, u := range strings.Split(v, ",") {
			u = strings.TrimSpace(u)
			pu, err := url.Parse(u)
			if err != nil {
				return nil, fmt.Errorf("rua %q: %v", u, err)
			}
			switch strings.ToLower(pu.Scheme) {
			case "mailto":
				addr, err := url.PathUnescape(pu.Opaque)
				if err != nil || !strings.Contains(addr, "@") || strings.ContainsAny(addr, "\r\n<> ") {
					return nil, fmt.Errorf("rua %q: not a mail address", u)
				}
				rua = append(rua, "mailto:"+addr)
			case "https":
				if pu.Host == "" {
					return nil, fmt.Errorf("rua %q: no host", u)
				}
				rua = append(rua, pu.String())
			default:
				return nil, fmt.Errorf("rua %q: scheme must be mailto or https", u)
			}
		}
	}
	if len(rua) == 0 {
		return nil, errors.New("record has no rua")
	}
	return rua, nil
}

// Report is an RFC 8460 4.4 aggregate report.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

type PolicyResult struct {
	Policy         ResultPolicy    `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

type ResultPolicy struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

type Summary struct {
	Success int64 `json:"total-successful-session-count"`
	Failure int64 `json:"total-failure-session-count"`
}

type FailureDetail struct {
	ResultType     string `json:"result-type"`
	SendingIP      string `json:"sending-mta-ip,omitempty"`
	ReceivingMX    string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP    string `json:"receiving-ip,omitempty"`
	Count          int64  `json:"failed-session-count"`
	AdditionalInfo string `json:"additional-information,omitempty"`
}

// BuildReports turns one day's rows into a report per policy domain, with
// one policy entry per policy type and string.
func BuildReports(rows []store.TLSResult, day time.Time, org, contact string) map[string]*Report {
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	type pk struct{ domain, typ, str string }
	policies := map[pk]*PolicyResult{}
	var order []pk
	for _, r := range rows {
		k := pk{r.PolicyDomain, r.PolicyType, r.PolicyString}
		pr := policies[k]
		if pr == nil {
			pr = &PolicyResult{Policy: ResultPolicy{Type: r.PolicyType, Domain: r.PolicyDomain}}
			if r.PolicyString != "" {
				pr.Policy.String = strings.Split(r.PolicyString, "\n")
			}
			policies[k] = pr
			order = append(order, k)
		}
		if r.MXHost != "" && !contains(pr.Policy.MXHost, r.MXHost) {
			pr.Policy.MXHost = append(pr.Policy.MXHost, r.MXHost)
			sort.Strings(pr.Policy.MXHost)
		}
		if r.ResultType == "" {
			pr.Summary.Success += r.Count
			continue
		}
		pr.Summary.Failure += r.Count
		pr.FailureDetails = append(pr.FailureDetails, FailureDetail{ResultType: r.ResultType, SendingIP: r.SendingIP,
			ReceivingMX: r.MXHost, ReceivingIP: r.ReceivingIP, Count: r.Count, AdditionalInfo: r.Detail})
	}
	out := map[string]*Report{}
	for _, k := range order {
		rep := out[k.domain]
		if rep == nil {
			rep = &Report{OrganizationName: org, ContactInfo: contact,
				DateRange: DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
				ReportID:  day.Format("2006-01-02") + "." + k.domain + "." + randomHex(6)}
			out[k.domain] = rep
		}
		rep.Policies = append(rep.Policies, *policies[k])
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ReportStore is what the reporter needs from the store.
type ReportStore interface {
	TLSResults(ctx context.Context, day time.Time) ([]store.TLSResult, error)
	ClaimTLSReport(ctx context.Context, day time.Time, domain string) (bool, error)
	PruneTLSResults(ctx context.Context, before time.Time) error
}

// ReporterOptions configure a Reporter. All but HTTPClient, Logger and
// Now are required.
type ReporterOptions struct {
	Store    ReportStore
	Resolver interface {
		LookupTXT(ctx context.Context, name string) ([]string, error)
	}
	// Organization names the reporter (RFC 8460 4.4 organization-name):
	// the main DOMAIN.
	Organization string
	// From is the report's From and contact-info: postmaster@DOMAIN.
	From string
	// Send hands a report mail to the outbound queue for rcpt.
	Send       func(ctx context.Context, rcpt string, msg []byte) error
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Reporter sends the daily reports.
type Reporter struct {
	o   ReporterOptions
	log *slog.Logger
}

// NewReporter returns a Reporter for o.
func NewReporter(o ReporterOptions) *Reporter {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Reporter{o: o, log: o.Logger}
}

// SendDay sends the reports of day (UTC). Each report is claimed in the
// store first, so that of several nodes one sends it, once.
func (r *Reporter) SendDay(ctx context.Context, day time.Time) error {
	day = day.UTC()
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	rows, err := r.o.Store.TLSResults(ctx, day)
	if err != nil {
		return err
	}
	reports := BuildReports(rows, day, r.o.Organization, r.o.From)
	domains := make([]string, 0, len(reports))
	for d := range reports {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	var errs []error
	for _, d := range domains {
		txts, err := r.o.Resolver.LookupTXT(ctx, "_smtp._tls."+d)
		if err != nil && !dnsres.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("TLS-RPT record of %s: %w", d, err))
			continue
		}
		rua, perr := ParseRUA(txts)
		if err != nil || perr != nil {
			continue // no (valid) reporting address: nothing to send
		}
		ok, err := r.o.Store.ClaimTLSReport(ctx, day, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue // another node sent it
		}
		if err := r.send(ctx, reports[d], d, rua); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Reporter) send(ctx context.Context, rep *Report, domain string, rua []string) error {
	js, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(js)
	zw.Close()
	var errs []error
	for _, u := range rua {
		if addr, ok := strings.CutPrefix(u, "mailto:"); ok {
			msg := r.message(rep, domain, addr, gz.Bytes())
			err = r.o.Send(ctx, addr, msg)
		} else {
			err = r.post(ctx, u, gz.Bytes())
		}
		if err != nil {
			r.log.Warn("tlsrpt: report not sent", "domain", domain, "rua", u, "err", err)
			errs = append(errs, fmt.Errorf("TLS-RPT report for %s to %s: %w", domain, u, err))
			continue
		}
		r.log.Info("tlsrpt: report sent", "domain", domain, "rua", u, "report_id", rep.ReportID, "policies", len(rep.Policies))
	}
	return errors.Join(errs...)
}

// post sends the report by HTTPS (RFC 8460 5.4).
func (r *Reporter) post(ctx context.Context, u string, gz []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := r.o.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP status %s", resp.Status)
	}
	return nil
}

// message builds the report mail (RFC 8460 5.3): multipart/report of
// report-type tlsrpt, a short text and the gzipped JSON.
func (r *Reporter) message(rep *Report, domain, rcpt string, gz []byte) []byte {
	var b bytes.Buffer
	boundary := "=_petrel_tlsrpt_" + randomHex(8)
	begin, end := rep.DateRange.Start.Unix(), rep.DateRange.End.Unix()
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", "<"+r.o.From+">")
	hdr("To", "<"+rcpt+">")
	hdr("Subject", "Report Domain: "+domain+" Submitter: "+r.o.Organization+" Report-ID: <"+rep.ReportID+">")
	hdr("Date", r.o.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	hdr("Message-ID", "<tlsrpt."+rep.ReportID+"@"+r.o.Organization+">")
	hdr("TLS-Report-Domain", domain)
	hdr("TLS-Report-Submitter", r.o.Organization)
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	b.WriteString("Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"" + boundary + "\"\r\n\r\n")
	mw := multipart.NewWriter(&b)
	mw.SetBoundary(boundary)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=us-ascii")
	w, _ := mw.CreatePart(h)
	fmt.Fprintf(w, "This is an aggregate TLS report (RFC 8460) from %s for %s,\r\ncovering %s.\r\n",
		r.o.Organization, domain, rep.DateRange.Start.Format("2006-01-02")+" (UTC)")
	name := r.o.Organization + "!" + domain + "!" + strconv.FormatInt(begin, 10) + "!" + strconv.FormatInt(end, 10) + "!" + rep.ReportID + ".json.gz"
	h = textproto.MIMEHeader{}
	h.Set("Content-Type", "application/tlsrpt+gzip; name=\""+name+"\"")
	h.Set("Content-Disposition", "attachment; filename=\""+name+"\"")
	h.Set("Content-Transfer-Encoding", "base64")
	w, _ = mw.CreatePart(h)
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		io.WriteString(w, enc[:76]+"\r\n")
		enc = enc[76:]
	}
	io.WriteString(w, enc+"\r\n")
	mw.Close()
	return b.Bytes()
}

// Run sends the previous day's reports shortly after each UTC midnight
// (a random delay spreads the load, as RFC 8460 4.1 suggests) and prunes
// rows older than two weeks. It returns when ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	for {
		now := r.o.Now().UTC()
		next := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).Add(24*time.Hour + randomDelay())
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		day := next.Add(-24 * time.Hour)
		if err := r.SendDay(ctx, day); err != nil && ctx.Err() == nil {
			r.log.Warn("tlsrpt: sending reports", "day", day.Format("2006-01-02"), "err", err)
		}
		if err := r.o.Store.PruneTLSResults(ctx, day.Add(-14*24*time.Hour)); err != nil && ctx.Err() == nil {
			r.log.Warn("tlsrpt: pruning results", "err", err)
		}
	}
}

// randomDelay is 5 to 65 minutes.
func randomDelay() time.Duration {
	var b [2]byte
	rand.Read(b[:])
	return 5*time.Minute + time.Duration(int(b[0])<<8|int(b[1]))%3600*time.Second
}
