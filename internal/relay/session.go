package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// quitTimeout bounds the wait for the reply to QUIT.
const quitTimeout = 10 * time.Second

// session is one connection to one address.
type session struct {
	c     *Client
	m     *queue.Message
	t     target
	noTLS bool // retry after a failed opportunistic handshake

	// what happened, for the log line and the caller
	tlsVersion string
	transacted bool // MAIL FROM was accepted
	accepted   int
	refused    int
	reply      string            // the server's reply to the final dot
	replies    map[string]string // per accepted recipient (LMTP: its own)
	dataOpen   bool              // DATA accepted, final dot not yet sent
	txOpen     bool              // MAIL accepted, no reply to the final dot yet
	stale      bool              // a reused session ended before MAIL was accepted
	dsn        bool              // the server offers DSN (RFC 3461)
}

func (s *session) debug(msg string, args ...any) {
	s.c.log.Debug("relay: "+msg, append([]any{"msgid", s.m.ID, "host", s.t.host, "addr", s.t.addr.String()}, args...)...)
}

// fail builds an attemptError for this server. When the context ended,
// that is the cause, whatever the broken connection reported.
func (s *session) fail(ctx context.Context, err error, stop bool) *attemptError {
	if cerr := ctx.Err(); cerr != nil {
		return &attemptError{de: localError(fmt.Errorf("delivery interrupted: %w", cerr), s.t.remote()), stop: true}
	}
	return &attemptError{de: fromReply(err, s.t.remote()), stop: stop}
}

// local builds an attemptError for a condition found on our side.
func (s *session) local(permanent bool, enhanced, msg string, stop bool) *attemptError {
	return &attemptError{de: &queue.DeliveryError{Permanent: permanent, Enhanced: enhanced,
		Message: msg, Remote: s.t.remote()}, stop: stop}
}

// run sends one transaction for rcpts, on a cached session to the same
// server when there is one, else on a new connection that it connects,
// greets, secures and authenticates. It returns the recipients it decided
// and, for the others, the session's error.
func (s *session) run(ctx context.Context, rcpts []string) (map[string]error, *attemptError) {
	if cn := s.reuse(ctx); cn != nil {
		res, aerr := s.deliverOn(ctx, cn, rcpts)
		if !s.stale {
			return res, aerr
		}
		// The server dropped the cached session before MAIL FROM was
		// accepted: not this attempt's failure; a fresh connection follows.
		s.debug("cached session lost, reconnecting", "error", aerr.de.Message)
		s.stale, s.refused, s.tlsVersion = false, 0, ""
	}
	cn, aerr := s.dial(ctx)
	if aerr != nil {
		return nil, aerr
	}
	return s.deliverOn(ctx, cn, rcpts)
}

// key is what a cached session must match to carry this session's mail.
func (s *session) key() connKey {
	return connKey{kind: s.t.hop.kind, lmtp: s.t.hop.lmtp, host: s.t.host, addr: s.t.addr, noTLS: s.noTLS, tls: s.t.pol.Key()}
}

// reuse takes a cached session for s.t and checks it is still alive
// (NOOP; Postfix verifies with RSET, see checkTimeout). A dead one is
// closed and nil returned, so that the caller connects anew.
func (s *session) reuse(ctx context.Context) *smtpConn {
	cn := s.c.cache.get(s.key())
	if cn == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { cn.raw.Close() })
	cn.sc.CommandTimeout = checkTimeout
	err := cn.sc.Noop()
	cn.sc.CommandTimeout = s.c.timeouts.Command
	if !stop() || err != nil {
		s.debug("cached session unusable", "error", err)
		cn.raw.Close()
		return nil
	}
	s.debug("reusing session", "age", time.Since(cn.born).Round(time.Millisecond), "uses", cn.uses)
	return cn
}

