package msgauth

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// checkDMARC evaluates RFC 7489 for the From domain: the policy record
// (the From domain's, else its organisational domain's with sp=), then
// identifier alignment of SPF and DKIM (relaxed or strict, 3.1).
func (v *Verifier) checkDMARC(ctx context.Context, res dnsAdapter, r *Result, headerRead bool) DMARCOutcome {
	switch {
	case !headerRead:
		return DMARCOutcome{Outcome: Outcome{Result: PermError, Reason: "header too large or malformed"}}
	case r.From == "" && len(r.FromAll) == 0:
		return DMARCOutcome{Outcome: Outcome{Result: None, Reason: "no From address"}}
	case r.From == "":
		// RFC 7489 6.6.1: several From fields or authors of different
		// domains cannot be evaluated.
		return DMARCOutcome{Outcome: Outcome{Result: PermError, Reason: "not exactly one From domain"}}
	}
	from := r.From
	out := DMARCOutcome{Outcome: Outcome{Domain: from}}
	org := OrgDomain(from)
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return res.LookupTXT(ctx, name) }}

	rec, err := dmarc.LookupWithOptions(from, lookup)
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) && org != from {
		rec, err = dmarc.LookupWithOptions(org, lookup)
		sub = true
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		out.Result, out.Reason = None, "no DMARC record"
		return out
	case dmarc.IsTempFail(err):
		out.Result, out.Reason = TempError, "DMARC record look-up failed"
		return out
	case err != nil:
		out.Result, out.Reason = PermError, strings.TrimPrefix(err.Error(), "dmarc: ")
		return out
	}
	out.Policy = string(rec.Policy)
	if sub && rec.SubdomainPolicy != "" {
		out.Policy = string(rec.SubdomainPolicy)
	}

	// Identifier alignment (3.1.1, 3.1.2).
	strictSPF := rec.SPFAlignment == dmarc.AlignmentStrict
	strictDKIM := rec.DKIMAlignment == dmarc.AlignmentStrict
	temp := false
	if aligned(r.SPF.Domain, from, strictSPF) {
		switch r.SPF.Result {
		case Pass:
			out.Result, out.Reason = Pass, "SPF aligned ("+r.SPF.Domain+")"
			return out
		case TempError:
			temp = true
		}
	}
	for _, d := range r.DKIM {
		if !aligned(d.Domain, from, strictDKIM) {
			continue
		}
		switch d.Result {
		case Pass:
			out.Result, out.Reason = Pass, "DKIM aligned ("+d.Domain+")"
			return out
		case TempError:
			temp = true
		}
	}
	if temp {
		// An aligned identifier could not be checked: do not apply a
		// policy because of our own DNS trouble.
		out.Result, out.Reason = TempError, "aligned SPF or DKIM check failed temporarily"
		return out
	}
	out.Result, out.Reason = Fail, "no aligned SPF or DKIM pass"
	out.Applied = out.Policy
	// pct (6.6.4): outside the sample the next gentler policy applies.
	if rec.Percent != nil && *rec.Percent < 100 && v.o.Percent() >= *rec.Percent {
		switch out.Policy {
		case string(dmarc.PolicyReject):
			out.Applied = string(dmarc.PolicyQuarantine)
		case string(dmarc.PolicyQuarantine):
			out.Applied = string(dmarc.PolicyNone)
		}
	}
	return out
}

// OrgDomain is a domain's organisational domain (RFC 7489 3.2): one label
// below its public suffix, from the Public Suffix List. A name that is
// itself a public suffix is its own organisational domain.
func OrgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned is identifier alignment: strict means the same domain, relaxed
// the same organisational domain.
func aligned(id, from string, strict bool) bool {
	id = normDomain(id)
	if id == "" {
		return false
	}
	if strict {
		return id == from
	}
	return id == from || OrgDomain(id) == OrgDomain(from)
}

// addressDomains returns the normalised domain of every address in an
// address-list header value (invalid ones are skipped).
func addressDomains(value string) []string {
	if d, ok := simpleAddressDomain(value); ok {
		if d = normDomain(d); d == "" {
			return nil
		}
		return []string{d}
	}
	return parsedAddressDomains(value)
}

// parsedAddressDomains is addressDomains by net/mail's parser, for any
// address list.
func parsedAddressDomains(value string) []string {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	list, err := p.ParseList(value)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range list {
		i := strings.LastIndexByte(a.Address, '@')
		if i < 0 {
			continue
		}
		if d := normDomain(a.Address[i+1:]); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// simpleAddressDomain reads the domain of the From values most mail has,
// "local@domain" and "Display Name <local@domain>", in plain ASCII
// (atoms only: no quotes, comments, encoded words or lists), without
// net/mail's parser. Anything else is not ok, and goes to the parser;
// FuzzSimpleAddressDomain holds the two to the same domains.
func simpleAddressDomain(v string) (string, bool) {
	v = strings.Trim(v, " \t")
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if !strings.HasSuffix(v, ">") {
			return "", false
		}
		for _, c := range []byte(v[:i]) {
			if c != ' ' && c != '\t' && !phraseAtext(c) {
				return "", false
			}
		}
		v = v[i+1 : len(v)-1]
	}
	at := strings.IndexByte(v, '@')
	if at < 0 || !dotAtom(v[:at], isAtext) || !dotAtom(v[at+1:], isLDH) {
		return "", false
	}
	return v[at+1:], true
}

// dotAtom: one or more runs of ok bytes, joined by single dots.
func dotAtom(s string, ok func(byte) bool) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !ok(s[i]) {
			return false
		}
	}
	return true
}

// phraseAtext is a display-name byte of a word needing no decoding:
// atext but "=" and "?", which could start an encoded word.
func phraseAtext(c byte) bool {
	return isAtext(c) && c != '=' && c != '?'
}

// isAtext is RFC 5322 3.2.3 atext, ASCII only.
func isAtext(c byte) bool {
	return isLDH(c) || strings.IndexByte("!#$%&'*+/=?^_`{|}~", c) >= 0
}

// isLDH: letters, digits and hyphens, a domain label's bytes.
func isLDH(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

func randPercent() int { return rand.IntN(100) }
