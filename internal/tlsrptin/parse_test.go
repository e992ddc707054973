package tlsrptin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

func rfcJSON(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/rfc8460.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func b64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}

// reportMail is an RFC 8460 5.3 message: multipart/report with a
// human-readable part and the report attached.
func reportMail(ctype, cte, disposition, body string) string {
	return "From: tlsrpt@company-x.example\r\nTo: postmaster@company-y.example\r\n" +
		"Subject: Report Domain: company-y.example Submitter: company-x.example Report-ID: <5065427c>\r\n" +
		"TLS-Report-Domain: company-y.example\r\nTLS-Report-Submitter: company-x.example\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is an aggregate TLS report.\r\n" +
		"--b1\r\nContent-Type: " + ctype + "\r\nContent-Transfer-Encoding: " + cte + "\r\n" + disposition +
		"\r\n" + body + "--b1--\r\n"
}

func TestParseForms(t *testing.T) {
	js := rfcJSON(t)
	cases := map[string]string{
		"gzip attachment": reportMail("application/tlsrpt+gzip", "base64",
			"Content-Disposition: attachment; filename=\"company-x.example!company-y.example!1459468800!1459555199.json.gz\"\r\n", b64(gz(t, js))),
		"json attachment": reportMail("application/tlsrpt+json", "7bit", "", string(js)+"\r\n"),
		"json base64 nested": strings.Replace(reportMail("multipart/mixed; boundary=inner", "7bit", "",
			"--inner\r\nContent-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64(js)+"--inner--\r\n"), "", "", 1),
		"generic gzip with .json.gz name": reportMail("application/octet-stream; name=report.json.gz", "base64", "", b64(gz(t, js))),
		"report as the body":              "From: a@company-x.example\r\nSubject: report\r\nContent-Type: application/tlsrpt+json\r\n\r\n" + string(js),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			reps, err := Parse(strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 1 {
				t.Fatalf("%d reports", len(reps))
			}
			r := reps[0]
			if r.OrganizationName != "Company-X" || r.ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" ||
				!r.DateRange.Start.Equal(time.Date(2016, 4, 1, 0, 0, 0, 0, time.UTC)) || len(r.Policies) != 1 {
				t.Fatalf("report %+v", r)
			}
			p := r.Policies[0]
			if p.Policy.Type != "sts" || p.Policy.Domain != "company-y.example" || p.Summary.Success != 5326 || p.Summary.Failure != 303 ||
				len(p.FailureDetails) != 3 || p.FailureDetails[1].ResultType != "starttls-not-supported" || p.FailureDetails[1].FailedSessionCount != 200 ||
				p.FailureDetails[2].FailureReasonCode != "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED" || len(p.Policy.MXHost) != 1 {
				t.Errorf("policy %+v", p)
			}
		})
	}
}

// Our own outgoing reports (internal/tlspolicy) parse back with the same
// counts: the two ends of RFC 8460 agree.
func TestParseOwnReport(t *testing.T) {
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	rows := []store.TLSResult{
		{Day: day, PolicyDomain: "example.test", PolicyType: "sts", PolicyString: "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400", MXHost: "mail.example.test", Count: 7},
		{Day: day, PolicyDomain: "example.test", PolicyType: "sts", PolicyString: "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400", MXHost: "mail.example.test", ResultType: "certificate-expired", SendingIP: "192.0.2.1", ReceivingIP: "192.0.2.2", Count: 2},
	}
	reps := tlspolicy.BuildReports(rows, day, "sender.test", "mailto:postmaster@sender.test")
	rep := reps["example.test"]
	if rep == nil {
		t.Fatalf("no report built: %v", reps)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(strings.NewReader(reportMail("application/tlsrpt+gzip", "base64", "", b64(gz(t, js)))))
	if err != nil {
		t.Fatal(err)
	}
	p := got[0].Policies[0]
	if got[0].OrganizationName != "sender.test" || p.Summary.Success != 7 || p.Summary.Failure != 2 ||
		len(p.FailureDetails) != 1 || p.FailureDetails[0].ResultType != "certificate-expired" {
		t.Errorf("parsed %+v", got[0])
	}
}

func TestParseRefuses(t *testing.T) {
	js := string(rfcJSON(t)) + "\r\n"
	bomb := gz(t, bytes.Repeat([]byte(" "), MaxReportBytes+10))
	for name, tc := range map[string]struct {
		msg  string
		want error
		why  string // in the error text
	}{
		"plain mail":       {"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n", ErrNotReport, "no TLS-RPT report"},
		"not a message":    {"\x00\x01garbage", ErrNotReport, "message"},
		"other attachment": {reportMail("application/pdf", "base64", "", b64([]byte("%PDF"))), ErrNotReport, "no TLS-RPT report"},
		"corrupt gzip":     {reportMail("application/tlsrpt+gzip", "base64", "", b64([]byte("not gzip at all"))), ErrBadReport, "gzip"},
		"bad base64":       {reportMail("application/tlsrpt+gzip", "base64", "", "!!!!\r\n"), ErrBadReport, "illegal base64"},
		"zip bomb":         {reportMail("application/tlsrpt+gzip", "base64", "", b64(bomb)), ErrBadReport, "larger than"},
		"bad json":         {reportMail("application/tlsrpt+json", "7bit", "", "{\"organization-name\": \r\n"), ErrBadReport, "JSON"},
		"no org":           {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, `"Company-X"`, `""`, 1)), ErrBadReport, "no organization-name"},
		"no report id":     {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, `"5065427c-23d3-47ca-b6e0-946ea0e8c4be"`, `""`, 1)), ErrBadReport, "no report-id"},
		"bad policy type":  {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, `"sts"`, `"dane"`, 1)), ErrBadReport, `policy-type "dane"`},
		"negative count":   {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, "5326", "-1", 1)), ErrBadReport, "negative session count"},
		"range reversed":   {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, "2016-04-01T23:59:59Z", "2016-03-01T23:59:59Z", 1)), ErrBadReport, "ends before it starts"},
		"bad date":         {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, "2016-04-01T23:59:59Z", "yesterday", 1)), ErrBadReport, "JSON"},
		"bad domain":       {reportMail("application/tlsrpt+json", "7bit", "", strings.Replace(js, `"company-y.example"`, `"a b"`, 1)), ErrBadReport, "bad policy-domain"},
		"unknown cte":      {reportMail("application/tlsrpt+json", "x-uuencode", "", js), ErrBadReport, "unknown transfer encoding"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.msg))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("err = %v, want %v with %q", err, tc.want, tc.why)
			}
		})
	}
}