// deliverOn runs one transaction on cn, then keeps cn for the next
// message or ends it.
func (s *session) deliverOn(ctx context.Context, cn *smtpConn, rcpts []string) (map[string]error, *attemptError) {
	s.tlsVersion = cn.tlsVersion
	cn.uses++
	// Cancelling ctx (shutdown) interrupts any blocked read or write.
	stop := context.AfterFunc(ctx, func() { cn.raw.Close() })
	res, aerr := s.transaction(ctx, cn.sc, cn.reused, rcpts)
	interrupted := !stop()
	switch {
	case interrupted || s.dataOpen:
		// The body was cut short. QUIT now would make textproto end the
		// DATA with a dot and deliver a truncated message: drop the
		// connection instead (RFC 5321 4.1.1.4, the server must discard an
		// unterminated message).
		cn.raw.Close()
	case aerr == nil && s.settle(cn) && s.c.cache.put(cn):
	case s.stale:
		cn.raw.Close()
	default:
		// QUIT is a courtesy: do not wait minutes for its reply.
		cn.quit(quitTimeout)
	}
	return res, aerr
}

// settle ends a transaction left open (every recipient refused, or DATA
// refused) with RSET, so that cn can carry the next one.
func (s *session) settle(cn *smtpConn) bool {
	if !s.txOpen {
		return true
	}
	// go-smtp's Reset also forgets the EHLO, which the next MAIL repeats.
	return cn.sc.Reset() == nil
}

// dial connects to s.t, greets, secures and authenticates.
func (s *session) dial(ctx context.Context) (_ *smtpConn, aerr *attemptError) {
	c := s.c
	to := c.timeouts
	s.debug("connect", "nexthop", s.t.hop.String())
	d := net.Dialer{Timeout: to.Connect}
	if la := c.localAddr; la.IsValid() && la.Is4() == s.t.addr.Addr().Is4() {
		d.LocalAddr = &net.TCPAddr{IP: la.AsSlice()}
	}
	raw, err := d.DialContext(ctx, "tcp", s.t.addr.String())
	if err != nil {
		return nil, s.fail(ctx, fmt.Errorf("connect to %s: %w", s.t.addr, err), false)
	}
	cn := &smtpConn{key: s.key(), raw: raw, born: time.Now()}
	// Cancelling ctx (shutdown) interrupts any blocked read or write.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer func() {
		if !stop() && aerr == nil {
			aerr = s.fail(ctx, errors.New("interrupted"), true)
		}
		if aerr != nil {
			raw.Close()
		}
	}()
	conn := net.Conn(&deadlineConn{Conn: raw, write: to.DataBlock})

	if s.t.implicitTLS() {
		tc, err := handshake(ctx, conn, s.tlsConfig(), to.Connect)
		if err != nil {
			if aerr := s.relayHostCertError(ctx, err); aerr != nil {
				return nil, aerr
			}
			return nil, s.fail(ctx, fmt.Errorf("implicit TLS to %s: %w", s.t.addr, err), false)
		}
		conn = tc
		s.tlsVersion = tls.VersionName(tc.ConnectionState().Version)
		s.debug("implicit TLS", "tls", s.tlsVersion)
	}

	sc := s.newClient(conn)
	if err := sc.Hello(c.hostname); err != nil {
		return nil, s.fail(ctx, err, false)
	}
	s.debug("greeted and said EHLO", "lmtp", s.t.hop.lmtp)

	pol := s.t.pol
	if s.tlsVersion == "" && !s.t.hop.lmtp && !s.noTLS {
		if ok, _ := sc.Extension("STARTTLS"); ok {
			tc, err := startTLS(ctx, conn, s.tlsConfig(), to.Command, to.Connect)
			if err != nil {
				c.tlsp.Result(pol, localIP(raw), s.t.addr.Addr().String(), err)
				if pol != nil && pol.RequireTLS() && ctx.Err() == nil {
					// RFC 7672 2.2, RFC 8461 5: no delivery without the
					// policy's TLS; the next MX may do, else deferred.
					return nil, s.local(false, "4.7.5", "TLS with "+s.t.host+" failed under "+pol.Reason+": "+err.Error(), false)
				}
				if aerr := s.relayHostCertError(ctx, err); aerr != nil {
					return nil, aerr
				}
				aerr := s.fail(ctx, err, false)
				// With an unverified peer, a refused STARTTLS or a broken
				// handshake may be retried in clear on a new connection;
				// with RELAYHOST verified, or a password to protect, not.
				aerr.plainRetry = !s.verify() && !(s.t.hop.kind == hopRelayHost && c.user != "")
				return nil, aerr
			}
			c.tlsp.Result(pol, localIP(raw), s.t.addr.Addr().String(), nil)
			conn = tc
			s.tlsVersion = tls.VersionName(tc.ConnectionState().Version)
			s.debug("STARTTLS", "tls", s.tlsVersion)
			sc = s.newClient(&greetedConn{Conn: tc, pending: []byte("220 TLS established\r\n")})
			if err := sc.Hello(c.hostname); err != nil {
				return nil, s.fail(ctx, err, false)
			}
		}
	}
	if s.tlsVersion == "" && pol != nil && pol.RequireTLS() {
		// RFC 3207 4, RFC 7672 2.2: a policy that requires TLS never
		// falls back to plaintext.
		c.tlsp.Result(pol, localIP(raw), s.t.addr.Addr().String(), &tlspolicy.PolicyError{ResultType: "starttls-not-supported",
			Msg: s.t.host + " does not offer STARTTLS"})
		return nil, s.local(false, "4.7.10", s.t.host+" does not offer STARTTLS, which "+pol.Reason+" requires", false)
	}
	if s.m.RequireTLS && s.tlsVersion == "" {
		// RFC 8689 4.2.1: never in clear.
		return nil, s.local(true, "5.7.30", "REQUIRETLS support required: "+s.t.host+" does not offer STARTTLS", false)
	}
	if aerr := s.authenticate(ctx, sc); aerr != nil {
		return nil, aerr
	}
	cn.sc, cn.tlsVersion = sc, s.tlsVersion
	return cn, nil
}

