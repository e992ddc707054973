package managesieve

import (
	"strings"

	"github.com/petrelmail/petrel/internal/obs"
)

// sieveTraceFilter decides what a LOG_LEVEL=TRACE protocol trace shows of
// a ManageSieve session: AUTHENTICATE's initial response and every SASL
// response until the server's OK or NO are redacted; literals (scripts,
// long names) are counted, not shown.
type sieveTraceFilter struct {
	sasl bool // inside AUTHENTICATE, until OK, NO or BYE
}

func (f *sieveTraceFilter) Line(fromClient bool, line string) (string, int64) {
	n, lit := trailingLiteral([]byte(line))
	var opaque int64
	if lit {
		opaque = n
	}
	if !fromClient {
		if strings.HasPrefix(line, "OK") || strings.HasPrefix(line, "NO") || strings.HasPrefix(line, "BYE") {
			f.sasl = false
		}
		return line, opaque
	}
	if f.sasl {
		return obs.Redacted, opaque // RFC 5804 2.1: a SASL response
	}
	verb, rest, _ := strings.Cut(line, " ")
	if equalFold(verb, "AUTHENTICATE") {
		f.sasl = true
		mech, ir, _ := strings.Cut(rest, " ")
		if ir != "" {
			return verb + " " + mech + " " + obs.Redacted, opaque
		}
	}
	return line, opaque
}
