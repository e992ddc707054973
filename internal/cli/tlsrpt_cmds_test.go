package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// `petrel tlsrpt` lists the stored reports, as a table with the failure
// details and as JSON, filtered by --domain.
func TestTLSRPTList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("", "domain", "example.com")
	if out := e.ok("", "tlsrpt").stdout; out != "no TLS reports received\n" {
		t.Errorf("empty list: %q", out)
	}
	st := e.store()
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	_, err := st.AddReceivedTLSReports(context.Background(), []store.ReceivedTLSReport{
		{ReceivedAt: day.Add(30 * time.Hour), Recipient: "postmaster@example.com", Organization: "Google Inc.", ReportID: "2026-12-04T00:00:00Z_example.com",
			Contact: "smtp-tls-reporting@google.com", Start: day, End: day.Add(24*time.Hour - time.Second), PolicyDomain: "example.com", PolicyType: "sts",
			PolicyString: "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800", MXHosts: "mail.example.com", Success: 120, Failure: 4,
			Details: `[{"result-type":"certificate-host-mismatch","sending-mta-ip":"209.85.1.1","receiving-mx-hostname":"mail.example.com","receiving-ip":"192.0.2.10","failed-session-count":4}]`},
		{ReceivedAt: day.Add(31 * time.Hour), Recipient: "postmaster@example.com", Organization: "Microsoft", ReportID: "ms-1", Start: day.Add(-24 * time.Hour),
			End: day.Add(-time.Second), PolicyDomain: "alt.example", PolicyType: "no-policy-found", Success: 9},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := e.ok("", "tlsrpt").stdout
	for _, want := range []string{"ORGANISATION", "Google Inc.", "2026-12-04 00:00Z", "sts/enforce", "120", "Microsoft", "no-policy-found",
		"-- 2 report policies",
		"  failed: certificate-host-mismatch x4 mx=mail.example.com receiving-ip=192.0.2.10 sending-ip=209.85.1.1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Google") > strings.Index(out, "Microsoft") {
		t.Errorf("not newest first:\n%s", out)
	}

	var list []struct {
		Organization   string `json:"organization"`
		PolicyDomain   string `json:"policy_domain"`
		Successful     int64  `json:"successful_sessions"`
		Failed         int64  `json:"failed_sessions"`
		PolicyString   []string
		FailureDetails []struct {
			ResultType string `json:"result-type"`
			Count      int64  `json:"failed-session-count"`
		} `json:"failure_details"`
	}
	js := e.ok("", "tlsrpt", "--domain", "Example.COM", "--json").stdout
	if err := json.Unmarshal([]byte(js), &list); err != nil {
		t.Fatalf("--json: %v\n%s", err, js)
	}
	if len(list) != 1 || list[0].Organization != "Google Inc." || list[0].Successful != 120 || list[0].Failed != 4 ||
		len(list[0].FailureDetails) != 1 || list[0].FailureDetails[0].ResultType != "certificate-host-mismatch" || list[0].FailureDetails[0].Count != 4 {
		t.Errorf("--domain example.com --json: %+v", list)
	}
	if out := e.ok("", "tlsrpt", "-d", "nowhere.example").stdout; out != "no TLS reports about nowhere.example\n" {
		t.Errorf("unknown domain: %q", out)
	}
	e.fails(2, "--domain", "tlsrpt", "--domain", "bad..name")
	e.fails(2, "argument", "tlsrpt", "extra")
}
