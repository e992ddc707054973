package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/filter"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/msgauth"
)

// The inbound checks of port 25 (Mailu: rspamd behind Postfix's milter):
// once DATA is spooled, the sender's authentication is verified (SPF,
// DKIM, DMARC, iprev), Mailu's anti-spoofing and DMARC policies are
// applied, the Checker (scanners, greylisting, score) gives its verdict,
// and the message is re-spooled with one Authentication-Results header and
// the verdict's headers before the Deliverer sees it. All of this runs in
// the client's session, before the message joins a group commit, so a
// slow resolver or scanner delays only this client.

// Verifier checks a message's authentication. *msgauth.Verifier
// implements it.
type Verifier interface {
	Verify(ctx context.Context, s msgauth.Session, msg io.Reader) (*msgauth.Result, error)
	Hostname() string
}

// Checker gives the scanners' verdict on an inbound message (rspamd,
// clamd, attachments, greylisting, the built-in score). *filter.Filter
// implements it; nil means no scanners.
type Checker interface {
	Check(ctx context.Context, m *filter.Message) (filter.Verdict, error)
}

// LocalDomains tells Petrel's own domains (domains and alternatives) from
// others, for the anti-spoofing rule.
type LocalDomains interface {
	IsLocal(ctx context.Context, domain string) (bool, error)
}

// ReadableSpool is a Spool that can be read back and take header fields
// on top; the inbound checks need it (*inbound.Spool).
type ReadableSpool interface {
	Spool
	Open() (io.ReadCloser, error)
	Prepend(p []byte) error
}

// checksOn reports whether this message gets the inbound checks: port 25
// only (mail from RELAYNETS arrives there too), never submission.
func (ss *session) checksOn() bool {
	o := &ss.srv.opts
	return o.Role == RoleMX && (o.Verifier != nil || o.Checker != nil)
}

// checked is what the checks decided about one accepted message.
type checked struct {
	sp      Spool // the message to deliver (with the new header fields)
	logArgs []any // results for the one log line of this message
}

