package smtpd

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/connlimit"
	"github.com/petrelmail/petrel/internal/obs"
)

// connTrace is go-smtp's ConnDebug hook: with LOG_LEVEL=TRACE every
// session's dialogue is logged line by line under its connection id, with
// AUTH data redacted and message data summarised (smtpTraceFilter).
// Below TRACE it returns nil writers and go-smtp tees nothing.
func (s *Server) connTrace(c net.Conn) (fromClient, toClient io.Writer) {
	tc, ok := connlimit.As[*trackedConn](c)
	if !ok {
		return nil, nil
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.trace == nil { // after STARTTLS the same trace goes on
		tc.trace = obs.NewTrace(tc.log, &smtpTraceFilter{})
		if tc.trace == nil {
			return nil, nil
		}
	}
	return tc.trace.Client(), tc.trace.Server()
}

// smtpTraceFilter decides what a trace shows of an SMTP dialogue: the
// payload of AUTH (initial response and every line up to the final reply)
// is redacted, DATA content is summarised, BDAT chunks are counted.
type smtpTraceFilter struct {
	sasl   bool // after AUTH until a reply other than 334
	inData bool // after 354 until the lone "."
	lines  int
	octets int
}

func (f *smtpTraceFilter) Line(fromClient bool, line string) (string, int64) {
	if !fromClient {
		code := line
		if len(code) > 3 {
			code = code[:3]
		}
		switch {
		case code == "354":
			f.inData, f.lines, f.octets = true, 0, 0
		case code != "334":
			f.sasl = false
		}
		return line, 0
	}
	switch {
	case f.inData:
		if line == "." {
			f.inData = false
			return fmt.Sprintf("[message data: %d lines, %d octets]", f.lines, f.octets), 0
		}
		f.lines++
		f.octets += len(line) + 2
		return "", 0
	case f.sasl:
		return obs.Redacted, 0 // a SASL response (RFC 4954 4)
	}
	verb, rest, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "AUTH":
		f.sasl = true
		mech, ir, _ := strings.Cut(rest, " ")
		if ir != "" {
			return verb + " " + mech + " " + obs.Redacted, 0
		}
		return line, 0
	case "BDAT":
		// RFC 3030 2: BDAT size [LAST], then size octets of data.
		sz, _, _ := strings.Cut(rest, " ")
		if n, err := strconv.ParseInt(sz, 10, 64); err == nil && n > 0 {
			return line, n
		}
	}
	return line, 0
}