func (s *session) newClient(conn net.Conn) *smtp.Client {
	var sc *smtp.Client
	if s.t.hop.lmtp {
		sc = smtp.NewClientLMTP(conn)
	} else {
		sc = smtp.NewClient(conn)
	}
	sc.CommandTimeout = s.c.timeouts.Command
	sc.SubmissionTimeout = s.c.timeouts.DataEnd
	return sc
}

// verify: RELAYHOST's certificate is checked unless
// RELAYHOST_TLS_VERIFY=false; other peers' are not (opportunistic TLS,
// Postfix "may"); MX hosts under DANE or MTA-STS go by their policy.
func (s *session) verify() bool { return s.t.hop.kind == hopRelayHost && !s.c.noVerify }

// relayHostCertError is the deferral for a RELAYHOST certificate that
// failed verification, saying how to fix it (issue 13: a relay with a
// private or self-signed certificate is common, and Mailu never checked).
// nil when err is not such a failure.
func (s *session) relayHostCertError(ctx context.Context, err error) *attemptError {
	if !s.verify() || ctx.Err() != nil {
		return nil
	}
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) {
		return nil
	}
	fix := "set RELAYHOST_CA_FILE to a PEM file with the CA certificate that signed it (or the relay's own certificate, when self-signed), " +
		"or RELAYHOST_TLS_VERIFY=false to encrypt without verifying, as Mailu does"
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		fix = "set RELAYHOST to a name the certificate is for, " + fix
	}
	msg := "certificate of RELAYHOST " + s.t.host + " not verified: " + cv.Err.Error() + "; to fix: " + fix
	return s.local(false, "4.7.5", msg, false)
}

func (s *session) tlsConfig() *tls.Config {
	if s.t.pol != nil {
		return s.c.tlsp.TLSConfig(s.t.pol)
	}
	cfg := &tls.Config{ServerName: s.t.host}
	if isIP(s.t.host) {
		cfg.ServerName = "" // no SNI for an address; verification uses IP SANs
	}
	if s.verify() {
		cfg.RootCAs = s.c.rootCAs
		cfg.MinVersion = tls.VersionTLS12
		if isIP(s.t.host) {
			cfg.ServerName = s.t.host
		}
		return cfg
	}
	// Opportunistic: any certificate, and old protocol versions rather than
	// plaintext (Postfix: smtp_tls_protocols = !SSLv2, !SSLv3).
	cfg.InsecureSkipVerify = true
	cfg.MinVersion = tls.VersionTLS10
	return cfg
}

