package smtpd

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/submit"
)

// Every reply Petrel's own code sends is built here. Codes follow RFC 5321
// 4.2 and enhanced codes RFC 3463; texts follow Mailu (Postfix, Dovecot and
// nginx) where a client or an admin may match on them, and otherwise say
// what to do next.
//
// Replies go-smtp v0.25.1 sends by itself, before Petrel's code runs (they
// cannot be changed without forking it):
//   - MAIL/RCPT/AUTH before EHLO: 502 5.5.1 "Please introduce yourself
//     first." (RFC 5321 would use 503); RCPT before MAIL: 502 5.5.1
//     "Missing MAIL FROM command."; DATA without RCPT: 502 5.5.1.
//   - AUTH with malformed base64 (initial response or continuation):
//     454 4.7.0 "Invalid base64 data" (RFC 4954 4 says 501 5.5.2);
//     "*" cancels with 501 5.0.0; AUTH without a mechanism: 502 5.5.4.
//   - A second AUTH after success: 503 5.5.1 "Already authenticated".
//   - MAIL FROM with SIZE= over the limit: 552 5.3.4 "Max message size
//     exceeded"; BDAT chunks over the limit: the same.
//   - Idle timeout: 421 4.4.2 "Idle timeout, bye bye" (also what idle
//     sessions get on Shutdown); over-long line: 500 5.4.0 and close;
//     unknown command: 500 5.5.2; syntax errors: 501 5.5.2/5.5.4; the
//     fourth of those in a session: 500 5.5.1 "Too many errors" and close
//     (go-smtp's errThreshold, besides Petrel's limits in errlimit.go).
//   - Success texts: 235 2.0.0 "Authentication succeeded", 250 for
//     MAIL/RCPT, and the EHLO greeting "250-Hello <client>".

func reply(code int, e1, e2, e3 int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{e1, e2, e3}, Message: msg}
}

// replyFor is the one mapping from an error to the client's reply. The
// client sees a short fixed text; callers log err itself. It never passes
// err.Error() on to the client (go-smtp would, for a non-SMTPError).
func replyFor(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, smtp.ErrDataTooLarge):
		return replyTooBig()
	case errors.As(err, &se):
		return se
	case errors.Is(err, errBareLF):
		return reply(550, 5, 5, 2, "Message rejected: bare <LF> received; lines must end with <CR><LF> (RFC 5321 2.3.8)")
	case errors.Is(err, errBareCR):
		return reply(550, 5, 5, 2, "Message rejected: bare <CR> received; lines must end with <CR><LF> (RFC 5321 2.3.8)")
	case errors.Is(err, submit.ErrHeaderTooLarge):
		return reply(552, 5, 3, 4, "Message header exceeds the maximum header size")
	case errors.Is(err, smtp.ErrTooLongLine):
		return replyLineTooLong(0)
	case errors.Is(err, auth.ErrNotFullAddress):
		return reply(535, 5, 7, 8, "Authentication credentials invalid: "+auth.NotFullAddressText)
	case errors.Is(err, auth.ErrBadCredentials):
		return replyBadCredentials()
	case errors.Is(err, auth.ErrRateLimited):
		// Mailu: nginx.py STATUSES["ratelimit"] for smtp.
		return reply(451, 4, 3, 2, "Temporary authentication failure (rate-limit)")
	case errors.Is(err, inbound.ErrUnknownRecipient):
		return reply(550, 5, 1, 1, "Recipient address rejected: no such user here")
	case errors.Is(err, syscall.ENOSPC):
		return replyInsufficientStorage()
	case errors.Is(err, store.ErrQuotaExceeded):
		return reply(552, 5, 2, 2, "Mailbox full: the recipient is over quota")
	case isRoutingTrick(err), errors.Is(err, inbound.ErrBadAddress):
		return replyBadRecipient("", err)
	}
	return replyLocalProblem()
}

