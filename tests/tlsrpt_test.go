package tests

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

const tlsrptJSON = `{"organization-name":"Company-X","date-range":{"start-datetime":"2026-12-04T00:00:00Z","end-datetime":"2026-12-04T23:59:59Z"},
"contact-info":"sts-reporting@company-x.example","report-id":"5065427c-23d3-47ca-b6e0-946ea0e8c4be",
"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mail.example.test","max_age: 86400"],
"policy-domain":"example.test","mx-host":["mail.example.test"]},
"summary":{"total-successful-session-count":5326,"total-failure-session-count":303},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"2001:db8:abcd:12::1","receiving-mx-hostname":"mail.example.test","failed-session-count":303}]}]}`

// tlsrptMail is an RFC 8460 5.3 report message with gz as the
// application/tlsrpt+gzip attachment.
func tlsrptMail(gz []byte) string {
	enc := base64.StdEncoding.EncodeToString(gz)
	var b64 strings.Builder
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc + "\r\n")
	return "From: tlsrpt@company-x.example\r\nTo: postmaster@example.test\r\n" +
		"Subject: Report Domain: example.test Submitter: company-x.example Report-ID: <5065427c>\r\n" +
		"TLS-Report-Domain: example.test\r\nTLS-Report-Submitter: company-x.example\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report from company-x.example\r\n" +
		"--b1\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"company-x.example!example.test!1764806400!1764892799.json.gz\"\r\n\r\n" +
		b64.String() + "--b1--\r\n"
}

// TestTLSRPTReceived mails TLS-RPT reports to the reporting address over
// port 25: a good one is accepted, parsed in the background and listed by
// petrel tlsrpt; a malformed one is accepted all the same (it is mail) and
// refused in the log, and the server goes on.
func TestTLSRPTReceived(t *testing.T) {
	s := newServer(t, nil)
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("", "user", "postmaster", "example.test", "secret-pw-1")
	s.start()

	var gzBuf bytes.Buffer
	zw := gzip.NewWriter(&gzBuf)
	_, _ = zw.Write([]byte(tlsrptJSON))
	_ = zw.Close()
	send := func(msg string) {
		t.Helper()
		c, err := smtp.Dial(s.addr[25])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// As a sending MTA would: STARTTLS without checking the
		// self-signed certificate, then the 250 after DATA.
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // test server, self-signed
			t.Fatal(err)
		}
		if err := c.Mail("tlsrpt@company-x.example"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("postmaster@example.test"); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("DATA not accepted: %v\n%s", err, s.logs())
		}
		_ = c.Quit()
	}
	send(tlsrptMail([]byte("\x1f\x8b this is no gzip stream")))
	send(tlsrptMail(gzBuf.Bytes()))
	send(tlsrptMail(gzBuf.Bytes())) // the same report twice is kept once

	type row struct {
		Organization   string `json:"organization"`
		ReportID       string `json:"report_id"`
		PolicyDomain   string `json:"policy_domain"`
		PolicyType     string `json:"policy_type"`
		Successful     int64  `json:"successful_sessions"`
		Failed         int64  `json:"failed_sessions"`
		Recipient      string `json:"recipient"`
		FailureDetails []struct {
			ResultType string `json:"result-type"`
		} `json:"failure_details"`
	}
	var list []row
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := s.mustCLI("", "tlsrpt", "--json", "--domain", "example.test")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("petrel tlsrpt --json: %v\n%s", err, out)
		}
		if len(list) > 0 && strings.Count(s.logs(), "TLS-RPT: report received") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report never listed:\n%s", s.logs())
		}
		time.Sleep(100 * time.Millisecond) // polling the background parser
	}
	if len(list) != 1 {
		t.Fatalf("%d rows, want 1 (one report, sent twice): %+v", len(list), list)
	}
	r := list[0]
	if r.Organization != "Company-X" || r.PolicyDomain != "example.test" || r.PolicyType != "sts" || r.Successful != 5326 ||
		r.Failed != 303 || r.Recipient != "postmaster@example.test" || len(r.FailureDetails) != 1 || r.FailureDetails[0].ResultType != "certificate-expired" {
		t.Errorf("listed %+v", r)
	}
	table := s.mustCLI("", "tlsrpt")
	if !strings.Contains(table, "Company-X") || !strings.Contains(table, "sts/testing") || !strings.Contains(table, "failed: certificate-expired x303") {
		t.Errorf("table:\n%s", table)
	}
	if !s.waitLog("TLS-RPT: report refused") {
		t.Errorf("the malformed report was not refused in the log:\n%s", s.logs())
	}
	if err := s.stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, s.logs())
	}
}