// authenticate logs in to RELAYHOST when RELAYUSER is set, with PLAIN or
// else LOGIN (Mailu: smtp_sasl_security_options = noanonymous, and issue
// #1633 "no mechanism available"). The password only travels over TLS.
func (s *session) authenticate(ctx context.Context, sc *smtp.Client) *attemptError {
	if s.t.hop.kind != hopRelayHost || s.c.user == "" {
		return nil
	}
	if s.tlsVersion == "" {
		// RFC 3463 X.7.10: encryption needed.
		return s.local(false, "4.7.10", "RELAYHOST "+s.t.host+" does not offer TLS; not sending RELAYPASSWORD in clear", false)
	}
	var mech sasl.Client
	var mechName string
	switch {
	case sc.SupportsAuth(sasl.Plain):
		mech, mechName = sasl.NewPlainClient("", s.c.user, s.c.pass), sasl.Plain
	case sc.SupportsAuth(sasl.Login):
		mech, mechName = &loginClient{user: s.c.user, pass: s.c.pass}, sasl.Login
	default:
		_, offered := sc.Extension("AUTH")
		return s.local(false, "4.7.0", "RELAYHOST "+s.t.host+" offers no AUTH PLAIN or LOGIN (offered: "+quote(offered)+")", false)
	}
	s.debug("AUTH", "mechanism", mechName, "user", s.c.user)
	if err := sc.Auth(mech); err != nil {
		// Postfix smtp_sasl_auth_soft_bounce (default yes): a rejected
		// login defers the mail instead of bouncing it, since the cause is
		// our RELAYPASSWORD, not the message.
		aerr := s.fail(ctx, err, false)
		aerr.de.Permanent = false
		aerr.de.Message = "RELAYHOST refused the login of " + s.c.user + ": " + aerr.de.Message
		return aerr
	}
	return nil
}

