package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/submit"
)

// Errors of the body reader; replyFor maps them.
var (
	errBareLF = errors.New("bare LF in message")
	errBareCR = errors.New("bare CR in message")
)

// rdnsTimeout bounds the reverse DNS look-up for the Received header,
// started at connect; rdnsWait is the most a finished message waits for it.
const (
	rdnsTimeout = 5 * time.Second
	rdnsWait    = 500 * time.Millisecond
)

// data answers DATA and BDAT (wrapped by Data in errlimit.go): the body goes to a spool
// (behind a Received header, or through the submission Preparer), the
// Deliverer makes it durable, and only then does the client get 250 (RFC
// 5321 4.1.1.4, 6.1).
func (ss *session) data(r io.Reader) error {
	ss.tc.SetBusy(true)
	defer ss.tc.SetBusy(false)
	o := &ss.srv.opts

	if !ss.mailSeen || len(ss.routes) == 0 {
		// go-smtp only counts RCPTs it answered 250; Petrel may have
		// refused them all.
		return ss.reject("data", replyNoValidRecipients())
	}
	if ss.spaceLow() {
		// The disk went low since MAIL: refuse before writing anything
		// (go-smtp reads the rest of the body and discards it).
		return ss.reject("data", replyInsufficientStorage(), "from", ss.sender)
	}
	sp, err := o.Deliverer.NewSpool()
	if err != nil {
		return ss.fail("data", err)
	}
	defer sp.Abort() // a no-op after a successful Deliver

	now := o.Now()
	id := o.NewMsgID()
	body := &bodyReader{r: r}
	if err := ss.spoolBody(sp, body, id, now); err != nil {
		var ne net.Error
		if errors.As(body.err, &ne) && ne.Timeout() {
			// RFC 5321 4.5.3.2.6: the client stalled inside DATA.
			ss.tc.doom()
			ss.log.Info("rejected", "stage", "data", "msgid", id, "from", ss.sender, "err", body.err.Error())
			return replyDataTimeout()
		}
		if body.err != nil || errors.Is(err, submit.ErrHeaderTooLarge) {
			// The client's fault (or gone): not a local problem.
			cause := err
			if body.err != nil {
				cause = body.err
			}
			rr := replyFor(cause)
			if errors.Is(cause, smtp.ErrTooLongLine) {
				rr = replyLineTooLong(o.MaxLineLength)
			}
			ss.log.Info("rejected", "stage", "data", "msgid", id, "from", ss.sender,
				"code", rr.Code, "reply", rr.Message, "err", cause.Error())
			return rr
		}
		return ss.fail("data", err, "msgid", id)
	}

	env := &inbound.Envelope{
		ID:         id,
		Sender:     ss.sender,
		Routes:     slices.Clone(ss.routes),
		ReceivedAt: now,
		DSNRet:     ss.dsnRet,
		DSNEnvID:   ss.dsnEnvID,
		RequireTLS: ss.requireTLS,
	}
	if ss.user != nil {
		env.AuthUser = ss.user.Email
	}
	var checkArgs []any
	if ss.checksOn() {
		c, err := ss.inboundChecks(id, sp, env) // checks.go; refusals are logged there
		if err != nil {
			return err
		}
		sp, checkArgs = c.sp, c.logArgs
		defer sp.Abort()
	}
	if err := o.Deliverer.Deliver(ss.ctx, env, sp); err != nil {
		return ss.fail("deliver", err, "msgid", id, "from", ss.sender, "rcpts", ss.rcpts())
	}
	ss.rateSettle(true)
	args := []any{"msgid", id, "from", ss.sender, "rcpts", ss.rcpts(), "size", sp.Size(), "tls", ss.tls, "user", env.AuthUser}
	if ss.requireTLS {
		args = append(args, "requiretls", true)
	}
	ss.log.Info("received", append(args, checkArgs...)...)
	return replyQueued(id)
}

// spoolBody writes the message to the spool. Port 25 (and submission
// without a Preparer) gets Petrel's Received header in front of the
// client's data. A submission goes through the Preparer instead, and gets
// no Received header: Mailu's outclean removes every Received field of a
// submitted message, Postfix's own included (Mailu PR #2002), so the
// client's address appears nowhere.
func (ss *session) spoolBody(sp Spool, body *bodyReader, id string, now time.Time) error {
	o := &ss.srv.opts
	if o.Role.submission() && o.Submission != nil {
		meta := submit.Meta{Sender: ss.sender, ID: id}
		if ss.user != nil {
			meta.User = ss.user.Email
		}
		return o.Submission.Prepare(ss.ctx, body, sp, meta)
	}
	return copyBody(sp, ss.receivedHeader(id, now), body)
}

func (ss *session) rcpts() []string {
	out := make([]string, len(ss.routes))
	for i, r := range ss.routes {
		out[i] = r.Rcpt
	}
	return out
}

// bodyBuffer is the chunk copyBody fills before each write to the spool.
const bodyBuffer = 32 << 10

// bodyBuffers holds copyBody's chunks: one per DATA in progress, not one
// per message.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, bodyBuffer); return &b }}

// copyBody copies prefix (our Received field) and then the body to the
// spool. Each chunk is filled before it is written, so a message that
// fits in one reaches an in-memory spool in one Write, one allocation,
// instead of one Write per line read from the client. A read error is
// kept in body.err, so the caller can tell the client's fault from the
// spool's.
func copyBody(w io.Writer, prefix string, body *bodyReader) error {
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	buf := *bp
	n := 0
	if len(prefix) < len(buf)/2 {
		n = copy(buf, prefix)
	} else if _, err := io.WriteString(w, prefix); err != nil {
		return err
	}
	for {
		m, err := body.Read(buf[n:])
		n += m
		if (err == io.EOF && n > 0) || n == len(buf) {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			n = 0
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			body.err = err
			return err
		}
	}
}

