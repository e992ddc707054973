package sieve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/migadu/go-sieve/interp"
)

// Limits of one run: going past one is a runtime error, and the host keeps
// the message in INBOX.
const (
	// MaxRedirects bounds redirect actions per message (RFC 5228 4.2:
	// limit the number of redirects a script may do).
	MaxRedirects = 5
	// MaxFileInto bounds the mailboxes one message is filed into.
	MaxFileInto = 32
	// MaxHeaderEdits bounds addheader/deleteheader actions.
	MaxHeaderEdits = 64
	// RunTimeout bounds one run (regex and body matching above all).
	RunTimeout = 5 * time.Second
	// vacation :days is clamped to this range (RFC 5230 4.1 lets sites
	// set a minimum; Dovecot's defaults are 1 and 60 days).
	minVacationDays, maxVacationDays = 1, 60
)

// Reject is a reject or ereject action (RFC 5429).
type Reject struct {
	Reason   string
	Extended bool // ereject
}

// Vacation is a vacation action (RFC 5230) for the host to send, after its
// own checks (previous responses, lists, bounces).
type Vacation struct {
	Days      int    // clamped to 1..60
	Subject   string // "" when the script gave none: the host uses "Auto: " and the original subject
	From      string // "" when the script gave none
	Reason    string // the body, or a MIME entity when Mime
	Mime      bool
	Handle    string   // :handle, or a hash of the other arguments (RFC 5230 4.2)
	Addresses []string // :addresses
}

// Result is what a run asked for.
type Result struct {
	// Keep: a copy goes to INBOX (explicit keep, or the implicit keep no
	// action cancelled).
	Keep bool
	// FileInto lists mailboxes in the order filed, without INBOX when
	// Keep already covers it; Create says which of them :create may make.
	FileInto []string
	Create   map[string]bool
	// Flags are the imap4flags flags of every copy stored.
	Flags    []string
	Redirect []string
	Reject   *Reject
	Vacation *Vacation
	Edits    []interp.HeaderEdit
}

// Input is one message as a script sees it.
type Input struct {
	From, To string // envelope: reverse-path ("" for the null sender) and recipient
	Auth     string // authenticated submitter, "" on port 25
	Header   []byte // the header block, CRLF or LF lines
	Size     int
	// Body returns the body after the header block, read only when a
	// body test asks for it.
	Body func() ([]byte, error)
	Spam Spam
	// MailboxExists answers mailboxexists (RFC 5490); nil: every mailbox
	// exists.
	MailboxExists func(ctx context.Context, name string) (bool, error)
}

// Run executes the script over one message. An error means the script
// failed at run time; Result is then meaningless and the host keeps the
// message. Run never panics: go-sieve panics are returned as errors.
func (s *Script) Run(ctx context.Context, in Input) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, RunTimeout)
	defer cancel()
	st := &runState{spam: in.Spam}
	ctx = context.WithValue(ctx, stateKey{}, st)
	ctx = interp.ContextWithRegexLimits(ctx, interp.EffectiveRegexLimits(interp.RegexLimits{}))

	m := &message{hdr: parseHeader(in.Header), size: in.Size, body: in.Body}
	d := interp.NewRuntimeData(s.lib, policy{in: in}, envelope{in: in}, m)
	for _, c := range s.cmds {
		if err := c.Execute(ctx, d); err != nil {
			if errors.Is(err, interp.ErrStop) {
				break
			}
			return Result{}, err
		}
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("script ran too long: %w", err)
		}
	}
	return s.result(d, st)
}

