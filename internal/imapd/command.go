package imapd

import (
	"errors"
	"strings"
)

// sessionState is RFC 9051 3's connection state.
type sessionState int

const (
	stateNotAuthenticated sessionState = 1 << iota
	stateAuthenticated
	stateSelected
	stateLogout
)

// Sets of states a command is valid in.
const (
	anyState     = stateNotAuthenticated | stateAuthenticated | stateSelected
	authStates   = stateAuthenticated | stateSelected
	selectedOnly = stateSelected
)

// commandSpec is one entry of the command table.
type commandSpec struct {
	// states the command is valid in; elsewhere it gets BAD.
	states sessionState
	// run parses the arguments, does the work, writes untagged responses
	// and returns the tagged result (see the package doc).
	run func(s *session, c *command) error
	// noExpunge: the command is FETCH, STORE or SEARCH by sequence
	// number; RFC 9051 7.4.1 forbids EXPUNGE responses during and after
	// it, so expunges made elsewhere wait for the next command that
	// allows them.
	noExpunge bool
}

// command is one command being run.
type command struct {
	tag  string
	name string // upper case; "UID FETCH" for UID commands
	uid  bool   // the UID prefix was given
	// args reads the arguments after the command name: the first call is
	// usually args.SP(), the last args.End().
	args *decoder
}

// result is a tagged response other than the default "OK <NAME>
// completed": a handler returns it as its error.
type result struct {
	kind string // "OK", "NO" or "BAD"
	code string // response code without brackets, "" for none
	text string
}

func (r *result) Error() string { return r.kind + " " + r.text }

// ok is a tagged OK with a response code (APPENDUID, COPYUID, READ-WRITE).
func ok(code, text string) error { return &result{"OK", code, text} }

// no is a tagged NO (RFC 9051 7.1.2) with an optional RFC 5530 code.
func no(code, text string) error { return &result{"NO", code, text} }

// bad is a tagged BAD for a command that is wrong in this state or
// nonsense (RFC 9051 7.1.3).
func bad(text string) error { return &result{"BAD", "", text} }

// errLogout ends the session after the tagged response (LOGOUT).
var errLogout = errors.New("logout")

// commandTable merges the core commands and the message commands
// (FETCH, SEARCH; msgcommands.go). A name in both is a bug.
func commandTable(m *msgCommands) map[string]commandSpec {
	t := coreCommands()
	for name, spec := range messageCommands(m) {
		if _, dup := t[name]; dup {
			panic("imapd: command " + name + " defined twice")
		}
		t[name] = spec
	}
	return t
}

// upperASCII upper-cases a command name.
func upperASCII(s string) string { return strings.ToUpper(s) }