// inboundChecks runs the checks on the spooled message. It returns the
// spool to deliver, or the reply that refuses the message (already
// logged). env gets Quarantine, Scored and SpamScore.
func (ss *session) inboundChecks(id string, sp Spool, env *inbound.Envelope) (*checked, error) {
	o := &ss.srv.opts
	rs, ok := sp.(ReadableSpool)
	if !ok {
		return nil, ss.fail("checks", errors.New("smtpd: the spool cannot be read back for the inbound checks"), "msgid", id)
	}
	trusted := ss.inRelayNets()
	remote := ss.tc.Remote().Addr().Unmap()
	args := make([]any, 0, 20) // room for every result; it grew twice per message
	arHeader := ""
	var forged msgauth.FieldFilter // our authserv-id's fields from outside
	var auth filter.AuthSummary
	var res *msgauth.Result // nil without a Verifier

	if o.Verifier != nil {
		rc, err := rs.Open()
		if err != nil {
			return nil, ss.fail("checks", err, "msgid", id)
		}
		res, err = o.Verifier.Verify(ss.ctx, msgauth.Session{RemoteIP: remote, Helo: ss.conn.Hostname(), MailFrom: ss.sender}, rc)
		rc.Close()
		if err != nil {
			return nil, ss.fail("checks", err, "msgid", id)
		}
		arHeader = res.Header(remote.String())
		forged = msgauth.ClaimsUs(o.Verifier.Hostname())
		auth = filter.AuthSummary{
			SPF:             res.SPF.Result,
			DKIMPassDomains: res.DKIMPassDomains(),
			DMARC:           res.DMARC.Result,
			DMARCPolicy:     res.DMARC.Policy,
			FromDomain:      res.From,
			IPRev:           res.IPRev.Result,
		}
		args = append(args, "spf", res.SPF.Result, "dkim", res.DKIMSummary(), "dmarc", res.DMARC.Result,
			"iprev", res.IPRev.Result, "from_domain", res.From, "auth_ms", res.Elapsed.Milliseconds())
		if res.DMARC.Policy != "" {
			args = append(args, "dmarc_policy", res.DMARC.Policy)
		}
		if !trusted {
			rr, quarantine, err := ss.authPolicy(res)
			if err != nil {
				return nil, ss.fail("checks", err, append([]any{"msgid", id}, args...)...)
			}
			if rr != nil {
				return nil, ss.refuse(id, rr, res.DMARC.Reason, args)
			}
			if quarantine {
				env.Quarantine = true
			}
		}
	}

	hasForged, err := spoolHas(rs, res, forged)
	if err != nil {
		return nil, ss.fail("checks", err, "msgid", id)
	}
	open := scannersCopy(rs, arHeader, forged, hasForged)

	var v filter.Verdict
	if o.Checker != nil {
		msg := &filter.Message{
			ID: id, RemoteIP: remote, HeloName: ss.conn.Hostname(), MailFrom: ss.sender,
			Rcpts: ss.rcpts(), Users: ss.mailboxUsers(), Auth: auth, Trusted: trusted, Size: sp.Size(), Open: open,
		}
		var err error
		v, err = o.Checker.Check(ss.ctx, msg)
		if err != nil {
			// Mailu: milter_default_action = tempfail.
			rr := replyChecksUnavailable()
			ss.log.Warn("rejected", append([]any{"stage", "checks", "msgid", id, "from", ss.sender,
				"code", rr.Code, "reply", rr.Message, "action", "tempfail", "err", err.Error()}, args...)...)
			return nil, rr
		}
		if v.Scored {
			env.Scored, env.SpamScore = true, v.Score
			args = append(args, "spam_score", v.Score)
		}
		env.UserScores = v.UserScores // the users' own classifiers
		if v.Virus != "" {
			args = append(args, "virus", v.Virus)
		}
		switch v.Action {
		case filter.Reject:
			return nil, ss.refuse(id, verdictReply(v, 550, "5.7.1", "Message refused by the content filter"), v.Reason, args)
		case filter.TempFail:
			return nil, ss.refuse(id, verdictReply(v, 451, "4.7.1", "Message deferred by the content filter, try again later"), v.Reason, args)
		}
	}

	// Our Authentication-Results and the verdict's fields go on top. The
	// usual message carries none of the fields to leave out, and takes
	// them without a copy; one that does is re-spooled without them.
	top := headerTop(arHeader, v)
	drop := forged.Or(verdictDrop(v.RemoveHeaders))
	has := hasForged
	if !has && len(v.RemoveHeaders) > 0 {
		if has, err = spoolHas(rs, res, drop); err != nil {
			return nil, ss.fail("checks", err, "msgid", id)
		}
	}
	if !has {
		if err := rs.Prepend(top); err != nil {
			return nil, ss.fail("checks", err, "msgid", id)
		}
		return &checked{sp: sp, logArgs: ss.actionArgs(env, args)}, nil
	}
	out, err := o.Deliverer.NewSpool()
	if err != nil {
		return nil, ss.fail("checks", err, "msgid", id)
	}
	if err := respool(out, rs, top, drop); err != nil {
		out.Abort()
		return nil, ss.fail("checks", err, "msgid", id)
	}
	sp.Abort()
	return &checked{sp: out, logArgs: ss.actionArgs(env, args)}, nil
}

// spoolHas reports whether the spooled message's header has a field f
// picks. The verification's reading of the header answers when no field
// has one of f's names, the usual case; otherwise the header is read again.
func spoolHas(rs ReadableSpool, res *msgauth.Result, f msgauth.FieldFilter) (bool, error) {
	if res != nil && res.Lacks(f) {
		return false, nil
	}
	return msgauth.OpenedHas(rs, f)
}

