package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

// tlsrptCommands is `petrel tlsrpt`: the TLS-RPT reports (RFC 8460) other
// organisations sent about their mail to us.
func tlsrptCommands() []*command {
	return []*command{
		{name: "tlsrpt", args: "", min: 0, max: 0, store: true,
			summary: "List the TLS-RPT reports received from other mail servers.",
			help: `Senders that support TLS-RPT (RFC 8460) mail a daily report to the address
of the _smtp._tls record petrel dns prints (TLSRPT_RUA at DOMAIN): how many
of their sessions to our MX could use TLS under our MTA-STS or DANE
policy, and why the others failed. Petrel parses each one delivered there
and keeps it; this lists them, newest first: reporting organisation, date
range, policy domain and type, successful and failed session counts, and
the failure details.`,
			opts: []opt{
				{short: "-d", long: "--domain", metavar: "DOMAIN", help: "Only reports about this policy domain."},
				{short: "-j", long: "--json", help: "List the reports as JSON."},
			},
			run: runTLSRPT},
	}
}

// tlsrptJSON is one policy of a report in `petrel tlsrpt --json`.
type tlsrptJSON struct {
	Organization   string          `json:"organization"`
	ReportID       string          `json:"report_id"`
	Contact        string          `json:"contact"`
	Start          time.Time       `json:"start"`
	End            time.Time       `json:"end"`
	ReceivedAt     time.Time       `json:"received_at"`
	Recipient      string          `json:"recipient"`
	PolicyDomain   string          `json:"policy_domain"`
	PolicyType     string          `json:"policy_type"`
	PolicyString   []string        `json:"policy_string"`
	MXHosts        []string        `json:"mx_hosts"`
	Successful     int64           `json:"successful_sessions"`
	Failed         int64           `json:"failed_sessions"`
	FailureDetails json.RawMessage `json:"failure_details"`
}

func runTLSRPT(c *call) error {
	rs, ok := c.st.(store.ReceivedTLSReports)
	if !ok {
		return errors.New("this store keeps no TLS reports")
	}
	domain := c.vals["--domain"]
	if domain != "" {
		d, err := mailaddr.NormalizeDomain(domain)
		if err != nil {
			return usagef("--domain: %v", err)
		}
		domain = d
	}
	rows, err := rs.ReceivedTLSReports(c.ctx, domain)
	if err != nil {
		return err
	}
	if c.flag("--json") {
		out := make([]tlsrptJSON, 0, len(rows))
		for _, r := range rows {
			j := tlsrptJSON{Organization: r.Organization, ReportID: r.ReportID, Contact: r.Contact, Start: r.Start, End: r.End,
				ReceivedAt: r.ReceivedAt, Recipient: r.Recipient, PolicyDomain: r.PolicyDomain, PolicyType: r.PolicyType,
				PolicyString: splitNonEmpty(r.PolicyString, "\n"), MXHosts: splitNonEmpty(r.MXHosts, ","),
				Successful: r.Success, Failed: r.Failure, FailureDetails: json.RawMessage("[]")}
			if r.Details != "" && json.Valid([]byte(r.Details)) {
				j.FailureDetails = json.RawMessage(r.Details)
			}
			out = append(out, j)
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(rows) == 0 {
		if domain != "" {
			fmt.Fprintf(c.stdout, "no TLS reports about %s\n", domain)
		} else {
			fmt.Fprintln(c.stdout, "no TLS reports received")
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORGANISATION\tSTART\tEND\tDOMAIN\tPOLICY\tSUCCESSFUL\tFAILED\tREPORT-ID")
	const day = "2006-01-02 15:04Z"
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", oneLine(r.Organization), r.Start.UTC().Format(day), r.End.UTC().Format(day),
			oneLine(r.PolicyDomain), oneLine(r.PolicyLabel()), r.Success, r.Failure, oneLine(r.ReportID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "-- %d report policies\n", len(rows))
	// The failure details, under the report and policy they belong to.
	for _, r := range rows {
		failures := r.FailureLines()
		if len(failures) == 0 {
			continue
		}
		fmt.Fprintf(c.stdout, "%s %s, %s (%s):\n", oneLine(r.Organization), oneLine(r.ReportID), oneLine(r.PolicyDomain), oneLine(r.PolicyLabel()))
		for _, f := range failures {
			fmt.Fprintf(c.stdout, "  %s\n", oneLine(f))
		}
	}
	return nil
}

func splitNonEmpty(s, sep string) []string {
	out := []string{}
	for _, p := range strings.Split(s, sep) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
