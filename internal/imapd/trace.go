package imapd

import (
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/obs"
)

// imapTraceFilter decides what a LOG_LEVEL=TRACE protocol trace shows of
// an IMAP session: LOGIN and AUTHENTICATE are redacted up to their tagged
// response (arguments, literals and SASL lines alike), and literals (APPEND
// uploads, FETCH bodies) are counted, never logged.
type imapTraceFilter struct {
	secretTag   string // tag of a LOGIN/AUTHENTICATE in progress
	syncPending bool   // the client announced {n} and waits for "+"
}

func (f *imapTraceFilter) Line(fromClient bool, line string) (string, int64) {
	n, sync, lit := trailingLiteral([]byte(line))
	var opaque int64
	if lit {
		opaque = n
	}
	if !fromClient {
		switch {
		case strings.HasPrefix(line, "+"):
			f.syncPending = false
		case !strings.HasPrefix(line, "*"):
			// A tagged response ends a secret command; one that
			// refuses an announced synchronizing literal means the
			// client will not send it (RFC 9051 7.5).
			tag, _, _ := strings.Cut(line, " ")
			if tag == f.secretTag {
				f.secretTag = ""
			}
			if f.syncPending {
				f.syncPending = false
				return line, -1
			}
		}
		return line, opaque
	}
	if lit && sync {
		f.syncPending = true
	}
	if f.secretTag != "" {
		return obs.Redacted, opaque // a SASL response or the rest of LOGIN
	}
	tag, rest, _ := strings.Cut(line, " ")
	cmd, args, _ := strings.Cut(rest, " ")
	switch strings.ToUpper(cmd) {
	case "LOGIN":
		f.secretTag = tag
		return fmt.Sprintf("%s %s %s", tag, cmd, obs.Redacted), opaque
	case "AUTHENTICATE":
		f.secretTag = tag
		mech, ir, _ := strings.Cut(args, " ")
		if ir != "" {
			return fmt.Sprintf("%s %s %s %s", tag, cmd, mech, obs.Redacted), opaque
		}
		return line, opaque
	}
	return line, opaque
}
