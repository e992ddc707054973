package tlspolicy

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TLS-RPT (RFC 8460) results are counted in memory per day, policy, MX
// host, result type and address, and added to the store by Flush (Run
// calls it every minute), so that a busy queue does not write a row per
// session.

type resultKey struct {
	day                            time.Time
	domain, policyType, mx, result string
	sendingIP, receivingIP         string
}

// policyOf returns the TLS-RPT policy type and string of h.
func policyOf(d *Domain, h *Host) (string, string) {
	if h != nil && h.Kind == DANE {
		recs := make([]string, len(h.TLSA))
		for i, r := range h.TLSA {
			recs[i] = r.String()
		}
		return "tlsa", strings.Join(recs, "\n")
	}
	if d != nil && d.STS != nil {
		return "sts", strings.TrimRight(strings.ReplaceAll(d.STS.Text, "\r\n", "\n"), "\n")
	}
	if d != nil && d.stsFailure != "" {
		return "sts", "" // a published policy that could not be fetched or parsed
	}
	return "no-policy-found", ""
}

// report counts one session (resultType "" = success).
func (c *Checker) report(d *Domain, h *Host, sendingIP, receivingIP, resultType, detail string) {
	if c == nil || d == nil || c.o.Store == nil {
		return
	}
	typ, str := policyOf(d, h)
	now := c.o.Now().UTC()
	k := resultKey{day: time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC), domain: d.Name,
		policyType: typ, result: resultType, sendingIP: sendingIP, receivingIP: receivingIP}
	if h != nil {
		k.mx = h.Host
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.counts[k]
	if r == nil {
		r = &store.TLSResult{Day: k.day, PolicyDomain: k.domain, PolicyType: typ, MXHost: k.mx,
			ResultType: resultType, SendingIP: sendingIP, ReceivingIP: receivingIP}
		c.counts[k] = r
	}
	r.PolicyString, r.Detail = str, detail
	r.Count++
}

// Result counts how a session from sendingIP to h at receivingIP went
// (addresses without ports): err nil is a
// success; a *PolicyError, or any other error met while securing the
// connection, a failure. Sessions under no policy are counted too
// (policy type no-policy-found), as RFC 8460 4.3 asks.
func (c *Checker) Result(h *Host, sendingIP, receivingIP string, err error) {
	if c == nil || h == nil {
		return
	}
	if err == nil {
		if !h.lenientFailed {
			c.report(h.domain, h, sendingIP, receivingIP, "", "")
		}
		return
	}
	var pe *PolicyError
	if errors.As(err, &pe) {
		c.report(h.domain, h, sendingIP, receivingIP, pe.ResultType, pe.Msg)
		return
	}
	c.report(h.domain, h, sendingIP, receivingIP, "validation-failure", err.Error())
}

// Refused counts a host refused before any connection (an MX not in an
// MTA-STS policy, a failed TLSA look-up).
func (c *Checker) Refused(d *Domain, host string, err error) {
	var pe *PolicyError
	rt := "validation-failure"
	if errors.As(err, &pe) {
		rt = pe.ResultType
	}
	c.report(d, &Host{Host: host, domain: d}, "", "", rt, err.Error())
}

// Flush adds the counted results to the store.
func (c *Checker) Flush(ctx context.Context) error {
	c.mu.Lock()
	counts := c.counts
	c.counts = map[resultKey]*store.TLSResult{}
	c.mu.Unlock()
	if len(counts) == 0 || c.o.Store == nil {
		return nil
	}
	rs := make([]store.TLSResult, 0, len(counts))
	for _, r := range counts {
		rs = append(rs, *r)
	}
	if err := c.o.Store.AddTLSResults(ctx, rs); err != nil {
		// Put them back for the next flush.
		c.mu.Lock()
		for k, r := range counts {
			if cur := c.counts[k]; cur != nil {
				cur.Count += r.Count
			} else {
				c.counts[k] = r
			}
		}
		c.mu.Unlock()
		return err
	}
	return nil
}