// bodyReader reads a message body from go-smtp. It refuses bare LF and
// bare CR (RFC 5321 2.3.8; Mailu: Postfix smtpd_forbid_bare_newline = yes),
// which closes the SMTP smuggling hole for any server Petrel relays to.
// (go-smtp itself only ends DATA at CRLF.CRLF.)
type bodyReader struct {
	r      io.Reader
	prevCR bool  // the last byte returned was CR
	err    error // the read error that ended the body, if any
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.read(p)
	if err != nil && err != io.EOF && b.err == nil {
		// Kept here too, so that a Preparer reading the body does not
		// hide whose fault an error was.
		b.err = err
	}
	return n, err
}

func (b *bodyReader) read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if bad := b.firstBare(p[:n]); bad != nil {
			return 0, bad
		}
		b.prevCR = p[n-1] == '\r'
	}
	if err == io.EOF && b.prevCR {
		return 0, errBareCR
	}
	return n, err
}

// firstBare is the error for the first bare CR or bare LF in p, which
// follows what was read before it (prevCR), or nil. It finds CRs and LFs
// with bytes.IndexByte rather than looking at every byte.
func (b *bodyReader) firstBare(p []byte) error {
	if b.prevCR && p[0] != '\n' {
		return errBareCR
	}
	// The first LF without a CR before it, and the first CR without an LF
	// after it (a CR that ends p is judged by the next read).
	lf := firstWhere(p, '\n', func(i int) bool { return (i == 0 && !b.prevCR) || (i > 0 && p[i-1] != '\r') })
	cr := firstWhere(p, '\r', func(i int) bool { return i+1 < len(p) && p[i+1] != '\n' })
	switch {
	case lf >= 0 && (cr < 0 || lf < cr):
		return errBareLF
	case cr >= 0:
		return errBareCR
	}
	return nil
}

// firstWhere is the index of the first byte c in p at which bad is true,
// or -1.
func firstWhere(p []byte, c byte, bad func(i int) bool) int {
	for i := bytes.IndexByte(p, c); i >= 0; {
		if bad(i) {
			return i
		}
		j := bytes.IndexByte(p[i+1:], c)
		if j < 0 {
			return -1
		}
		i += 1 + j
	}
	return -1
}

// receivedHeader is the trace field of RFC 5321 4.4, with the RFC 3848
// protocol name; "for" only names a single recipient, so a Bcc list is not
// disclosed.
func (ss *session) receivedHeader(id string, now time.Time) string {
	with := "ESMTP"
	switch {
	case ss.tls && ss.user != nil:
		with = "ESMTPSA"
	case ss.user != nil:
		with = "ESMTPA"
	case ss.tls:
		with = "ESMTPS"
	}
	var b strings.Builder
	helo := headerToken(ss.conn.Hostname()) // the latest EHLO
	if helo == "" {
		helo = "unknown"
	}
	fmt.Fprintf(&b, "Received: from %s (%s)\r\n", helo, ss.tcpInfo())
	fmt.Fprintf(&b, "\tby %s (Petrel) with %s id %s", headerToken(ss.srv.opts.Hostname), with, id)
	if len(ss.routes) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", headerToken(ss.routes[0].Rcpt))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	return b.String()
}

// tcpInfo is RFC 5321's TCP-info: "[ip]" or "name [ip]" when the reverse
// DNS name resolves back to the address (Postfix's "unknown" is left out).
func (ss *session) tcpInfo() string {
	ip := ss.tc.Remote().Addr()
	if !ip.IsValid() {
		return "unknown"
	}
	lit := "[" + ip.String() + "]"
	if ip.Is6() {
		lit = "[IPv6:" + ip.String() + "]"
	}
	if name := ss.rdns(); name != "" {
		return name + " " + lit
	}
	return lit
}

// rdns is the client's verified reverse DNS name for the Received header,
// or "" when there is none or the look-up has not finished within rdnsWait
// of the message being complete (then the header carries only the IP).
func (ss *session) rdns() string {
	tc := ss.tc
	select {
	case <-tc.rdnsDone:
	case <-time.After(rdnsWait):
		return ""
	case <-ss.ctx.Done():
		return ""
	}
	return tc.rdns
}

// lookupRDNS finds a forward-confirmed reverse name (FCrDNS) for the
// client and closes rdnsDone.
func (c *trackedConn) lookupRDNS(res Resolver) {
	defer close(c.rdnsDone)
	if res == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.Context(), rdnsTimeout)
	defer cancel()
	ip := c.Remote().Addr()
	names, err := res.LookupAddr(ctx, ip.String())
	if err != nil {
		return
	}
	for _, n := range names {
		addrs, err := res.LookupHost(ctx, n)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if pa, err := netip.ParseAddr(a); err == nil && pa.Unmap() == ip {
				c.rdns = headerToken(strings.TrimSuffix(n, "."))
				return
			}
		}
	}
}

// headerToken makes client text safe inside a header: no white space,
// parentheses, semicolons or control characters, at most 255 bytes.
func headerToken(s string) string {
	s = safe(s)
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '(', ')', ';', '<', '>', '\\', '"':
			return '_'
		}
		return r
	}, s)
	if len(s) > 255 {
		s = strings.ToValidUTF8(s[:255], "")
	}
	return s
}