type memStore struct {
	mu   sync.Mutex
	rows []store.ReceivedTLSReport
	seen map[string]bool
	fail error
}

func (m *memStore) AddReceivedTLSReports(_ context.Context, rows []store.ReceivedTLSReport) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return 0, m.fail
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	n := 0
	for _, r := range rows {
		k := r.Organization + "\x00" + r.ReportID + "\x00" + string(rune(r.PolicyIndex))
		if !m.seen[k] {
			m.seen[k] = true
			m.rows = append(m.rows, r)
			n++
		}
	}
	return n, nil
}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestReceiver(t *testing.T) {
	st := &memStore{}
	var lb logBuf
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := New(Options{Store: st, Logger: slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: func() time.Time { return now }, QueueLen: 1})
	good := reportMail("application/tlsrpt+gzip", "base64", "", b64(gz(t, rfcJSON(t))))
	open := func(s string) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
	}
	// The queue holds one; a second Offer does not block and says so.
	if !r.Offer("m1", "postmaster@company-y.example", open(good)) {
		t.Fatal("first offer refused")
	}
	if r.Offer("m2", "postmaster@company-y.example", open(good)) {
		t.Fatal("offer beyond the queue accepted")
	}
	if !strings.Contains(lb.String(), "stays in the mailbox unparsed") {
		t.Errorf("full queue not logged: %s", lb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for st.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the worker
	}
	// A bad report and a failing reader: refused and logged, the worker
	// lives on. One at a time: the queue holds one.
	offer := func(id string, o func() (io.ReadCloser, error)) {
		t.Helper()
		for !r.Offer(id, "postmaster@company-y.example", o) {
			if time.Now().After(deadline) {
				t.Fatalf("queue never drained for %s", id)
			}
			time.Sleep(10 * time.Millisecond) // polling the worker
		}
		for !strings.Contains(lb.String(), "msgid="+id+" ") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	offer("m3", open(reportMail("application/tlsrpt+gzip", "base64", "", b64([]byte("junk")))))
	offer("m4", func() (io.ReadCloser, error) { return nil, errors.New("blob gone") })
	offer("m5", open(good))
	cancel()
	<-done
	if st.count() != 1 {
		t.Fatalf("%d rows stored, want 1 (the second copy is a duplicate)", st.count())
	}
	row := st.rows[0]
	if row.Recipient != "postmaster@company-y.example" || row.PolicyDomain != "company-y.example" || row.Success != 5326 ||
		row.Failure != 303 || !row.ReceivedAt.Equal(now) || !strings.Contains(row.Details, `"failure-reason-code":"X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"`) ||
		row.PolicyString != "version: STSv1\nmode: testing\nmx: *.mail.company-y.example\nmax_age: 86400" {
		t.Errorf("row %+v", row)
	}
	logs := lb.String()
	for _, want := range []string{"TLS-RPT: report received", "msgid=m3", "TLS-RPT: report refused", "blob gone", "new=false"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	// A store failure is logged, returned, and not a crash.
	st.fail = errors.New("disk full")
	if _, err := r.Handle(context.Background(), "m6", "postmaster@company-y.example", strings.NewReader(good)); err == nil {
		t.Error("store failure not returned")
	}
}

// Reports still queued when Run's context ends are parsed before it
// returns.
func TestReceiverDrainsAtShutdown(t *testing.T) {
	st := &memStore{}
	r := New(Options{Store: st})
	msg := reportMail("application/tlsrpt+json", "7bit", "", string(rfcJSON(t))+"\r\n")
	if !r.Offer("m1", "postmaster@company-y.example", func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }) {
		t.Fatal("offer refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Run(ctx)
	if st.count() != 1 {
		t.Errorf("%d rows after shutdown, want the queued report", st.count())
	}
}
