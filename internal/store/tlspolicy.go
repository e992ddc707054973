package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MTASTSPolicy is a cached MTA-STS policy (RFC 8461 5.1): kept in the
// store so that every node sharing the database uses, and refreshes, the
// same copy.
type MTASTSPolicy struct {
	Domain    string // the recipient domain, lower case
	ID        string // the id of the _mta-sts TXT record it was fetched for
	Text      string // the policy file as fetched
	FetchedAt time.Time
	Expires   time.Time // FetchedAt + max_age
}

// TLSResult counts TLS sessions of one kind to one policy domain on one
// UTC day, for the daily TLS-RPT aggregate report (RFC 8460 4.3).
type TLSResult struct {
	Day          time.Time // midnight UTC
	PolicyDomain string    // the recipient domain
	PolicyType   string    // "sts", "tlsa" or "no-policy-found"
	PolicyString string    // the policy, lines joined with "\n" (the latest seen)
	MXHost       string    // the MX host tried; "" for a failure before any host
	ResultType   string    // "" for a success, else an RFC 8460 4.3 result type
	SendingIP    string
	ReceivingIP  string
	Detail       string // additional-information (the latest seen)
	Count        int64
}

// TLSPolicies is the store's side of outbound TLS policy: the MTA-STS
// cache and the TLS-RPT counters.
type TLSPolicies interface {
	// GetMTASTSPolicy returns domain's cached policy; ErrNotFound if none.
	GetMTASTSPolicy(ctx context.Context, domain string) (*MTASTSPolicy, error)
	// PutMTASTSPolicy stores (replaces) domain's cached policy.
	PutMTASTSPolicy(ctx context.Context, p MTASTSPolicy) error
	// AddTLSResults adds each result's Count to the row with the same
	// day, domain, policy type, MX host, result type and addresses.
	AddTLSResults(ctx context.Context, rs []TLSResult) error
	// TLSResults returns the rows of one day, ordered by policy domain.
	TLSResults(ctx context.Context, day time.Time) ([]TLSResult, error)
	// PruneTLSResults deletes the rows of days before before.
	PruneTLSResults(ctx context.Context, before time.Time) error
	// ClaimTLSReport records that the report of (day, domain) is being
	// sent and reports whether this caller got it: of several nodes, one
	// sends each report.
	ClaimTLSReport(ctx context.Context, day time.Time, domain string) (bool, error)
}

// ReceivedTLSReport is one policy of a TLS-RPT aggregate report another
// organisation sent us (RFC 8460 4.4): a report with several policies is
// several rows sharing Organization and ReportID.
type ReceivedTLSReport struct {
	ID           int64
	ReceivedAt   time.Time
	Recipient    string // the address it was delivered to
	Organization string // organization-name
	ReportID     string // report-id
	Contact      string // contact-info
	Start, End   time.Time
	PolicyIndex  int    // position in the report's policies
	PolicyDomain string // policy-domain, lower case
	PolicyType   string // sts, tlsa or no-policy-found
	PolicyString string // policy-string, lines joined with "\n"
	MXHosts      string // mx-host, comma-separated
	Success      int64  // total-successful-session-count
	Failure      int64  // total-failure-session-count
	Details      string // failure-details as a JSON array ("" = none)
}

// PolicyLabel is the policy type, with the mode of an MTA-STS policy
// ("sts/enforce").
func (r ReceivedTLSReport) PolicyLabel() string {
	label := r.PolicyType
	for _, l := range strings.Split(r.PolicyString, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "mode" {
			label += "/" + strings.TrimSpace(v)
		}
	}
	return label
}

// tlsFailureDetail is the part of RFC 8460 4.4 failure-details shown.
type tlsFailureDetail struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip"`
	ReceivingMXHostname string `json:"receiving-mx-hostname"`
	ReceivingIP         string `json:"receiving-ip"`
	FailedSessionCount  int64  `json:"failed-session-count"`
	AdditionalInfo      string `json:"additional-information"`
	FailureReasonCode   string `json:"failure-reason-code"`
}

// FailureLines describes each failure-details entry on one line, for the
// CLI and the admin pages.
func (r ReceivedTLSReport) FailureLines() []string {
	var details []tlsFailureDetail
	if r.Details != "" {
		_ = json.Unmarshal([]byte(r.Details), &details) // written by our parser; a bad one lists nothing
	}
	var out []string
	for _, d := range details {
		var b strings.Builder
		fmt.Fprintf(&b, "failed: %s x%d", d.ResultType, d.FailedSessionCount)
		for _, kv := range [][2]string{{"mx", d.ReceivingMXHostname}, {"receiving-ip", d.ReceivingIP}, {"sending-ip", d.SendingMTAIP},
			{"reason", d.FailureReasonCode}, {"info", d.AdditionalInfo}} {
			if kv[1] != "" {
				b.WriteString(" " + kv[0] + "=" + kv[1])
			}
		}
		out = append(out, b.String())
	}
	return out
}

// ReceivedTLSReports keeps the TLS-RPT reports others send us.
type ReceivedTLSReports interface {
	// AddReceivedTLSReports stores the rows of one report in one
	// transaction and returns how many were new: a report already stored
	// (same organization, report id and policy index) is not stored twice.
	AddReceivedTLSReports(ctx context.Context, rows []ReceivedTLSReport) (int, error)
	// ReceivedTLSReports lists the rows, newest report first; domain ""
	// lists every policy domain.
	ReceivedTLSReports(ctx context.Context, domain string) ([]ReceivedTLSReport, error)
}