func (s *Script) result(d *interp.RuntimeData, st *runState) (Result, error) {
	res := Result{
		Keep:     d.Keep || d.ImplicitKeep,
		Flags:    imapFlags(d.Flags),
		Redirect: d.RedirectAddr,
		Reject:   st.reject,
		Edits:    d.HeaderEdits,
	}
	for _, mb := range d.Mailboxes {
		if strings.EqualFold(mb, "INBOX") {
			res.Keep = true // RFC 5228 4.1: fileinto "INBOX" is keep
			continue
		}
		res.FileInto = append(res.FileInto, mb)
	}
	if len(d.MailboxesCreate) > 0 {
		res.Create = make(map[string]bool, len(d.MailboxesCreate))
		for _, mb := range d.MailboxesCreate {
			res.Create[mb] = true
		}
	}
	for _, v := range d.VacationResponses {
		days := min(max(v.Days, minVacationDays), maxVacationDays)
		vac := &Vacation{Days: days, Subject: v.Subject, From: v.From, Reason: v.Body,
			Mime: v.IsMime, Handle: v.Handle, Addresses: st.vacationAddrs}
		if st.vacationDefaultSubject {
			vac.Subject = ""
		}
		if vac.Handle == "" {
			sum := sha256.Sum256([]byte(vac.Subject + "\x00" + vac.From + "\x00" + vac.Reason))
			vac.Handle = hex.EncodeToString(sum[:8])
		}
		res.Vacation = vac
	}
	switch {
	case len(res.Redirect) > MaxRedirects:
		return Result{}, fmt.Errorf("too many redirects (more than %d)", MaxRedirects)
	case len(res.FileInto) > MaxFileInto:
		return Result{}, fmt.Errorf("too many fileinto actions (more than %d)", MaxFileInto)
	case len(res.Edits) > MaxHeaderEdits:
		return Result{}, fmt.Errorf("too many header edits (more than %d)", MaxHeaderEdits)
	}
	// RFC 5429 2.1/2.2: reject cancels the implicit keep and cannot be
	// combined with actions that deliver or answer the message.
	if res.Reject != nil && (d.Keep || len(res.FileInto) > 0 || res.Vacation != nil) {
		return Result{}, errors.New("reject cannot be combined with keep, fileinto or vacation")
	}
	if res.Reject != nil {
		res.Keep = false
	}
	return res, nil
}

// policy answers go-sieve's questions about the host.
type policy struct{ in Input }

// RedirectAllowed lets every syntactically plausible address through; the
// host resolves and limits them.
func (p policy) RedirectAllowed(_ context.Context, _ *interp.RuntimeData, addr string) (bool, error) {
	if i := strings.LastIndexByte(addr, '@'); i <= 0 || i == len(addr)-1 {
		return false, fmt.Errorf("redirect: bad address %q", addr)
	}
	return true, nil
}

func (p policy) MailboxExists(ctx context.Context, name string) (bool, error) {
	if p.in.MailboxExists == nil || strings.EqualFold(name, "INBOX") {
		return true, nil
	}
	return p.in.MailboxExists(ctx, name)
}

type envelope struct{ in Input }

func (e envelope) EnvelopeFrom() string { return e.in.From }
func (e envelope) EnvelopeTo() string   { return e.in.To }
func (e envelope) AuthUsername() string { return e.in.Auth }

// message is the Message go-sieve reads.
type message struct {
	hdr     []field
	size    int
	body    func() ([]byte, error)
	loaded  bool
	bodyBuf []byte
	bodyErr error
}

func (m *message) HeaderGet(key string) ([]string, error) {
	var out []string
	for _, f := range m.hdr {
		if strings.EqualFold(f.name, key) {
			out = append(out, f.value)
		}
	}
	return out, nil
}

func (m *message) MessageSize() int { return m.size }

func (m *message) BodyRaw() ([]byte, bool, error) {
	if m.body == nil {
		return nil, false, nil
	}
	if !m.loaded {
		m.bodyBuf, m.bodyErr = m.body()
		m.loaded = true
	}
	return m.bodyBuf, m.bodyErr == nil && len(m.bodyBuf) > 0, m.bodyErr
}

// imapFlags gives system flags their usual spelling (go-sieve lower-cases
// them; IMAP compares them without case, RFC 9051 2.3.2).
func imapFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		switch strings.ToLower(f) {
		case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
			f = `\` + strings.ToUpper(f[1:2]) + strings.ToLower(f[2:])
		}
		out = append(out, f)
	}
	return out
}