// replyForSASL maps an error from a SASL server: Petrel's own replies pass,
// anything else is a response the mechanism could not parse.
func replyForSASL(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	if errors.As(err, &se) || errors.Is(err, auth.ErrBadCredentials) || errors.Is(err, auth.ErrRateLimited) {
		return replyFor(err)
	}
	return reply(501, 5, 5, 2, "Malformed AUTH response")
}

// isLocalProblem reports whether r is the temporary local-problem reply
// (or a full disk), whose cause belongs in the log at WARN.
func isLocalProblem(r *smtp.SMTPError) bool {
	return r.Code == 451 && r.EnhancedCode == smtp.EnhancedCode{4, 3, 0} ||
		r.Code == 452 && r.EnhancedCode == smtp.EnhancedCode{4, 3, 1}
}

// replyTooManyErrors ends a session at the hard error limit; Postfix:
// "421 <myhostname> Error: too many errors" (smtpd.c smtpd_proto).
func replyTooManyErrors(host string) *smtp.SMTPError {
	return reply(421, 4, 7, 0, host+" Error: too many errors")
}

// replyMailboxFull refuses one RCPT whose mailbox is over quota now;
// Postfix/Dovecot LMTP: "452 4.2.2 Mailbox is full".
func replyMailboxFull() *smtp.SMTPError {
	return reply(452, 4, 2, 2, "Mailbox full: the recipient is over quota, try again later")
}

// replyTooBigForQuota refuses one RCPT whose mailbox quota is smaller than
// the declared message size: it can never fit.
func replyTooBigForQuota() *smtp.SMTPError {
	return reply(552, 5, 2, 2, "Message exceeds the recipient's mailbox quota")
}

// replyInsufficientStorage: the disk is (nearly) full. RFC 3463 4.3.1
// "Mail system full"; Postfix's text for queue_minfree and ENOSPC.
func replyInsufficientStorage() *smtp.SMTPError {
	return reply(452, 4, 3, 1, "Insufficient system storage, try again later")
}

func replyLocalProblem() *smtp.SMTPError {
	return reply(451, 4, 3, 0, "Temporary local problem, try again later")
}

// Inbound checks (checks.go), with Mailu's codes: a policy refusal is
// 550 5.7.1, a scanner that cannot answer 451 4.7.1 (Mailu:
// milter_default_action = tempfail).

func replyChecksUnavailable() *smtp.SMTPError {
	return reply(451, 4, 7, 1, "Message could not be checked now, try again later")
}

// replySpoofedLocal: Mailu's ANTISPOOF rules (rspamd force_actions).
func replySpoofedLocal(domain string) *smtp.SMTPError {
	return reply(550, 5, 7, 1, "The sender uses "+safe(domain)+", a domain of this server, but the message "+
		"is not authenticated for it (DMARC did not pass); send it through this server's submission port instead")
}

// replyAuthTempFail: a local From domain whose DMARC check hit a DNS
// failure; it may pass when retried, so it is not refused for good.
func replyAuthTempFail(domain string) *smtp.SMTPError {
	return reply(451, 4, 7, 1, "Could not verify the sender's domain "+safe(domain)+" (DNS failure), try again later")
}

// replyDMARCReject: RFC 7489 6.6.3 / 7.3 with p=reject.
func replyDMARCReject(domain string) *smtp.SMTPError {
	return reply(550, 5, 7, 1, "Rejected by the DMARC policy of "+safe(domain)+
		": neither SPF nor DKIM authenticates the From domain")
}

// replyLineTooLong refuses a DATA line over MaxLineLength (limit; 0 when
// unknown). The text names Petrel's real limit: lines over RFC 5322
// 2.1.1's 998 characters are accepted, as Postfix does, so quoting 998
// would send the sender looking for the wrong problem.
func replyLineTooLong(limit int) *smtp.SMTPError {
	if limit <= 0 {
		return reply(500, 5, 5, 2, "Line too long")
	}
	return reply(500, 5, 5, 2, fmt.Sprintf("Line too long; lines must be at most %d bytes", limit))
}

