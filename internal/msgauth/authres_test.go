package msgauth

import (
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

// headerViaAuthres is Header as it was written with go-msgauth's
// formatter, one result at a time: the reference for its output.
func headerViaAuthres(r *Result, remote string) string {
	var parts []authres.Result
	if r.SPF.Result != "" {
		p := &authres.SPFResult{Value: authres.ResultValue(r.SPF.Result), Reason: clean(r.SPF.Reason)}
		if r.SPF.Domain != "" {
			p.From = clean(r.SPF.Domain)
		}
		parts = append(parts, p)
	}
	if r.SPFHelo.Result != "" {
		parts = append(parts, &authres.SPFResult{Value: authres.ResultValue(r.SPFHelo.Result),
			Reason: clean(r.SPFHelo.Reason), Helo: clean(r.SPFHelo.Domain)})
	}
	if len(r.DKIM) == 0 {
		parts = append(parts, &authres.DKIMResult{Value: None})
	}
	for _, d := range r.DKIM {
		parts = append(parts, &authres.DKIMResult{Value: authres.ResultValue(d.Result),
			Reason: clean(d.Reason), Domain: clean(d.Domain), Identifier: clean(d.Identifier)})
	}
	dm := &authres.DMARCResult{Value: authres.ResultValue(r.DMARC.Result), Reason: clean(r.DMARC.Reason), From: clean(r.DMARC.Domain)}
	if dm.Value == "" {
		dm.Value = None
	}
	parts = append(parts, dm)
	if r.IPRev.Result != "" {
		parts = append(parts, &authres.IPRevResult{Value: authres.ResultValue(r.IPRev.Result),
			Reason: clean(r.IPRev.Reason), IP: clean(remote)})
	}
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(clean(r.hostname))
	for _, p := range parts {
		s := authres.Format("x", []authres.Result{p})
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimSpace(strings.TrimPrefix(s, "x; ")))
		if _, ok := p.(*authres.DMARCResult); ok && r.DMARC.Policy != "" {
			b.WriteString(" policy.dmarc=" + r.DMARC.Policy)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// resultOf fills every field of a Result from a few strings.
func resultOf(reason, domain, ident, remote string) (*Result, string) {
	return &Result{
		hostname: "mx.example.test",
		SPF:      Outcome{Result: Pass, Domain: domain, Reason: reason},
		SPFHelo:  Outcome{Result: None, Domain: ident, Reason: "no DNS record found"},
		DKIM: []DKIMOutcome{
			{Outcome: Outcome{Result: Fail, Domain: domain, Reason: reason}, Identifier: ident},
			{Outcome: Outcome{Result: Pass, Domain: "example.org"}},
		},
		DMARC: DMARCOutcome{Outcome: Outcome{Result: Fail, Domain: domain, Reason: reason}, Policy: "reject"},
		IPRev: Outcome{Result: TempError, Reason: reason},
	}, remote
}

// TestHeaderAsAuthres: Header writes what go-msgauth's formatter wrote.
func TestHeaderAsAuthres(t *testing.T) {
	for _, c := range [][4]string{
		{"", "example.org", "@example.org", "192.0.2.1"},
		{"SPF aligned (sender.test)", "sender.test", "user@sender.test", "2001:db8::1"},
		{`a "quoted" reason; with = and \ in it`, "bad domain.test", "x(y)@z", "192.0.2.1"},
		{"tab\tand\r\nnew line", "ünïcode.example", "é@ü.example", ""},
		{"", "", "", ""},
		{strings.Repeat("long ", 60), "a=b", "[1.2.3.4]", "::ffff:1.2.3.4"},
	} {
		r, remote := resultOf(c[0], c[1], c[2], c[3])
		if got, want := r.Header(remote), headerViaAuthres(r, remote); got != want {
			t.Errorf("%q:\n got %q\nwant %q", c, got, want)
		}
	}
	// No DKIM signature, no DMARC result, no SPF.
	r := &Result{hostname: "mx.example.test"}
	if got, want := r.Header(""), headerViaAuthres(r, ""); got != want {
		t.Errorf("empty:\n got %q\nwant %q", got, want)
	}
}

func FuzzHeaderAsAuthres(f *testing.F) {
	f.Add("SPF aligned (sender.test)", "sender.test", "user@sender.test", "2001:db8::1")
	f.Add(`"x" = y`, "a b", "(c)", "")
	f.Fuzz(func(t *testing.T, reason, domain, ident, remote string) {
		r, remote := resultOf(reason, domain, ident, remote)
		if got, want := r.Header(remote), headerViaAuthres(r, remote); got != want {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})
}

func BenchmarkHeader(b *testing.B) {
	r, remote := resultOf("SPF aligned (sender.test)", "sender.test", "user@sender.test", "192.0.2.1")
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Header(remote)
		}
	})
	b.Run("authres", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = headerViaAuthres(r, remote)
		}
	})
}
