package pop3d

import (
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/obs"
)

// popTraceFilter decides what a LOG_LEVEL=TRACE protocol trace shows of a
// POP3 session: PASS, APOP digests and AUTH data (initial response and SASL
// lines up to +OK/-ERR) are redacted; RETR and TOP bodies are summarised.
type popTraceFilter struct {
	sasl    bool // after AUTH with a mechanism, until +OK or -ERR
	wantMsg bool // the last command was RETR or TOP
	inMsg   bool // inside a RETR/TOP body, until "."
	lines   int
}

func (f *popTraceFilter) Line(fromClient bool, line string) (string, int64) {
	if !fromClient {
		switch {
		case f.inMsg:
			if line == "." {
				f.inMsg = false
				return fmt.Sprintf("[message data: %d lines]", f.lines), 0
			}
			f.lines++
			return "", 0
		case strings.HasPrefix(line, "+OK"):
			f.sasl = false
			if f.wantMsg { // RFC 1939 7: a multi-line body follows
				f.inMsg, f.lines = true, 0
			}
			f.wantMsg = false
		case strings.HasPrefix(line, "-ERR"):
			f.sasl, f.wantMsg = false, false
		}
		return line, 0
	}
	if f.sasl {
		return obs.Redacted, 0 // RFC 5034 4: a SASL response
	}
	verb, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "PASS":
		return verb + " " + obs.Redacted, 0
	case "APOP":
		name, _, _ := strings.Cut(rest, " ")
		return verb + " " + name + " " + obs.Redacted, 0
	case "AUTH":
		if rest == "" {
			return line, 0 // the mechanism list (RFC 5034 4)
		}
		f.sasl = true
		mech, ir, _ := strings.Cut(rest, " ")
		if ir != "" {
			return verb + " " + mech + " " + obs.Redacted, 0
		}
	case "RETR", "TOP":
		f.wantMsg = true
	}
	return line, 0
}