func replyTooBig() *smtp.SMTPError {
	return reply(552, 5, 3, 4, "Message size exceeds fixed maximum message size")
}

// Mailu: auth.py answers AUTH on port 25 with "AUTH not supported" and
// Auth-Error-Code 502 5.5.1.
func replyNoAuthOn25() *smtp.SMTPError {
	return reply(502, 5, 5, 1, "AUTH not supported on port 25 (server-to-server mail); authenticated clients submit on port 465")
}

// Mailu: nginx.py STATUSES["encryption"] for smtp; RFC 3207 4.
func replyStartTLSFirst() *smtp.SMTPError {
	return reply(530, 5, 7, 0, "Must issue a STARTTLS command first")
}

// RFC 8689 4.1 (and RFC 3463 X.7.10, encryption needed): MAIL FROM
// REQUIRETLS on a session without TLS.
func replyRequireTLSNeedsTLS() *smtp.SMTPError {
	return reply(530, 5, 7, 10, "REQUIRETLS needs a TLS session: issue STARTTLS first")
}

// Dovecot submission-login before AUTH (RFC 4954 6).
func replyAuthRequired() *smtp.SMTPError {
	return reply(530, 5, 7, 0, "Authentication required")
}

// Mailu: nginx.py STATUSES["authentication"] for smtp (RFC 4954 6).
func replyBadCredentials() *smtp.SMTPError {
	return reply(535, 5, 7, 8, "Authentication credentials invalid")
}

// RFC 4954 4.
func replyUnknownMechanism() *smtp.SMTPError {
	return reply(504, 5, 5, 4, "Unrecognized authentication mechanism; use PLAIN or LOGIN")
}

// Mailu: Postfix reject_authenticated_sender_login_mismatch.
func replySenderNotOwned(login string) *smtp.SMTPError {
	return reply(553, 5, 7, 1, "Sender address rejected: not owned by user "+login)
}

// Mailu: postfix.py postfix_sender_rate.
func replyRateLimited() *smtp.SMTPError {
	return reply(450, 4, 2, 1, "You are sending too many emails too fast.")
}

// RFC 3463 5.1.7: bad sender's mailbox address syntax.
func replyBadSender(err error) *smtp.SMTPError {
	return reply(501, 5, 1, 7, "Bad sender address syntax: "+addrProblem(err))
}

// Postfix reject_non_fqdn_sender.
func replyNonFQDNSender(addr string) *smtp.SMTPError {
	return reply(504, 5, 5, 2, "<"+safe(addr)+">: Sender address rejected: need fully-qualified address")
}

func replyNeedMail() *smtp.SMTPError {
	return reply(503, 5, 5, 1, "Need MAIL command first")
}

// Postfix: "Error: nested MAIL command".
func replyNestedMail() *smtp.SMTPError {
	return reply(503, 5, 5, 1, "Nested MAIL command; finish the message or send RSET first")
}

// RFC 5321 3.3: DATA when no recipient was accepted.
func replyNoValidRecipients() *smtp.SMTPError {
	return reply(554, 5, 5, 1, "No valid recipients")
}

// RFC 4954 4.
func replyAuthInTransaction() *smtp.SMTPError {
	return reply(503, 5, 5, 1, "AUTH not allowed during a mail transaction; send RSET first")
}

// RFC 5321 4.5.3.1.10.
func replyTooManyRecipients() *smtp.SMTPError {
	return reply(452, 4, 5, 3, "Too many recipients")
}

// Postfix smtpd_reject_unlisted_recipient.
func replyUnknownRecipient(addr string) *smtp.SMTPError {
	return reply(550, 5, 1, 1, "<"+safe(addr)+">: Recipient address rejected: no such user here")
}

