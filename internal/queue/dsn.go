package queue

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// A DSN (RFC 3464) in a multipart/report (RFC 6522): a human-readable
// part, the machine-readable message/delivery-status, and the original
// headers as text/rfc822-headers. When an address, the original headers
// or a reply carry UTF-8, the RFC 6533 types message/global-delivery-status
// and message/global-headers are used and addresses get the utf-8 type.

// dsnRecipient is one recipient's line in a DSN.
type dsnRecipient struct {
	Recipient   string
	Err         *DeliveryError // the failure (or the last one, for expiry and delay)
	Expired     bool           // failed because the queue lifetime ran out
	LastAttempt time.Time
	ORcpt       string // RFC 3461 ORCPT as "type;address", "" if none
	notify      string // RFC 3461 NOTIFY of the recipient, "" if none
}

// dsn is everything one DSN says.
type dsn struct {
	Hostname  string // Reporting-MTA and MAILER-DAEMON's domain
	ID        string // unique: Message-ID and boundary
	MessageID string // Petrel's id of the original message
	Sender    string // original envelope sender, the DSN's To
	Arrival   time.Time
	Date      time.Time
	Delayed   bool // a delay notice (Action: delayed) rather than a failure
	// Success is a success notice (RFC 3461 NOTIFY=SUCCESS): "delivered"
	// (stored locally) or "relayed" (to a next hop without DSN); Err of
	// its recipients may carry the accepting host's reply.
	Success    string
	EnvID      string        // RFC 3461 ENVID: the DSN's Original-Envelope-Id
	Full       []byte        // RET=FULL: the whole original message, sent instead of Headers
	RetryUntil time.Time     // delay notices: when Petrel gives up
	Lifetime   time.Duration // for the expiry text
	Headers    []byte        // original header block, CRLF lines, no blank line
	Recipients []dsnRecipient
}

const rfc5322Date = "Mon, 02 Jan 2006 15:04:05 -0700"

var enhancedRe = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// status is a recipient's RFC 3463 status code for the DSN.
func (r dsnRecipient) status(delayed bool) string {
	e := r.Err
	switch {
	case e != nil && !e.Permanent && e.Enhanced == "2.0.0":
		return "2.0.0" // a success notice
	case delayed:
		if enhancedRe.MatchString(e.Enhanced) && e.Enhanced[0] == '4' {
			return e.Enhanced
		}
		return "4.0.0"
	case r.Expired:
		return "4.4.7" // RFC 3463 3.5: delivery time expired
	case enhancedRe.MatchString(e.Enhanced) && e.Enhanced[0] == '5':
		return e.Enhanced
	}
	return "5.0.0"
}

// reply is the remote reply (or local error) on one line.
func reply(e *DeliveryError) string {
	msg := strings.Join(strings.Fields(e.Message), " ")
	if e.Code == 0 {
		return msg
	}
	parts := []string{fmt.Sprint(e.Code)}
	if e.Enhanced != "" && !strings.HasPrefix(msg, e.Enhanced) {
		parts = append(parts, e.Enhanced)
	}
	if msg != "" {
		parts = append(parts, msg)
	}
	return strings.Join(parts, " ")
}

// advice says what the sender can do about a failure.
func (d *dsn) advice(r dsnRecipient) string {
	if d.Success != "" {
		return "nothing; this notice confirms the delivery you asked to be told about."
	}
	if d.Delayed {
		return "Nothing for now: this is only a warning."
	}
	if r.Expired {
		return fmt.Sprintf("The mail system kept trying for %s and then gave up. The receiving server may be down or misconfigured: send the message again later, or reach the recipient another way.", humanDuration(d.Lifetime))
	}
	st := r.status(false)
	switch {
	case st == "5.1.10":
		return "The recipient's domain does not accept mail (RFC 7505 null MX). Check the address for typing mistakes."
	case strings.HasPrefix(st, "5.1."):
		return "Check the address for typing mistakes, then send the message again."
	case st == "5.2.2":
		return "The recipient's mailbox is full. Send the message again later, or reach the recipient another way."
	case st == "5.2.3" || st == "5.3.4":
		return "The message is too large for the receiving server. Send it again without large attachments, or share the files another way."
	case strings.HasPrefix(st, "5.7."):
		return "The receiving server refused the message by policy (for example as spam, or because of the sender's authentication). If you think this is wrong, forward this notice to your mail administrator."
	}
	return "If the reason above is unclear, forward this notice to your mail administrator."
}

