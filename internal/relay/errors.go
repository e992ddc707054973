package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/queue"
)

// attemptError is a failure of one connection attempt. stop means another
// address would not help (or could deliver twice): the queue retries later.
type attemptError struct {
	de   *queue.DeliveryError
	stop bool
	// plainRetry: opportunistic STARTTLS failed in the handshake; the same
	// address may be tried again without TLS (Postfix does the same for
	// smtp_tls_security_level=may).
	plainRetry bool
}

// fromReply maps an SMTP reply (or any error met while waiting for one) to
// a DeliveryError. 5xx is permanent, everything else is temporary: 4xx,
// unexpected codes, I/O errors, timeouts, cancellation.
func fromReply(err error, remote string) *queue.DeliveryError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		de := &queue.DeliveryError{
			Permanent: se.Code >= 500 && se.Code <= 599,
			Code:      se.Code,
			Message:   oneLine(se.Message),
			Remote:    remote,
		}
		if ec := se.EnhancedCode; ec != smtp.NoEnhancedCode && ec != smtp.EnhancedCodeNotSet {
			de.Enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
		}
		return de
	}
	return localError(err, remote)
}

// localError is a failure with no SMTP reply: connect, TLS, I/O, timeouts.
// All of them are temporary (RFC 3463 X.4.x network and routing status).
func localError(err error, remote string) *queue.DeliveryError {
	enh := "4.4.2" // bad connection
	switch {
	case errors.Is(err, context.Canceled):
		enh = "4.3.0"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		enh = "4.4.7" // delivery time expired
	}
	return &queue.DeliveryError{Enhanced: enh, Message: oneLine(err.Error()), Remote: remote}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// oneLine keeps a multi-line reply on one line for logs and the DSN.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// parseReply builds the SMTPError for a reply read outside go-smtp,
// splitting off an RFC 3463 enhanced code when the text starts with one.
func parseReply(code int, msg string) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: code, Message: msg, EnhancedCode: smtp.EnhancedCodeNotSet}
	first, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return se
	}
	parts := strings.Split(first, ".")
	if len(parts) != 3 {
		return se
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return se
		}
		ec[i] = n
	}
	se.EnhancedCode, se.Message = ec, rest
	return se
}

// permanent reports whether a recipient result is a permanent failure.
func permanent(err error) bool {
	var de *queue.DeliveryError
	return errors.As(err, &de) && de.Permanent
}