// Mailu: reject_unauth_destination on port 25.
func replyRelayDenied(addr string) *smtp.SMTPError {
	return reply(554, 5, 7, 1, "<"+safe(addr)+">: Relay access denied; this port only takes mail for local domains, authenticated clients submit on port 465")
}

// replyBadRecipient refuses a recipient Petrel will not route. Routing
// tricks get 553 5.1.3 (RFC 3463: bad destination mailbox address syntax)
// with their name; plain syntax errors 501 5.1.3.
func replyBadRecipient(to string, err error) *smtp.SMTPError {
	prefix := ""
	if to != "" {
		prefix = "<" + safe(to) + ">: "
	}
	if isRoutingTrick(err) || errors.Is(err, inbound.ErrBadAddress) {
		return reply(553, 5, 1, 3, prefix+"Recipient address rejected: "+addrProblem(err))
	}
	return reply(501, 5, 1, 3, prefix+"Bad recipient address syntax: "+addrProblem(err))
}

func isRoutingTrick(err error) bool {
	for _, t := range []error{mailaddr.ErrPercentHack, mailaddr.ErrBangPath, mailaddr.ErrQuotedRouting,
		mailaddr.ErrAddressLiteral, mailaddr.ErrDoubleAt} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// addrProblem names what is wrong with an address in words a sender can act
// on, without echoing the error's detail.
func addrProblem(err error) string {
	switch {
	case errors.Is(err, mailaddr.ErrQuotedRouting):
		return "routing characters (@ % !) inside a quoted local part are not accepted"
	case errors.Is(err, mailaddr.ErrPercentHack):
		return "the percent hack (user%host@domain) is not accepted; address the recipient directly"
	case errors.Is(err, mailaddr.ErrBangPath):
		return "bang paths (host!user@domain) are not accepted; address the recipient directly"
	case errors.Is(err, mailaddr.ErrDoubleAt):
		return "more than one @ (or a quoted \"user@host\" local part) is not accepted"
	case errors.Is(err, mailaddr.ErrAddressLiteral):
		return "address literals (user@[ip]) are not accepted; use a domain name"
	case errors.Is(err, inbound.ErrBadAddress):
		return "this address cannot be routed"
	case errors.Is(err, mailaddr.ErrLocalTooLong):
		return "local part longer than 64 characters"
	case errors.Is(err, mailaddr.ErrNoAt):
		return "missing @domain"
	case errors.Is(err, mailaddr.ErrEmptyLocal):
		return "empty local part"
	case errors.Is(err, mailaddr.ErrEmptyDomain), errors.Is(err, mailaddr.ErrBadDomain):
		return "invalid domain"
	case errors.Is(err, mailaddr.ErrControlChar), errors.Is(err, mailaddr.ErrInvalidUTF8):
		return "invalid characters"
	}
	return "malformed address"
}

// RFC 5321 4.5.3.2.6: the client went silent inside DATA.
func replyDataTimeout() *smtp.SMTPError {
	return reply(421, 4, 4, 2, "Timeout while receiving the message; closing connection")
}

func replyQueued(id string) *smtp.SMTPError {
	return reply(250, 2, 0, 0, "Ok: queued as "+id)
}

func replyTooManyConnsFromIP() *smtp.SMTPError {
	return reply(421, 4, 7, 0, "Too many connections from your address, try again later")
}

func replyTooManyConns() *smtp.SMTPError {
	return reply(421, 4, 3, 2, "Too many connections, try again later")
}

// formatReply renders r as one reply line, for the few replies Petrel
// writes without go-smtp (refused connections).
func formatReply(r *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
}

// safe makes client-supplied text fit for a reply or header line: printable
// ASCII and valid UTF-8 pass, everything else becomes '?', and it is cut to
// a sane length.
func safe(s string) string {
	const max = 256
	var b strings.Builder
	for i, r := range s {
		if i >= max {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r == 0x7f || r == 0xfffd || (r >= 0x80 && r < 0xa0) {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