// humanDuration writes 120h as "5 days".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		if n := d / (24 * time.Hour); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	case d >= time.Hour && d%time.Hour == 0:
		if n := d / time.Hour; n != 1 {
			return fmt.Sprintf("%d hours", n)
		}
		return "1 hour"
	}
	return d.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// global reports whether the DSN needs the RFC 6533 (UTF-8) types.
func (d *dsn) global() bool {
	if !isASCII(d.Sender) || !isASCII(string(d.Headers)) {
		return true
	}
	for _, r := range d.Recipients {
		if !isASCII(r.Recipient) || !isASCII(r.Err.Message) || !isASCII(r.Err.Remote) {
			return true
		}
	}
	return false
}

// Build returns the DSN as a message with CRLF line endings.
func (d *dsn) Build() []byte {
	global := d.global()
	boundary := "=_petrel_dsn_" + d.ID
	var b bytes.Buffer
	subject := "Undelivered Mail Returned to Sender"
	if d.Delayed {
		subject = "Delayed Mail (still being retried)"
	}
	if d.Success != "" {
		subject = "Successful Mail Delivery Report"
	}
	hdr := func(k, v string) { b.WriteString(fold(k+": "+v) + "\r\n") }
	hdr("From", "Mail Delivery System <MAILER-DAEMON@"+d.Hostname+">")
	hdr("To", "<"+d.Sender+">")
	hdr("Subject", subject)
	hdr("Date", d.Date.Format(rfc5322Date))
	hdr("Message-ID", "<"+d.ID+"@"+d.Hostname+">")
	hdr("Auto-Submitted", "auto-replied") // RFC 3834
	hdr("MIME-Version", "1.0")
	b.WriteString("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n")
	if global || !isASCII(string(d.Full)) {
		hdr("Content-Transfer-Encoding", "8bit") // RFC 2045 6.4: a multipart with 8bit parts is 8bit
	}
	b.WriteString("\r\nThis is a MIME-encapsulated message.\r\n\r\n")

	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary); err != nil {
		panic(err) // the boundary is built from safe characters
	}
	d.writeText(mw)
	d.writeStatus(mw, global)
	d.writeHeaders(mw, global)
	mw.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

