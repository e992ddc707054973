// Package tlsrptin reads the TLS-RPT aggregate reports (RFC 8460) other
// organisations mail to our reporting address: it finds the report in a
// delivered message (an application/tlsrpt+gzip or +json attachment, or
// the body itself), checks it and stores it, off the delivery path.
package tlsrptin

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Limits on what Parse reads, so a hostile message costs little.
const (
	MaxReportBytes = 8 << 20 // one report's JSON, after gunzip (a zip bomb stops here)
	maxDepth       = 4       // nested multiparts
	maxParts       = 64      // MIME parts looked at in one message
	maxPolicies    = 1000
	maxDetails     = 1000 // failure-details per policy
	maxField       = 1024 // characters of a name, id or address field
)

var (
	// ErrNotReport: the message carries no TLS-RPT report (mail to the
	// reporting address that is something else).
	ErrNotReport = errors.New("no TLS-RPT report in the message")
	// ErrBadReport: a TLS-RPT part that does not decode or does not follow
	// RFC 8460 4.4.
	ErrBadReport = errors.New("bad TLS-RPT report")
)

// Report is an RFC 8460 4.4 aggregate report.
type Report struct {
	OrganizationName string    `json:"organization-name"`
	DateRange        DateRange `json:"date-range"`
	ContactInfo      string    `json:"contact-info"`
	ReportID         string    `json:"report-id"`
	Policies         []Policy  `json:"policies"`
}

