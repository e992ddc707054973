package tlspolicy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlspolicy"
	"github.com/petrelmail/petrel/internal/tlspolicy/tlspolicytest"
)

func TestParseRUA(t *testing.T) {
	for _, tc := range []struct {
		txts []string
		want string
	}{
		{[]string{"v=TLSRPTv1; rua=mailto:reports@example.com"}, "mailto:reports@example.com"},
		{[]string{"v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@x.test,https://r.x.test/tlsrpt"}, "mailto:a@x.test https://r.x.test/tlsrpt"},
		{[]string{"v=TLSRPTv1; rua=mailto:tls%2Brpt@x.test"}, "mailto:tls+rpt@x.test"},
		{[]string{"v=TLSRPTv1; rua=ftp://x.test/"}, ""},
		{[]string{"v=TLSRPTv1; rua=mailto:nobody"}, ""},
		{[]string{"v=TLSRPTv1;"}, ""},
		{[]string{"v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1; rua=mailto:b@x.test"}, ""},
		{nil, ""},
	} {
		rua, err := tlspolicy.ParseRUA(tc.txts)
		got := strings.Join(rua, " ")
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParseRUA(%q) = %q, %v; want %q", tc.txts, got, err, tc.want)
		}
	}
}

func FuzzParseRUA(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:reports@example.com,https://example.com/x")
	f.Add("v=TLSRPTv1;rua=mailto:%40@")
	f.Fuzz(func(t *testing.T, s string) {
		rua, err := tlspolicy.ParseRUA([]string{s})
		if err != nil {
			return
		}
		for _, u := range rua {
			if !strings.HasPrefix(u, "mailto:") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("rua %q accepted", u)
			}
			if strings.ContainsAny(u, "\r\n") {
				t.Fatalf("rua %q has a line break", u)
			}
		}
	})
}

type sent struct {
	mu   sync.Mutex
	rcpt []string
	msgs [][]byte
}

func (s *sent) send(_ context.Context, rcpt string, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcpt = append(s.rcpt, rcpt)
	s.msgs = append(s.msgs, msg)
	return nil
}

// reportOf takes the gzipped JSON out of a report mail.
func reportOf(t *testing.T, raw []byte) (*mail.Message, tlspolicy.Report) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var rep tlspolicy.Report
	found := false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "application/tlsrpt+gzip") {
			continue
		}
		// multipart decodes quoted-printable only; base64 is ours.
		b, _ := io.ReadAll(p)
		dec := make([]byte, len(b))
		n, err := base64Decode(dec, b)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(dec[:n]))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(zr).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatal("no application/tlsrpt+gzip part")
	}
	return m, rep
}

func TestReporterSendsDailyReport(t *testing.T) {
	dns := dnstest.New(t)
	var posted []byte
	https := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		posted, _ = io.ReadAll(r.Body)
	}))
	defer https.Close()
	dns.Add(t, `_smtp._tls.dane.test. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@dane.test,`+https.URL+`/report"`,
		`_smtp._tls.bad.test. TXT "v=TLSRPTv1; rua=gopher://x"`)
	st := tlspolicytest.NewMemStore()
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	sts := "version: STSv1\nmode: enforce\nmx: mx1.dane.test\nmax_age: 600"
	st.AddTLSResults(t.Context(), []store.TLSResult{
		{Day: day, PolicyDomain: "dane.test", PolicyType: "sts", PolicyString: sts, MXHost: "mx1.dane.test", Count: 7},
		{Day: day, PolicyDomain: "dane.test", PolicyType: "sts", PolicyString: sts, MXHost: "mx1.dane.test", ResultType: "certificate-expired", ReceivingIP: "192.0.2.7", Detail: "x509: expired", Count: 2},
		{Day: day, PolicyDomain: "norua.test", PolicyType: "no-policy-found", Count: 3},
		{Day: day, PolicyDomain: "bad.test", PolicyType: "no-policy-found", Count: 3},
		{Day: day.Add(24 * time.Hour), PolicyDomain: "dane.test", PolicyType: "sts", PolicyString: sts, Count: 99},
	})
	var out sent
	r := tlspolicy.NewReporter(tlspolicy.ReporterOptions{Store: st, Resolver: dns.Resolver(), Organization: "petrel.test",
		From: "postmaster@petrel.test", Send: out.send, HTTPClient: https.Client()})
	if err := r.SendDay(t.Context(), day.Add(13*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(out.msgs) != 1 || out.rcpt[0] != "tlsrpt@dane.test" {
		t.Fatalf("sent to %v; want one report to tlsrpt@dane.test", out.rcpt)
	}
	m, rep := reportOf(t, out.msgs[0])
	if m.Header.Get("TLS-Report-Domain") != "dane.test" || m.Header.Get("TLS-Report-Submitter") != "petrel.test" ||
		!strings.HasPrefix(m.Header.Get("Subject"), "Report Domain: dane.test Submitter: petrel.test Report-ID: <") {
		t.Errorf("headers %v", m.Header)
	}
	if len(rep.Policies) != 1 {
		t.Fatalf("report %+v; want one policy", rep)
	}
	p := rep.Policies[0]
	if p.Policy.Type != "sts" || len(p.Policy.String) != 4 || p.Summary.Success != 7 || p.Summary.Failure != 2 ||
		len(p.FailureDetails) != 1 || p.FailureDetails[0].ResultType != "certificate-expired" || p.FailureDetails[0].ReceivingIP != "192.0.2.7" {
		t.Errorf("policy result %+v", p)
	}
	if !rep.DateRange.Start.Equal(day) || rep.DateRange.End.Day() != 4 {
		t.Errorf("date range %+v", rep.DateRange)
	}
	zr, err := gzip.NewReader(bytes.NewReader(posted))
	if err != nil {
		t.Fatalf("HTTPS report: %v", err)
	}
	var viaHTTPS tlspolicy.Report
	if err := json.NewDecoder(zr).Decode(&viaHTTPS); err != nil || viaHTTPS.Policies[0].Summary.Success != 7 {
		t.Errorf("HTTPS report %+v, %v", viaHTTPS, err)
	}
	// Another run (or node) does not send it again.
	if err := r.SendDay(t.Context(), day); err != nil || len(out.msgs) != 1 {
		t.Errorf("second run: %v, %d mails", err, len(out.msgs))
	}
}

func base64Decode(dst, src []byte) (int, error) {
	clean := strings.NewReplacer("\r", "", "\n", "").Replace(string(src))
	return base64.StdEncoding.Decode(dst, []byte(clean))
}
