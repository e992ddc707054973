package inbound

import (
	"fmt"
	"io"
	"strings"

	"github.com/petrelmail/petrel/internal/msgauth"
)

// returnPath picks the Return-Path fields.
var returnPath = msgauth.Drop("Return-Path")

// withReturnPath puts a Return-Path field holding the envelope sender on
// top of sp, leaving out every Return-Path field already in the header.
// RFC 5321 4.4: the server making the final delivery records the
// reverse-path there; a Return-Path that arrived with the message is not
// trustworthy (Mailu: Postfix drops it in cleanup, message_drop_headers,
// and Dovecot LMTP adds its own at delivery). The usual message has none
// and gets the field prepended; one that has some is re-spooled without
// them, and then sp is consumed.
func (d *Deliverer) withReturnPath(sender string, sp *Spool) (*Spool, error) {
	first, err := firstByte(sp)
	if err != nil {
		return nil, err
	}
	if first == ' ' || first == '\t' {
		// A header that starts with a continuation line would read as
		// part of our field: leave such a message as it came.
		return sp, nil
	}
	field := ReturnPathField(sender)
	has, err := msgauth.OpenedHas(sp, returnPath)
	if err != nil {
		return nil, err
	}
	if !has {
		if err := sp.Prepend([]byte(field)); err != nil {
			return nil, err
		}
		return sp, nil
	}
	out, err := d.NewSpool()
	if err != nil {
		return nil, err
	}
	out.Grow(int64(len(field)) + sp.Size())
	if _, err := io.WriteString(out, field); err != nil {
		out.Abort()
		return nil, err
	}
	rc, err := sp.Open()
	if err != nil {
		out.Abort()
		return nil, err
	}
	defer rc.Close()
	if _, err := msgauth.CopyWithout(out, rc, returnPath); err != nil {
		out.Abort()
		return nil, fmt.Errorf("inbound: return-path: %w", err)
	}
	sp.Abort()
	return out, nil
}

// firstByte is the first byte of sp's body (0 for an empty one).
func firstByte(sp *Spool) (byte, error) {
	rc, err := sp.Open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var b [1]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil && err != io.EOF {
		return 0, err
	}
	return b[0], nil
}

// ReturnPathField is the header line for the reverse-path sender ("" is
// the null sender, written <>). RFC 5322 3.6.7: return = "Return-Path:" path.
func ReturnPathField(sender string) string {
	// The reverse-path was checked by the SMTP parser; CR or LF here would
	// be a caller's bug, and must never split the header.
	sender = strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', '<', '>':
			return -1
		}
		return r
	}, sender)
	return "Return-Path: <" + sender + ">\r\n"
}