// scannersCopy opens the message as it will be stored, for the scanners:
// our Authentication-Results on top, the forged ones left out. Without
// forged fields that is the header read in front of the spool; with some,
// a message that fits in memory is built once, however often the
// scanners read it (no pipe, no goroutine), and a bigger one streams
// through a pipe.
func scannersCopy(rs ReadableSpool, arHeader string, forged msgauth.FieldFilter, hasForged bool) func() (io.ReadCloser, error) {
	if !hasForged {
		return func() (io.ReadCloser, error) {
			rc, err := rs.Open()
			if err != nil {
				return nil, err
			}
			return readCloser{io.MultiReader(strings.NewReader(arHeader), rc), rc}, nil
		}
	}
	var built []byte
	var builtMu sync.Mutex // the scanners may read at once
	return func() (io.ReadCloser, error) {
		builtMu.Lock()
		defer builtMu.Unlock()
		if built != nil {
			return io.NopCloser(bytes.NewReader(built)), nil
		}
		rc, err := rs.Open()
		if err != nil {
			return nil, err
		}
		if rs.Size() <= buildMax {
			defer rc.Close()
			var b bytes.Buffer
			b.Grow(len(arHeader) + int(rs.Size()))
			b.WriteString(arHeader)
			if _, err := msgauth.CopyWithout(&b, rc, forged); err != nil {
				return nil, err
			}
			built = b.Bytes()
			return io.NopCloser(bytes.NewReader(built)), nil
		}
		pr, pw := io.Pipe()
		go func() {
			defer rc.Close()
			if _, err := io.WriteString(pw, arHeader); err != nil {
				pw.CloseWithError(err)
				return
			}
			_, err := msgauth.CopyWithout(pw, rc, forged)
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// authPolicy applies Mailu's rules to the verification (rspamd
// force_actions.conf): mail whose From or envelope sender is in a local
// domain must pass DMARC even when the domain publishes no record
// (ANTISPOOF_NOAUTH, ANTISPOOF_DMARC_ENFORCE_LOCAL); otherwise the domain's own DMARC policy,
// after pct: reject refuses, quarantine files into Junk (RFC 7489 6.6.3).
func (ss *session) authPolicy(res *msgauth.Result) (rr *smtp.SMTPError, quarantine bool, err error) {
	if ld := ss.srv.opts.LocalDomains; ld != nil && res.DMARC.Result != msgauth.Pass {
		// The From domains, and the envelope's (Mailu's IS_LOCAL_DOMAIN_H
		// and IS_LOCAL_DOMAIN_E).
		doms := slices.Clone(res.FromAll)
		if i := strings.LastIndexByte(ss.sender, '@'); i >= 0 {
			doms = append(doms, strings.ToLower(ss.sender[i+1:]))
		}
		slices.Sort(doms)
		for _, d := range slices.Compact(doms) {
			local, err := ld.IsLocal(ss.ctx, d)
			if err != nil {
				return nil, false, fmt.Errorf("smtpd: local domain look-up: %w", err)
			}
			if !local {
				continue
			}
			if res.DMARC.Result == msgauth.TempError {
				return replyAuthTempFail(d), false, nil
			}
			return replySpoofedLocal(d), false, nil
		}
	}
	if res.DMARC.Result == msgauth.Fail {
		switch res.DMARC.Applied {
		case "reject":
			return replyDMARCReject(res.DMARC.Domain), false, nil
		case "quarantine":
			return nil, true, nil
		}
	}
	return nil, false, nil
}

// refuse logs the one line of a refused message and returns the reply.
func (ss *session) refuse(id string, rr *smtp.SMTPError, reason string, args []any) error {
	action := "reject"
	if rr.Code/100 == 4 {
		action = "tempfail"
	}
	all := append([]any{"stage", "checks", "msgid", id, "from", ss.sender, "rcpts", ss.rcpts(),
		"code", rr.Code, "reply", rr.Message, "action", action}, args...)
	if reason != "" {
		all = append(all, "reason", reason)
	}
	ss.log.Info("rejected", all...)
	return rr
}

func (ss *session) actionArgs(env *inbound.Envelope, args []any) []any {
	action := "accept"
	if env.Quarantine {
		action = "quarantine"
	}
	return append(args, "action", action)
}

// verdictDrop picks the fields the verdict removes, never Received: the
// trace is ours.
func verdictDrop(remove []string) msgauth.FieldFilter {
	names := make([]string, 0, len(remove))
	for _, r := range remove {
		if !strings.EqualFold(r, "Received") {
			names = append(names, r)
		}
	}
	return msgauth.Drop(names...)
}

// buildMax is the largest message the scanners read from memory.
const buildMax = 1 << 20

// respoolBuffer is the write buffer in front of the new spool: a message
// that fits reaches it in one Write, so an in-memory spool allocates
// once instead of growing step by step.
const respoolBuffer = 32 << 10

var respoolWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, respoolBuffer) }}

