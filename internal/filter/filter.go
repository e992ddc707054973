package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Options configures a Filter. Every part is optional: a Filter with none
// accepts everything unscored.
type Options struct {
	// Rspamd is ANTISPAM_ADDRESS's client; when set it gives the score
	// and the built-in score and greylisting are not used (Mailu's path).
	Rspamd *RspamdClient
	// Clamd is ANTIVIRUS=clamav's client.
	Clamd *ClamdClient
	// ForbiddenExtensions are refused attachment extensions (nil:
	// ForbiddenExtensions; an empty non-nil slice: none).
	ForbiddenExtensions []string
	// ScanMacros is SCAN_MACROS: refuse Office files with VBA macros.
	ScanMacros bool
	// Builtin is the score without rspamd (auth results, DNSBLs,
	// greylisting, the users' classifiers); nil: none.
	Builtin *Builtin
	Logger  *slog.Logger
}

// Filter gives the verdict on inbound messages. It is safe for
// concurrent use.
type Filter struct {
	rspamd  *RspamdClient
	clamd   *ClamdClient
	attach  *attachScanner
	builtin *Builtin
	log     *slog.Logger
}

// New returns a Filter.
func New(opts Options) *Filter {
	exts := opts.ForbiddenExtensions
	if exts == nil {
		exts = ForbiddenExtensions
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Filter{
		rspamd:  opts.Rspamd,
		clamd:   opts.Clamd,
		attach:  newAttachScanner(exts, opts.ScanMacros),
		builtin: opts.Builtin,
		log:     log,
	}
}

// Replies (RFC 3463 5.7.1 / 4.7.1, Mailu's texts where Postfix or rspamd
// gives one).
func rejectSpam(text string) Verdict {
	if text == "" {
		text = "Spam message rejected"
	}
	return Verdict{Action: Reject, Code: 550, Enhanced: "5.7.1", Text: text}
}

func tempFail(text string) Verdict {
	if text == "" {
		text = "Try again later"
	}
	return Verdict{Action: TempFail, Code: 451, Enhanced: "4.7.1", Text: text}
}

// Check runs the checks in order of cost: attachment names (and macros),
// clamd, then rspamd or the built-in score. A scanner that cannot be
// reached gives TempFail with the cause in Reason (Mailu:
// milter_default_action = tempfail, ANTIVIRUS_FAILED soft reject). The
// error is only for a message that cannot be read.
func (f *Filter) Check(ctx context.Context, m *Message) (Verdict, error) {
	if m == nil || m.Open == nil {
		return Verdict{}, errors.New("filter: message without a body")
	}
	start := time.Now()
	v, err := f.check(ctx, m)
	if err != nil {
		return v, err
	}
	f.logVerdict(m, &v, time.Since(start))
	return v, nil
}

func (f *Filter) check(ctx context.Context, m *Message) (Verdict, error) {
	if len(f.attach.forbidden) > 0 || f.attach.macros {
		rc, err := m.Open()
		if err != nil {
			return Verdict{}, fmt.Errorf("filter: open message: %w", err)
		}
		found, err := f.attach.scan(rc)
		rc.Close()
		if err != nil {
			return Verdict{}, fmt.Errorf("filter: attachments: %w", err)
		}
		switch {
		case found.Forbidden != "":
			// Mailu multimap FORBIDDEN_FILE_EXTENSION: prefilter reject.
			v := Verdict{Action: Reject, Code: 554, Enhanced: "5.7.1", Text: "Forbidden attachment extension"}
			v.Reason = found.String()
			return v, nil
		case found.Macro != "":
			// Mailu SCAN_MACROS: OLETOOLS_MACRO_MRAPTOR scores 20
			// (reject); 2024.06 force_actions rejects OLETOOLS.
			v := Verdict{Action: Reject, Code: 554, Enhanced: "5.7.1", Text: "Office document with macros rejected"}
			v.Reason = found.String()
			return v, nil
		}
	}
	if f.clamd != nil {
		rc, err := m.Open()
		if err != nil {
			return Verdict{}, fmt.Errorf("filter: open message: %w", err)
		}
		virus, err := f.clamd.Scan(ctx, rc)
		rc.Close()
		switch {
		case errors.Is(err, ErrClamdSizeLimit):
			// Larger than clamd's StreamMaxLength: rspamd's
			// antivirus module skips such messages (max_size).
			f.log.Warn("message not virus-scanned: larger than clamd's StreamMaxLength", "msgid", m.ID, "size", m.Size)
		case err != nil:
			v := tempFail("Virus scanner unavailable, try again later")
			v.Reason = "clamd: " + err.Error()
			return v, nil
		case virus != "":
			// Mailu: CLAM_VIRUS is forced to reject (force_actions).
			v := Verdict{Action: Reject, Code: 554, Enhanced: "5.7.1", Text: "Virus found: " + virusText(virus)}
			v.Virus, v.Reason = virus, "clamd: "+virus
			return v, nil
		}
	}
	if f.rspamd != nil {
		return f.checkRspamd(ctx, m), nil
	}
	if f.builtin != nil {
		return f.builtin.check(ctx, m)
	}
	return Verdict{Action: Accept}, nil
}

// virusText keeps a virus name printable in a reply.
func virusText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func (f *Filter) checkRspamd(ctx context.Context, m *Message) Verdict {
	res, err := f.rspamd.Check(ctx, m)
	if err != nil {
		v := tempFail("Spam scanner unavailable, try again later")
		v.Reason = err.Error()
		return v
	}
	var v Verdict
	switch res.Action {
	case "reject":
		v = rejectSpam(replyText(res.SMTPMessage()))
	case "soft reject", "greylist":
		v = tempFail(replyText(res.SMTPMessage()))
	default: // "no action", "add header", "rewrite subject"
		v = Verdict{Action: Accept}
	}
	v.Score, v.Scored = res.Score, true
	v.Reason = "rspamd " + res.Action + " " + strings.Join(res.SymbolNames(), ",")
	if v.Action != Accept {
		return v
	}
	flagged := res.Action == "add header" || res.Action == "rewrite subject" || res.Score >= AddHeaderScore
	own := spamHeaders(res.Score, flagged)
	add, remove := res.MilterHeaders()
	v.RemoveHeaders = mergeNames(ownSpamHeaders, remove)
	v.AddHeaders = own
	for _, h := range add {
		if !hasName(ownSpamHeaders, h.Name) {
			v.AddHeaders = append(v.AddHeaders, h)
		}
	}
	return v
}

// replyText keeps rspamd's smtp_message printable and short.
func replyText(s string) string {
	s = strings.Join(strings.Fields(virusText(s)), " ")
	return s
}

func hasName(list []string, n string) bool {
	for _, x := range list {
		if strings.EqualFold(x, n) {
			return true
		}
	}
	return false
}

func mergeNames(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, n := range b {
		if !hasName(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// logVerdict writes one line per message, the admin's view of why.
func (f *Filter) logVerdict(m *Message, v *Verdict, took time.Duration) {
	level := slog.LevelInfo
	action := "accept"
	switch v.Action {
	case TempFail:
		action = "tempfail"
		if strings.Contains(v.Reason, "rspamd:") || strings.HasPrefix(v.Reason, "clamd:") {
			level = slog.LevelWarn // a scanner is down: the admin must see it
		}
	case Reject:
		action = "reject"
	}
	if !f.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("msgid", m.ID),
		slog.String("from", m.MailFrom),
		slog.String("action", action),
		slog.String("reason", v.Reason),
		slog.Duration("took", took),
	}
	if v.Scored {
		attrs = append(attrs, slog.Float64("score", v.Score))
	}
	if v.Virus != "" {
		attrs = append(attrs, slog.String("virus", v.Virus))
	}
	if len(v.UserScores) > 0 {
		attrs = append(attrs, slog.Any("user_scores", v.UserScores))
	}
	f.log.LogAttrs(context.Background(), level, "filter verdict", attrs...)
}
