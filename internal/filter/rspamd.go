package filter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// rspamd's ports (rspamd.conf): the normal worker answers /checkv2 on
// 11333, the controller (learning, and /checkv2 too) on 11334. Mailu's
// ANTISPAM_ADDRESS names a host whose proxy speaks milter on 11332; Petrel
// speaks HTTP, so a bare host means the normal worker's 11333.
const (
	DefaultRspamdPort     = "11333"
	DefaultControllerPort = "11334"
	// DefaultRspamdTimeout bounds one /checkv2 (Postfix's milter
	// timeouts in Mailu are 30 s for the whole message; rspamd usually
	// answers in milliseconds).
	DefaultRspamdTimeout = 20 * time.Second
	// maxRspamdReply bounds the JSON reply read.
	maxRspamdReply = 4 << 20
)

// RspamdOptions configures an RspamdClient.
type RspamdOptions struct {
	// Address is ANTISPAM_ADDRESS: host[:port] of a worker answering
	// /checkv2 (default port 11333).
	Address string
	// Controller is host[:port] of the controller for learning (default:
	// Address's host, port 11334); Password is its password (Mailu:
	// "mailu").
	Controller string
	Password   string
	Timeout    time.Duration // per request; 0: DefaultRspamdTimeout
	// Hostname is our own name, sent as MTA-Name.
	Hostname string
}

// RspamdClient speaks rspamd's HTTP protocol (/checkv2, /learnspam,
// /learnham). It is safe for concurrent use.
type RspamdClient struct {
	check      string // http://host:port
	controller string
	password   string
	hostname   string
	timeout    time.Duration
	http       *http.Client
}

// NewRspamdClient returns a client; the address is checked here.
func NewRspamdClient(opts RspamdOptions) (*RspamdClient, error) {
	addr, err := withDefaultPort(opts.Address, DefaultRspamdPort)
	if err != nil {
		return nil, fmt.Errorf("filter: ANTISPAM_ADDRESS: %w", err)
	}
	ctl := opts.Controller
	if ctl == "" {
		host, _, _ := net.SplitHostPort(addr)
		ctl = host
	}
	ctl, err = withDefaultPort(ctl, DefaultControllerPort)
	if err != nil {
		return nil, fmt.Errorf("filter: rspamd controller: %w", err)
	}
	t := opts.Timeout
	if t <= 0 {
		t = DefaultRspamdTimeout
	}
	tr := &http.Transport{
		Proxy:               nil, // never through an HTTP proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &RspamdClient{
		check:      "http://" + addr,
		controller: "http://" + ctl,
		password:   opts.Password,
		hostname:   opts.Hostname,
		timeout:    t,
		http:       &http.Client{Transport: tr},
	}, nil
}

// withDefaultPort turns host or host:port (IPv6 in brackets) into host:port.
func withDefaultPort(addr, port string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("empty address")
	}
	if h, p, err := net.SplitHostPort(addr); err == nil {
		if h == "" || p == "" {
			return "", fmt.Errorf("%q: host and port needed", addr)
		}
		return addr, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if strings.ContainsAny(h, "/ ") {
		return "", fmt.Errorf("%q is not a host", addr)
	}
	return net.JoinHostPort(h, port), nil
}

// RspamdResult is the part of rspamd's /checkv2 reply Petrel uses.
type RspamdResult struct {
	Action        string  `json:"action"` // "no action", "greylist", "add header", "rewrite subject", "soft reject", "reject"
	Score         float64 `json:"score"`
	RequiredScore float64 `json:"required_score"`
	Symbols       map[string]struct {
		Score   float64  `json:"score"`
		Options []string `json:"options"`
	} `json:"symbols"`
	Messages map[string]any `json:"messages"`
	Milter   struct {
		AddHeaders    map[string]json.RawMessage `json:"add_headers"`
		RemoveHeaders map[string]json.RawMessage `json:"remove_headers"`
	} `json:"milter"`
}

// SMTPMessage is rspamd's messages.smtp_message, "" if none.
func (r *RspamdResult) SMTPMessage() string {
	s, _ := r.Messages["smtp_message"].(string)
	return s
}