// transaction runs MAIL, RCPT and DATA. reused says sc comes from the
// cache: a connection error before MAIL is accepted then marks s stale.
func (s *session) transaction(ctx context.Context, sc *smtp.Client, reused bool, rcpts []string) (map[string]error, *attemptError) {
	m := s.m
	// RFC 6531 3.4: mail that needs SMTPUTF8 is not sent to a server
	// without it; 5.6.7 (RFC 6531 3.7.5). Another MX may have it.
	if m.UTF8 {
		if ok, _ := sc.Extension("SMTPUTF8"); !ok {
			return nil, s.local(true, "5.6.7", "the message needs SMTPUTF8, which "+s.t.host+" does not support", false)
		}
	}
	// RFC 1870: a server's SIZE limit is final for this message there.
	if limit, ok := sc.MaxMessageSize(); ok && limit > 0 && m.Size > int64(limit) {
		return nil, s.local(true, "5.3.4", "message of "+strconv.FormatInt(m.Size, 10)+" bytes exceeds the limit of "+
			strconv.Itoa(limit)+" bytes of "+s.t.host, false)
	}
	if m.RequireTLS {
		// RFC 8689 4.2.1: verified TLS (the caller chose a validated
		// policy or a verified RELAYHOST) to a server that offers
		// REQUIRETLS after STARTTLS; the parameter goes on (4.2.2).
		if s.tlsVersion == "" {
			return nil, s.local(true, "5.7.30", "REQUIRETLS support required: the session with "+s.t.host+" is not encrypted", false)
		}
		if ok, _ := sc.Extension("REQUIRETLS"); !ok {
			return nil, s.local(true, "5.7.30", "REQUIRETLS support required: "+s.t.host+" does not offer REQUIRETLS", false)
		}
	}
	// go-smtp adds BODY=8BITMIME whenever the server offers it, and SIZE
	// when the server announces SIZE.
	opts := &smtp.MailOptions{Size: m.Size, UTF8: m.UTF8, RequireTLS: m.RequireTLS}
	if printable(m.EnvID) {
		opts.EnvelopeID = m.EnvID
	}
	switch m.Ret {
	case "FULL", "HDRS":
		opts.Return = smtp.DSNReturn(m.Ret)
	}
	// go-smtp sends RET, ENVID, NOTIFY and ORCPT only to a server that
	// offers DSN (RFC 3461 4.1: relay the parameters onward).
	s.dsn, _ = sc.Extension("DSN")
	if err := sc.Mail(wireAddr(m.Sender, m.UTF8), opts); err != nil {
		// On a reused session, a broken connection or a 421 (a server
		// that limits messages per session, or timed it out) is the
		// session's end, not the message's failure.
		var se *smtp.SMTPError
		s.stale = reused && ctx.Err() == nil && (!errors.As(err, &se) || se.Code == 421)
		// 4xx: another server may take it; 5xx: final for all recipients.
		aerr := s.fail(ctx, err, false)
		aerr.stop = aerr.de.Permanent
		return nil, aerr
	}
	s.transacted, s.txOpen = true, true
	s.debug("MAIL FROM accepted", "from", m.Sender)

	results := make(map[string]error, len(rcpts))
	var accepted []string
	for _, r := range rcpts {
		err := sc.Rcpt(wireAddr(r, m.UTF8), rcptOptions(m.DSN[r]))
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, r)
		case errors.As(err, &se):
			results[r] = fromReply(err, s.t.remote())
			s.refused++
		default:
			return results, s.fail(ctx, err, false)
		}
	}
	s.accepted = len(accepted)
	s.debug("RCPT done", "accepted", s.accepted, "refused", s.refused)
	if len(accepted) == 0 {
		return results, nil
	}

	body, err := m.Body()
	if err != nil {
		// Our spool, not the peer: retrying elsewhere now will not help.
		return results, s.local(false, "4.3.0", "cannot read the message: "+err.Error(), true)
	}
	defer body.Close()
	w, err := sc.Data()
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return results, s.fail(ctx, err, false)
		}
		for _, r := range accepted {
			results[r] = fromReply(err, s.t.remote())
		}
		return results, nil
	}
	s.dataOpen = true
	br := &readErrReader{r: withoutReturnPath(body)}
	if _, err := io.Copy(w, br); err != nil {
		if br.err != nil {
			return results, s.local(false, "4.3.0", "cannot read the message: "+br.err.Error(), true)
		}
		// The dot was not sent: nothing was delivered.
		return results, s.fail(ctx, err, false)
	}
	s.debug("DATA sent", "bytes", br.n)
	if err := ctx.Err(); err != nil {
		// Stopped while the body went out (shutdown, or the queue lease
		// may be gone): without the final dot nothing is delivered here,
		// so whoever holds the entry next does not send it twice.
		return results, s.fail(ctx, fmt.Errorf("stopped before the final dot: %w", err), false)
	}
	s.dataOpen = false // closing the writer sends the dot
	if s.t.hop.lmtp {
		return s.lmtpReplies(ctx, w, accepted, results)
	}
	resp, err := w.CloseWithResponse()
	s.txOpen = false // a reply ends the transaction; no reply ends the session
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// RFC 5321 6.1: the reply is lost; the message may have arrived.
			// Stop here; the queue retries (and may deliver twice).
			return results, s.fail(ctx, fmt.Errorf("no reply after the message was sent: %w", err), true)
		}
		s.reply = oneLine(fmt.Sprintf("%d %s", se.Code, se.Message))
		for _, r := range accepted {
			results[r] = fromReply(err, s.t.remote())
		}
		return results, nil
	}
	s.reply = oneLine("250 " + resp.StatusText)
	s.replies = make(map[string]string, len(accepted))
	for _, r := range accepted {
		results[r] = nil
		s.replies[r] = s.reply
	}
	return results, nil
}