// headerTop is what goes on top of the checked message: our
// Authentication-Results, then the verdict's fields.
func headerTop(arHeader string, v filter.Verdict) []byte {
	top := []byte(arHeader)
	for _, h := range v.AddHeaders {
		if validFieldName(h.Name) {
			top = append(append(append(append(top, h.Name...), ": "...), foldValue(h.Value)...), "\r\n"...)
		}
	}
	return top
}

// respool writes the final message: top, then the spooled message
// without the dropped fields.
func respool(out Spool, in ReadableSpool, top []byte, drop msgauth.FieldFilter) error {
	out.Grow(int64(len(top)) + in.Size())
	bw := respoolWriters.Get().(*bufio.Writer)
	bw.Reset(out)
	defer func() {
		bw.Reset(nil)
		respoolWriters.Put(bw)
	}()
	if _, err := bw.Write(top); err != nil {
		return err
	}
	rc, err := in.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := msgauth.CopyWithout(bw, rc, drop); err != nil {
		return err
	}
	return bw.Flush()
}

// validFieldName is RFC 5322 2.2's field-name: printable ASCII but colon.
func validFieldName(n string) bool {
	if n == "" || len(n) > 76 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] > '~' || n[i] == ':' {
			return false
		}
	}
	return true
}

// foldValue keeps a scanner's header value on one logical line: CR and
// LF (which could start a new field) become spaces.
func foldValue(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, v)
}

// verdictReply is the reply a Reject or TempFail verdict asks for, with
// Mailu's codes when the verdict leaves them out.
func verdictReply(v filter.Verdict, code int, enhanced, text string) *smtp.SMTPError {
	if v.Code >= 400 && v.Code < 600 && v.Code/100 == code/100 {
		code = v.Code
	}
	if e := parseEnhanced(v.Enhanced); e != nil && e[0] == code/100 {
		if v.Text != "" {
			text = safe(v.Text)
		}
		return &smtp.SMTPError{Code: code, EnhancedCode: *e, Message: text}
	}
	if v.Text != "" {
		text = safe(v.Text)
	}
	e := parseEnhanced(enhanced)
	return &smtp.SMTPError{Code: code, EnhancedCode: *e, Message: text}
}

func parseEnhanced(s string) *smtp.EnhancedCode {
	var a, b, c int
	if n, err := fmt.Sscanf(s, "%d.%d.%d", &a, &b, &c); err != nil || n != 3 || a < 2 || a > 5 || b < 0 || b > 999 || c < 0 || c > 999 {
		return nil
	}
	return &smtp.EnhancedCode{a, b, c}
}

// mailboxUsers lists the local users that get a copy (after aliases), for
// the per-user classifiers.
func (ss *session) mailboxUsers() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range ss.routes {
		for _, mb := range r.Mailboxes {
			if !seen[mb] {
				seen[mb] = true
				out = append(out, mb)
			}
		}
	}
	return out
}