// SymbolNames lists the symbols with a non-zero score, sorted, for logs.
func (r *RspamdResult) SymbolNames() []string {
	out := make([]string, 0, len(r.Symbols))
	for n, s := range r.Symbols {
		if s.Score != 0 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// MilterHeaders returns what rspamd asks to add (in a stable order) and
// the names it asks to remove. milter.add_headers values are a string, an
// object {"value": ..., "order": n} or an array of either (rspamd
// milter_headers module).
func (r *RspamdResult) MilterHeaders() (add []Header, remove []string) {
	names := make([]string, 0, len(r.Milter.AddHeaders))
	for n := range r.Milter.AddHeaders {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, v := range headerValues(r.Milter.AddHeaders[n]) {
			if validHeaderName(n) {
				add = append(add, Header{Name: n, Value: sanitizeValue(v)})
			}
		}
	}
	for n := range r.Milter.RemoveHeaders {
		if validHeaderName(n) {
			remove = append(remove, n)
		}
	}
	sort.Strings(remove)
	return add, remove
}

func headerValues(raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var obj struct {
		Value *string `json:"value"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Value != nil {
		return []string{*obj.Value}
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil {
		var out []string
		for _, a := range arr {
			out = append(out, headerValues(a)...)
		}
		return out
	}
	return nil
}

// validHeaderName: RFC 5322 2.2 field-name (printable ASCII, no colon).
func validHeaderName(n string) bool {
	if n == "" || len(n) > 76 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// sanitizeValue keeps a header value on one logical line: CR and LF only
// as part of folding (CRLF followed by white space), never a new field.
func sanitizeValue(v string) string {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\n' && i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t'):
			b.WriteString("\r\n")
		case c == '\n' || c == '\r' || c == 0:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Check posts the message to /checkv2 (rspamd protocol v2: the envelope in
// request headers, the raw message as the body).
func (c *RspamdClient) Check(ctx context.Context, m *Message) (*RspamdResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rc, err := m.Open()
	if err != nil {
		return nil, fmt.Errorf("rspamd: open message: %w", err)
	}
	// Read whole, so the request has an exact Content-Length (Message.Size
	// is the spooled size, before the checks' own header fields).
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("rspamd: read message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.check+"/checkv2", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	h := req.Header
	if m.RemoteIP.IsValid() {
		h.Set("IP", m.RemoteIP.Unmap().String())
	}
	if m.HeloName != "" {
		h.Set("Helo", m.HeloName)
	}
	h.Set("From", m.MailFrom)
	for _, r := range m.Rcpts {
		h.Add("Rcpt", r)
	}
	if m.ID != "" {
		h.Set("Queue-Id", m.ID)
	}
	if c.hostname != "" {
		h.Set("MTA-Name", c.hostname)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRspamdReply))
	if err != nil {
		return nil, fmt.Errorf("rspamd: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd: HTTP %d: %s", resp.StatusCode, firstLine(data))
	}
	return parseRspamdReply(data)
}

// parseRspamdReply decodes a /checkv2 reply.
func parseRspamdReply(data []byte) (*RspamdResult, error) {
	var res RspamdResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("rspamd: bad reply: %w", err)
	}
	if res.Action == "" {
		return nil, errors.New("rspamd: reply without an action")
	}
	return &res, nil
}

func firstLine(b []byte) string {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// Learn teaches rspamd's classifier through the controller: /learnspam or
// /learnham (Mailu: rspamc learn_spam / learn_ham from imapsieve). rspamd
// answers an error for a message it has already learnt; that counts as
// done.
func (c *RspamdClient) Learn(ctx context.Context, spam bool, msg io.Reader) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	path := "/learnham"
	if spam {
		path = "/learnspam"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.controller+path, msg)
	if err != nil {
		return fmt.Errorf("rspamd: %w", err)
	}
	if c.password != "" {
		req.Header.Set("Password", c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("rspamd %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 || bytes.Contains(data, []byte("already learned")) {
		// 200 learnt; 204/208 already learnt as such (rspamd answers
		// "has been already learned as ...").
		return nil
	}
	return fmt.Errorf("rspamd %s: HTTP %d: %s", path, resp.StatusCode, firstLine(data))
}