// lmtpReplies reads LMTP's one reply per accepted recipient (RFC 2033 4.2).
func (s *session) lmtpReplies(ctx context.Context, w *smtp.DataCommand, accepted []string, results map[string]error) (map[string]error, *attemptError) {
	resp, err := w.CloseWithLMTPResponse()
	s.txOpen = false // a reply ends the transaction; no reply ends the session
	var perRcpt smtp.LMTPDataError
	errors.As(err, &perRcpt)
	var replies []string
	s.replies = make(map[string]string, len(accepted))
	for _, r := range accepted {
		w := wireAddr(r, s.m.UTF8)
		switch {
		case resp[w] != nil:
			results[r] = nil
			s.replies[r] = oneLine("250 " + resp[w].StatusText)
			replies = append(replies, s.replies[r])
		case perRcpt[w] != nil:
			results[r] = fromReply(perRcpt[w], s.t.remote())
			replies = append(replies, strconv.Itoa(perRcpt[w].Code)+" "+perRcpt[w].Message)
		}
	}
	s.reply = oneLine(strings.Join(replies, "; "))
	for _, r := range accepted {
		if _, ok := results[r]; !ok {
			// The connection broke before this recipient's reply.
			return results, s.fail(ctx, fmt.Errorf("no LMTP reply after the message was sent: %w", err), true)
		}
	}
	return results, nil
}

// wireAddr writes the domain of addr as A-labels when the session is not
// SMTPUTF8 (RFC 5890: an ASCII-only peer sees the punycode form). The
// LMTP reply map is keyed by what was sent, so lmtpReplies looks up
// the same form.
func wireAddr(addr string, utf8 bool) string {
	if utf8 || isASCII(addr) {
		return addr
	}
	local, domain := mailaddr.Split(addr)
	if a, err := mailaddr.NormalizeDomain(domain); err == nil && domain != "" {
		return local + "@" + a
	}
	return addr
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// readErrReader remembers read errors, to tell a broken spool from a broken
// connection when io.Copy fails.
// withoutReturnPath leaves out a Return-Path field at the very top of
// the message: local delivery writes one there (RFC 5321 4.4) and a copy
// of the same message may also go out (a forward, a submission to local
// and remote recipients), but "a message-originating SMTP system SHOULD
// NOT send a message that already contains a Return-path header field".
// Only the first field is looked at, never the rest of the message.
func withoutReturnPath(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	const name = "return-path:"
	head, _ := br.Peek(len(name))
	if !strings.EqualFold(string(head), name) {
		return br
	}
	for first := true; ; first = false {
		if !first {
			if next, err := br.Peek(1); err != nil || (next[0] != ' ' && next[0] != '\t') {
				return br // the field ended; the rest goes out untouched
			}
		}
		if err := skipLine(br); err != nil {
			return br
		}
	}
}

// skipLine reads past the next LF, however long the line.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

type readErrReader struct {
	r   io.Reader
	err error
	n   int64
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// rcptOptions turns a recipient's stored NOTIFY and ORCPT into go-smtp's
// options; malformed stored values are left out rather than failing the
// delivery.
func rcptOptions(d store.RcptDSN) *smtp.RcptOptions {
	if d.Notify == "" && d.ORcpt == "" {
		return nil
	}
	o := &smtp.RcptOptions{}
	seen := map[smtp.DSNNotify]bool{}
	for _, n := range strings.Split(d.Notify, ",") {
		switch v := smtp.DSNNotify(strings.ToUpper(strings.TrimSpace(n))); v {
		case smtp.DSNNotifyNever, smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed:
			if !seen[v] {
				seen[v] = true
				o.Notify = append(o.Notify, v)
			}
		}
	}
	if seen[smtp.DSNNotifyNever] && len(o.Notify) > 1 {
		o.Notify = nil // RFC 3461 4.1: NEVER stands alone
	}
	if typ, addr, ok := strings.Cut(d.ORcpt, ";"); ok && addr != "" {
		switch strings.ToUpper(typ) {
		case "RFC822":
			if printable(addr) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "UTF-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return o
}

// printable: RFC 3461 xtext carries printable ASCII only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// localIP is the source address of conn, for TLS-RPT's sending-mta-ip.
func localIP(conn net.Conn) string {
	if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}
