package tlspolicy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"
)

// FetchTimeout bounds a policy fetch (RFC 8461 3.3 leaves it to the
// sender; Mailu's resolver waits 4 s, Petrel a little longer).
const FetchTimeout = 10 * time.Second

// fetcher gets policy files over HTTPS.
type fetcher struct {
	client *http.Client
}

func newFetcher(roots *x509.CertPool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *fetcher {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext:         dial,
		TLSHandshakeTimeout: FetchTimeout,
		MaxIdleConns:        10,
		IdleConnTimeout:     30 * time.Second,
		// Proxy settings of the environment do not apply: the policy
		// host's own certificate is what is checked.
		Proxy: nil,
	}
	if tr.DialContext == nil {
		d := &net.Dialer{Timeout: FetchTimeout}
		tr.DialContext = d.DialContext
	}
	return &fetcher{client: &http.Client{
		Transport: tr,
		Timeout:   FetchTimeout,
		// RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// fetchError is a failed fetch, with the TLS-RPT result type it maps to.
type fetchError struct {
	resultType string // sts-webpki-invalid, sts-policy-fetch-error or sts-policy-invalid
	err        error
}

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// fetch gets and parses domain's policy (RFC 8461 3.3): only from
// https://mta-sts.<domain>/.well-known/mta-sts.txt, with a certificate
// valid for that name, status 200, text/plain, at most MaxPolicySize.
func (f *fetcher) fetch(ctx context.Context, domain string) (*Policy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &fetchError{"sts-policy-fetch-error", err}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var cv *tls.CertificateVerificationError
		var hn x509.HostnameError
		if errors.As(err, &cv) || errors.As(err, &hn) {
			return nil, &fetchError{"sts-webpki-invalid", fmt.Errorf("fetching %s: %w", url, err)}
		}
		return nil, &fetchError{"sts-policy-fetch-error", fmt.Errorf("fetching %s: %w", url, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &fetchError{"sts-policy-fetch-error", fmt.Errorf("fetching %s: HTTP status %s", url, resp.Status)}
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, &fetchError{"sts-policy-invalid", fmt.Errorf("fetching %s: Content-Type %q is not text/plain", url, resp.Header.Get("Content-Type"))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, &fetchError{"sts-policy-fetch-error", fmt.Errorf("fetching %s: %w", url, err)}
	}
	if len(body) > MaxPolicySize {
		return nil, &fetchError{"sts-policy-invalid", fmt.Errorf("fetching %s: policy larger than %d bytes", url, MaxPolicySize)}
	}
	p, err := ParsePolicy(string(body))
	if err != nil {
		return nil, &fetchError{"sts-policy-invalid", fmt.Errorf("policy at %s: %w", url, err)}
	}
	return p, nil
}
