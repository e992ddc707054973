package inbound

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/petrelmail/petrel/internal/msgauth"
)

// withReturnPath re-spools sp behind a Return-Path field holding the
// envelope sender, leaving out every Return-Path field already in the
// header. RFC 5321 4.4: the server making the final delivery records the
// reverse-path there; a Return-Path that arrived with the message is not
// trustworthy (Mailu: Postfix drops it in cleanup, message_drop_headers,
// and Dovecot LMTP adds its own at delivery). On success sp is consumed,
// unless it is returned as it was.
func (d *Deliverer) withReturnPath(sender string, sp *Spool) (*Spool, error) {
	rc, err := sp.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	if first, err := br.Peek(1); err == nil && (first[0] == ' ' || first[0] == '\t') {
		// A header that starts with a continuation line would read as
		// part of our field: leave such a message as it came.
		return sp, nil
	}
	out, err := d.NewSpool()
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(out, ReturnPathField(sender)); err != nil {
		out.Abort()
		return nil, err
	}
	if _, err := msgauth.CopyWithout(out, br, func(name, _ string) bool {
		return strings.EqualFold(name, "Return-Path")
	}); err != nil {
		out.Abort()
		return nil, fmt.Errorf("inbound: return-path: %w", err)
	}
	sp.Abort()
	return out, nil
}

// ReturnPathField is the header line for the reverse-path sender ("" is
// the null sender, written <>). RFC 5322 3.6.7: return = "Return-Path:" path.
func ReturnPathField(sender string) string {
	// The reverse-path was checked by the SMTP parser; CR or LF here would
	// be a caller's bug, and must never split the header.
	sender = strings.NewReplacer("\r", "", "\n", "", "<", "", ">", "").Replace(sender)
	return "Return-Path: <" + sender + ">\r\n"
}