func (d *dsn) writeText(mw *multipart.Writer) {
	var t strings.Builder
	line := func(s string) { t.WriteString(s + "\n") }
	line("This is the mail system at " + d.Hostname + ".")
	line("")
	if d.Success == "relayed" {
		wrap(&t, "Your message was handed on to the recipients' mail systems below, which do not send delivery notifications: this is the last confirmation the mail system can give.", "")
	} else if d.Success != "" {
		wrap(&t, "Your message was successfully delivered to the recipients below, as you asked to be told.", "")
	} else if d.Delayed {
		line("####################################################################")
		line("# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #")
		line("####################################################################")
		line("")
		wrap(&t, "Your message could not be delivered yet to the recipients below. The mail system will keep trying until "+
			d.RetryUntil.Format(rfc5322Date)+"; if it still fails then, you will get another notice.", "")
	} else {
		wrap(&t, "I'm sorry to have to inform you that your message could not be delivered to one or more recipients. Its headers are attached below.", "")
	}
	line("")
	for _, r := range d.Recipients {
		line("<" + r.Recipient + ">:")
		e := r.Err
		if e.Remote != "" && e.Code != 0 {
			wrap(&t, "host "+e.Remote+" said: "+reply(e), "    ")
		} else {
			wrap(&t, reply(e), "    ")
		}
		wrap(&t, "What you can do: "+d.advice(r), "    ")
		line("")
	}
	body := strings.ReplaceAll(t.String(), "\n", "\r\n")
	h := textproto.MIMEHeader{}
	h.Set("Content-Description", "Notification")
	if isASCII(body) {
		h.Set("Content-Type", "text/plain; charset=us-ascii")
		w, _ := mw.CreatePart(h)
		w.Write([]byte(body))
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	w, _ := mw.CreatePart(h)
	qp := quotedprintable.NewWriter(w)
	qp.Write([]byte(strings.ToValidUTF8(body, "\uFFFD")))
	qp.Close()
}

// wrap writes s as lines of at most about 72 columns, each with prefix.
func wrap(t *strings.Builder, s, prefix string) {
	col := 0
	for i, w := range strings.Fields(s) {
		n := utf8.RuneCountInString(w)
		switch {
		case i == 0:
			t.WriteString(prefix)
			col = len(prefix)
		case col+1+n > 72:
			t.WriteString("\n" + prefix)
			col = len(prefix)
		default:
			t.WriteString(" ")
			col++
		}
		t.WriteString(w)
		col += n
	}
	t.WriteString("\n")
}

func (d *dsn) writeStatus(mw *multipart.Writer, global bool) {
	var b strings.Builder
	field := func(k, v string) { b.WriteString(fold(k+": "+v) + "\r\n") }
	// RFC 3464 2.2: per-message fields.
	field("Reporting-MTA", "dns; "+d.Hostname)
	if d.EnvID != "" {
		field("Original-Envelope-Id", clean(d.EnvID, global)) // RFC 3464 2.2.1
	}
	field("X-Petrel-Message-ID", clean(d.MessageID, global))
	if !d.Arrival.IsZero() {
		field("Arrival-Date", d.Arrival.Format(rfc5322Date))
	}
	// RFC 3464 2.3: per-recipient fields, each group after a blank line.
	for _, r := range d.Recipients {
		b.WriteString("\r\n")
		addrType := "rfc822"
		if !isASCII(r.Recipient) {
			addrType = "utf-8" // RFC 6533 3
		}
		if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && addr != "" {
			field("Original-Recipient", typ+"; "+clean(addr, global)) // RFC 3464 2.3.1
		}
		field("Final-Recipient", addrType+"; "+clean(r.Recipient, global))
		action := "failed"
		switch {
		case d.Success != "":
			action = d.Success
		case d.Delayed:
			action = "delayed"
		}
		field("Action", action)
		field("Status", r.status(d.Delayed))
		e := r.Err
		if e.Remote != "" {
			field("Remote-MTA", "dns; "+clean(e.Remote, global))
		}
		if e.Code != 0 {
			field("Diagnostic-Code", "smtp; "+clean(reply(e), global))
		} else if msg := reply(e); msg != "" {
			field("Diagnostic-Code", "X-Petrel; "+clean(msg, global))
		}
		if !r.LastAttempt.IsZero() {
			field("Last-Attempt-Date", r.LastAttempt.Format(rfc5322Date))
		}
		if d.Delayed && !d.RetryUntil.IsZero() {
			field("Will-Retry-Until", d.RetryUntil.Format(rfc5322Date))
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Description", "Delivery report")
	if global {
		h.Set("Content-Type", "message/global-delivery-status")
		h.Set("Content-Transfer-Encoding", "8bit")
	} else {
		h.Set("Content-Type", "message/delivery-status")
	}
	w, _ := mw.CreatePart(h)
	w.Write([]byte(b.String()))
}

func (d *dsn) writeHeaders(mw *multipart.Writer, global bool) {
	if len(d.Full) > 0 {
		// RFC 3461 4.3 RET=FULL: the whole message.
		h := textproto.MIMEHeader{}
		h.Set("Content-Description", "Undelivered Message")
		if d.Success != "" {
			h.Set("Content-Description", "Delivered Message")
		}
		h.Set("Content-Type", "message/rfc822")
		if !isASCII(string(d.Full)) {
			h.Set("Content-Transfer-Encoding", "8bit") // as it came, under 8BITMIME
		}
		w, _ := mw.CreatePart(h)
		w.Write(d.Full)
		return
	}
	if len(d.Headers) == 0 {
		return
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Description", "Undelivered Message Headers")
	if d.Success != "" {
		h.Set("Content-Description", "Message Headers")
	}
	if global {
		h.Set("Content-Type", "message/global-headers")
		h.Set("Content-Transfer-Encoding", "8bit")
	} else {
		h.Set("Content-Type", "text/rfc822-headers")
	}
	w, _ := mw.CreatePart(h)
	w.Write(d.Headers)
}

// clean makes a value safe for one DSN field: no line breaks or other
// controls, and only ASCII in a message/delivery-status (RFC 3464 2.1.1)
// while valid UTF-8 may stay in a global one.
func clean(s string, global bool) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\r' || r == '\n':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		case r >= 0x80 && !global:
			return '?'
		}
		return r
	}, s)
}