// DateRange is the period a report covers.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// Policy is the results under one policy.
type Policy struct {
	Policy         PolicyDesc      `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// PolicyDesc names the policy (RFC 8460 4.4 "policy").
type PolicyDesc struct {
	Type   string      `json:"policy-type"`
	String []string    `json:"policy-string,omitempty"`
	Domain string      `json:"policy-domain"`
	MXHost stringOrSet `json:"mx-host,omitempty"`
}

// Summary counts the sessions.
type Summary struct {
	Success int64 `json:"total-successful-session-count"`
	Failure int64 `json:"total-failure-session-count"`
}

// FailureDetail is one kind of failure (RFC 8460 4.3, 4.4).
type FailureDetail struct {
	ResultType            string `json:"result-type"`
	SendingMTAIP          string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname   string `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo       string `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string `json:"receiving-ip,omitempty"`
	FailedSessionCount    int64  `json:"failed-session-count"`
	AdditionalInformation string `json:"additional-information,omitempty"`
	FailureReasonCode     string `json:"failure-reason-code,omitempty"`
}

// stringOrSet is mx-host: RFC 8460's example has a list, some reporters
// send one string.
type stringOrSet []string

func (s *stringOrSet) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// Parse reads a mail message and returns the TLS-RPT reports it carries:
// every application/tlsrpt+gzip or application/tlsrpt+json part (RFC 8460
// 5.3), at the top level or in (nested) multiparts. It returns
// ErrNotReport when there is none and an error wrapping ErrBadReport when
// a report part is malformed.
func Parse(r io.Reader) ([]Report, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("%w: message: %v", ErrNotReport, err)
	}
	p := &parser{}
	if err := p.entity(textproto.MIMEHeader(msg.Header), msg.Body, 0); err != nil {
		return nil, err
	}
	if len(p.reports) == 0 {
		return nil, ErrNotReport
	}
	return p.reports, nil
}

type parser struct {
	parts   int
	reports []Report
}

// entity handles one MIME entity: recurse into multiparts, decode report
// parts, skip the rest.
func (p *parser) entity(h textproto.MIMEHeader, body io.Reader, depth int) error {
	p.parts++
	if p.parts > maxParts {
		return fmt.Errorf("%w: more than %d MIME parts", ErrBadReport, maxParts)
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return nil // text/plain (RFC 2045 5.2)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil // an unreadable part is not a report part
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxDepth {
			return nil
		}
		boundary := params["boundary"]
		if boundary == "" {
			return nil
		}
		mr := multipart.NewReader(body, boundary)
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				// A broken multipart after a report still yields it.
				return nil
			}
			if err := p.entity(part.Header, part, depth+1); err != nil {
				return err
			}
		}
	}
	gz := false
	switch mt {
	case "application/tlsrpt+json":
	case "application/tlsrpt+gzip":
		gz = true
	case "application/gzip", "application/x-gzip", "application/octet-stream":
		// Some reporters label the attachment generically; the file name
		// still says what it is (RFC 8460 5.3 names it .json.gz).
		name := params["name"]
		if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
			name = dp["filename"]
		}
		if !strings.HasSuffix(strings.ToLower(name), ".json.gz") {
			return nil
		}
		gz = true
	default:
		return nil
	}
	rep, err := decodePart(h.Get("Content-Transfer-Encoding"), body, gz)
	if err != nil {
		return err
	}
	p.reports = append(p.reports, *rep)
	return nil
}

// decodePart undoes the transfer encoding and gzip and parses the JSON.
func decodePart(cte string, body io.Reader, gz bool) (*Report, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &spaceless{r: body})
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "", "7bit", "8bit", "binary":
	default:
		return nil, fmt.Errorf("%w: unknown transfer encoding %q", ErrBadReport, cte)
	}
	if gz {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrBadReport, err)
		}
		defer zr.Close()
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReport, err)
	}
	if len(data) > MaxReportBytes {
		return nil, fmt.Errorf("%w: report larger than %d bytes", ErrBadReport, MaxReportBytes)
	}
	return ParseJSON(data)
}

// spaceless drops the spaces and tabs base64 bodies sometimes carry
// (the decoder itself skips only CR and LF).
type spaceless struct{ r io.Reader }

func (s *spaceless) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// ParseJSON parses and checks one report (RFC 8460 4.4).
func ParseJSON(data []byte) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: JSON: %v", ErrBadReport, err)
	}
	if err := rep.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReport, err)
	}
	return &rep, nil
}

func (r *Report) check() error {
	switch {
	case strings.TrimSpace(r.OrganizationName) == "":
		return errors.New("no organization-name")
	case strings.TrimSpace(r.ReportID) == "":
		return errors.New("no report-id")
	case r.DateRange.Start.IsZero() || r.DateRange.End.IsZero():
		return errors.New("no date-range")
	case r.DateRange.End.Before(r.DateRange.Start):
		return errors.New("date-range ends before it starts")
	case len(r.Policies) == 0:
		return errors.New("no policies")
	case len(r.Policies) > maxPolicies:
		return fmt.Errorf("more than %d policies", maxPolicies)
	}
	for _, f := range []string{r.OrganizationName, r.ReportID, r.ContactInfo} {
		if len(f) > maxField || strings.ContainsAny(f, "\x00\r\n") {
			return errors.New("overlong field or control characters in organization-name, report-id or contact-info")
		}
	}
	for i, p := range r.Policies {
		switch p.Policy.Type {
		case "sts", "tlsa", "no-policy-found":
		default:
			return fmt.Errorf("policy %d: policy-type %q (want sts, tlsa or no-policy-found)", i, p.Policy.Type)
		}
		d := p.Policy.Domain
		if d == "" || len(d) > 255 || strings.ContainsAny(d, " \t\r\n\x00/@") {
			return fmt.Errorf("policy %d: bad policy-domain %q", i, d)
		}
		if p.Summary.Success < 0 || p.Summary.Failure < 0 {
			return fmt.Errorf("policy %d: negative session count", i)
		}
		if len(p.FailureDetails) > maxDetails {
			return fmt.Errorf("policy %d: more than %d failure-details", i, maxDetails)
		}
		for j, fd := range p.FailureDetails {
			if fd.ResultType == "" {
				return fmt.Errorf("policy %d failure %d: no result-type", i, j)
			}
			if fd.FailedSessionCount < 0 {
				return fmt.Errorf("policy %d failure %d: negative failed-session-count", i, j)
			}
		}
	}
	return nil
}
