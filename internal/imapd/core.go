package imapd

import (
	"strconv"
	"strings"
)

// coreCommands is every command but FETCH and SEARCH.
func coreCommands() map[string]commandSpec {
	return map[string]commandSpec{
		"CAPABILITY":   {states: anyState, run: cmdCapability},
		"NOOP":         {states: anyState, run: cmdNoop},
		"LOGOUT":       {states: anyState, run: cmdLogout},
		"ID":           {states: anyState, run: cmdID},
		"STARTTLS":     {states: stateNotAuthenticated, run: cmdStartTLS},
		"LOGIN":        {states: stateNotAuthenticated, run: cmdLogin},
		"AUTHENTICATE": {states: stateNotAuthenticated, run: cmdAuthenticate},

		"ENABLE":       {states: authStates, run: cmdEnable},
		"NAMESPACE":    {states: authStates, run: cmdNamespace},
		"LIST":         {states: authStates, run: cmdList},
		"LSUB":         {states: authStates, run: cmdList},
		"STATUS":       {states: authStates, run: cmdStatus},
		"CREATE":       {states: authStates, run: cmdCreate},
		"DELETE":       {states: authStates, run: cmdDelete},
		"RENAME":       {states: authStates, run: cmdRename},
		"SUBSCRIBE":    {states: authStates, run: cmdSubscribe},
		"UNSUBSCRIBE":  {states: authStates, run: cmdSubscribe},
		"SELECT":       {states: authStates, run: cmdSelect},
		"EXAMINE":      {states: authStates, run: cmdSelect},
		"APPEND":       {states: authStates, run: cmdAppend},
		"IDLE":         {states: authStates, run: cmdIdle},
		"NOTIFY":       {states: authStates, run: cmdNotify},
		"GETQUOTA":     {states: authStates, run: cmdGetQuota},
		"COMPRESS":     {states: authStates, run: cmdCompress},
		"GETQUOTAROOT": {states: authStates, run: cmdGetQuotaRoot},
		"SETQUOTA":     {states: authStates, run: cmdSetQuota},

		"CHECK":       {states: selectedOnly, run: cmdNoop},
		"CLOSE":       {states: selectedOnly, run: cmdClose},
		"UNSELECT":    {states: selectedOnly, run: cmdUnselect},
		"EXPUNGE":     {states: selectedOnly, run: cmdExpunge},
		"UID EXPUNGE": {states: selectedOnly, run: cmdExpunge},
		"STORE":       {states: selectedOnly, run: cmdStore, noExpunge: true},
		"UID STORE":   {states: selectedOnly, run: cmdStore},
		"COPY":        {states: selectedOnly, run: cmdCopy},
		"UID COPY":    {states: selectedOnly, run: cmdCopy},
		"MOVE":        {states: selectedOnly, run: cmdCopy},
		"UID MOVE":    {states: selectedOnly, run: cmdCopy},
	}
}

// capabilities is the CAPABILITY list for the session's state (RFC 9051
// 7.2.2): before TLS on 143 STARTTLS and LOGINDISABLED and no AUTH=
// (RFC 9051 6.2.1, 6.2.3); after login no STARTTLS or AUTH=.
func (s *session) capabilities() string {
	i := 0
	if s.state != stateNotAuthenticated {
		i |= capsAuthenticated
	}
	if s.tls {
		i |= capsTLS
	}
	if s.compressed {
		i |= capsCompressed
	}
	return s.srv.caps[i]
}

// The facts of a session its CAPABILITY list depends on: bits of an
// index into Server.caps.
const (
	capsAuthenticated = 1 << iota
	capsTLS
	capsCompressed
)

// buildCapabilities is the CAPABILITY list of a session in that state.
func (srv *Server) buildCapabilities(authenticated, tlsOn, compressed bool) string {
	caps := []string{"IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "IDLE",
		"NAMESPACE", "UIDPLUS", "MOVE", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
		"ESEARCH", "UNSELECT", "QUOTA", "QUOTA=RES-STORAGE", "CONDSTORE", "QRESYNC", "ID", "CHILDREN",
		"SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
		"STATUS=SIZE", "CREATE-SPECIAL-USE", "SAVEDATE", "WITHIN", "OBJECTID", "PREVIEW",
		"MULTIAPPEND", "CATENATE", "BINARY",
		"APPENDLIMIT=" + strconv.FormatInt(srv.opts.MaxMessageSize, 10),
		"SEARCHRES", "CONTEXT=SEARCH", "CONTEXT=SORT"}
	caps = append(caps, "NOTIFY") // RFC 5465, notify.go
	if authenticated && !compressed {
		caps = append(caps, "COMPRESS=DEFLATE") // RFC 4978: after login, once
	}
	if !authenticated {
		if srv.loginAllowed(tlsOn) {
			caps = append(caps, srv.authCapabilities(tlsOn)...)
		} else {
			caps = append(caps, "LOGINDISABLED")
		}
		if srv.startTLSOffered(tlsOn) {
			caps = append(caps, "STARTTLS")
		}
	}
	return strings.Join(caps, " ")
}

// loginAllowed: TLS is up, or TLS_FLAVOR=notls.
func (s *session) loginAllowed() bool { return s.srv.loginAllowed(s.tls) }

func (srv *Server) loginAllowed(tlsOn bool) bool { return tlsOn || srv.opts.NoTLS }

// startTLSOffered: port 143 with a certificate, before TLS and login.
func (s *session) startTLSOffered() bool {
	return s.state == stateNotAuthenticated && s.srv.startTLSOffered(s.tls)
}

func (srv *Server) startTLSOffered(tlsOn bool) bool {
	return !tlsOn && !srv.opts.Implicit && srv.opts.TLSConfig != nil
}

func cmdCapability(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	s.w.Untagged()
	s.w.Raw("CAPABILITY ")
	s.w.Raw(s.capabilities())
	s.w.CRLF()
	return nil
}

// cmdNoop is NOOP and CHECK (RFC 9051 6.1.2): the updates come from the
// sync after every command.
func cmdNoop(s *session, c *command) error { return c.args.End() }

func cmdLogout(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	s.w.Status("*", "BYE", "", "Logging out")
	return errLogout
}