// fold breaks a header field longer than 78 columns at spaces (RFC 5322
// 2.2.3); a word that does not fit stays whole, up to the 998-octet limit.
func fold(s string) string {
	if len(s) <= 78 {
		return s
	}
	var b strings.Builder
	line := 0
	for i, w := range strings.Split(s, " ") {
		if i > 0 {
			if line+1+len(w) > 78 && line > 0 {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteString(" ")
			line++
		}
		if len(w) > 990 {
			w = w[:990]
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// FailureReport is a DSN about recipients that failed permanently before
// the message reached the queue: a local mailbox found over quota when
// the message was stored (RFC 3463 5.2.2), after the other recipients
// had it.
type FailureReport struct {
	Hostname   string // Reporting-MTA
	ID         string // unique: the DSN's Message-ID and boundary
	MessageID  string // Petrel's id of the original message
	Sender     string // the original envelope sender: the DSN goes to it
	Arrival    time.Time
	Headers    []byte   // original header block, CRLF lines
	Recipients []string // the failed recipients
	Code       int      // SMTP-style code of the failure, e.g. 552
	Status     string   // RFC 3463 status, e.g. "5.2.2"
	Diagnostic string   // one line for Diagnostic-Code
}

// Build returns the DSN as a message with CRLF line endings.
func (f FailureReport) Build() []byte {
	now := time.Now()
	d := &dsn{Hostname: f.Hostname, ID: f.ID, MessageID: f.MessageID, Sender: f.Sender,
		Arrival: f.Arrival, Date: now, Headers: f.Headers}
	for _, r := range f.Recipients {
		d.Recipients = append(d.Recipients, dsnRecipient{Recipient: r, LastAttempt: now,
			Err: &DeliveryError{Permanent: true, Code: f.Code, Enhanced: f.Status, Message: f.Diagnostic}})
	}
	return d.Build()
}

// SuccessReport is the RFC 3461 NOTIFY=SUCCESS notice for recipients whose
// mailboxes here received the message (Action: delivered).
type SuccessReport struct {
	Hostname   string // Reporting-MTA
	ID         string // unique: the DSN's Message-ID and boundary
	MessageID  string // Petrel's id of the original message
	Sender     string // the original envelope sender: the notice goes to it
	EnvID      string // RFC 3461 ENVID, "" if none
	Arrival    time.Time
	Headers    []byte // original header block, CRLF lines
	Full       []byte // RET=FULL: the whole message instead of Headers
	Recipients []SuccessRecipient
}

// SuccessRecipient is one recipient of a success notice.
type SuccessRecipient struct {
	Recipient string // the address as given in RCPT
	ORcpt     string // RFC 3461 ORCPT as "type;address", "" if none
}

// Build returns the notice as a message with CRLF line endings.
func (s SuccessReport) Build() []byte {
	now := time.Now()
	d := &dsn{Hostname: s.Hostname, ID: s.ID, MessageID: s.MessageID, Sender: s.Sender, EnvID: s.EnvID,
		Arrival: s.Arrival, Date: now, Headers: s.Headers, Full: s.Full, Success: "delivered"}
	for _, r := range s.Recipients {
		d.Recipients = append(d.Recipients, dsnRecipient{Recipient: r.Recipient, ORcpt: r.ORcpt, LastAttempt: now,
			Err: &DeliveryError{Code: 250, Enhanced: "2.0.0", Message: "delivered to mailbox", Remote: s.Hostname}})
	}
	return d.Build()
}

// Notifies reports whether an RFC 3461 NOTIFY list names what (SUCCESS,
// FAILURE, DELAY or NEVER).
func Notifies(notify, what string) bool { return notifies(notify, what) }
