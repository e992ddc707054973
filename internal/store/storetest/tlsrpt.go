package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testReceivedTLSReports checks that received TLS-RPT reports are stored
// once, listed newest first and filtered by policy domain.
func testReceivedTLSReports(t *testing.T, open Open) {
	st := open(t)
	defer st.Close()
	rs, ok := st.(store.ReceivedTLSReports)
	if !ok {
		t.Skip("backend keeps no received TLS reports")
	}
	ctx := context.Background()
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	row := func(org, id string, i int, domain string, start time.Time) store.ReceivedTLSReport {
		return store.ReceivedTLSReport{
			ReceivedAt: day.Add(30 * time.Hour), Recipient: "postmaster@example.org", Organization: org, ReportID: id,
			Contact: "mailto:tlsrpt@" + org, Start: start, End: start.Add(24*time.Hour - time.Second), PolicyIndex: i,
			PolicyDomain: domain, PolicyType: "sts", PolicyString: "version: STSv1\nmode: enforce", MXHosts: "mail.example.org",
			Success: 100, Failure: 3, Details: `[{"result-type":"certificate-expired","failed-session-count":3}]`,
		}
	}
	first := []store.ReceivedTLSReport{row("google.com", "r1", 0, "example.org", day), row("google.com", "r1", 1, "example.net", day)}
	n, err := rs.AddReceivedTLSReports(ctx, first)
	if err != nil || n != 2 {
		t.Fatalf("add: %d, %v; want 2", n, err)
	}
	if n, err := rs.AddReceivedTLSReports(ctx, first); err != nil || n != 0 {
		t.Fatalf("the same report again: %d new, %v; want 0", n, err)
	}
	later := day.Add(24 * time.Hour)
	if n, err := rs.AddReceivedTLSReports(ctx, []store.ReceivedTLSReport{row("microsoft.com", "r1", 0, "example.org", later)}); err != nil || n != 1 {
		t.Fatalf("another organisation's report with the same id: %d, %v", n, err)
	}
	all, err := rs.ReceivedTLSReports(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Organization != "microsoft.com" || !all[0].Start.Equal(later) {
		t.Fatalf("all = %+v", all)
	}
	got, err := rs.ReceivedTLSReports(ctx, "example.net")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("example.net: %d rows", len(got))
	}
	want := first[1]
	g := got[0]
	if g.ID == 0 || g.Organization != want.Organization || g.ReportID != want.ReportID || g.PolicyIndex != 1 ||
		g.Success != 100 || g.Failure != 3 || g.Details != want.Details || g.PolicyString != want.PolicyString ||
		g.Contact != want.Contact || g.Recipient != want.Recipient || g.MXHosts != want.MXHosts ||
		!g.End.Equal(want.End) || !g.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("row = %+v, want %+v", g, want)
	}
	if none, err := rs.ReceivedTLSReports(ctx, "nowhere.example"); err != nil || len(none) != 0 {
		t.Errorf("unknown domain: %v, %v", none, err)
	}
}
