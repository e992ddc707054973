package managesieve

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/store"
)

// validName checks a script name (RFC 5804 1.6): UTF-8, not empty, no
// control characters (U+0000-001F, U+007F-009F) and no line or paragraph
// separators (U+2028, U+2029).
func validName(name []byte) string {
	switch {
	case len(name) == 0:
		return "Script name is empty"
	case len(name) > maxNameLength:
		return "Script name is longer than " + strconv.Itoa(maxNameLength) + " octets"
	case !utf8.Valid(name):
		return "Script name is not UTF-8"
	}
	for _, r := range string(name) {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 {
			return "Script name contains a control character"
		}
	}
	return ""
}

// scriptName returns argument i as a valid name, or answers NO.
func (s *session) scriptName(b []byte) (string, bool) {
	if why := validName(b); why != "" {
		s.no("", why)
		return "", false
	}
	return string(b), true
}

// storeFailed maps a store error to the reply (RFC 5804 1.3 codes): the
// one place where store errors meet the protocol.
func (s *session) storeFailed(op string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.no("NONEXISTENT", "There is no script by that name")
	case errors.Is(err, store.ErrExists):
		s.no("ALREADYEXISTS", "A script by that name already exists")
	case errors.Is(err, store.ErrSieveActive):
		s.no("ACTIVE", "The active script cannot be deleted; deactivate it first (SETACTIVE \"\")")
	case errors.Is(err, store.ErrSieveMaxSize):
		s.no("QUOTA/MAXSIZE", "Script is larger than "+strconv.FormatInt(s.srv.opts.Limits.MaxSize, 10)+" octets")
	case errors.Is(err, store.ErrSieveMaxScripts):
		s.no("QUOTA/MAXSCRIPTS", "Too many scripts: at most "+strconv.Itoa(s.srv.opts.Limits.MaxScripts))
	case errors.Is(err, store.ErrSieveMaxStorage):
		s.no("QUOTA", "Your scripts would take more than "+strconv.FormatInt(s.srv.opts.Limits.MaxStorage, 10)+" octets")
	default:
		s.log.Error("sieve store failed", "op", op, "err", err)
		s.no("TRYLATER", "Server problem, try again later")
	}
}

// checkScript runs the size check and the syntax check; false after it
// has answered NO.
func (s *session) checkScript(script []byte) bool {
	if max := s.srv.opts.Limits.MaxSize; max > 0 && int64(len(script)) > max {
		s.storeFailed("check", store.ErrSieveMaxSize)
		return false
	}
	if err := s.srv.opts.Validate(script); err != nil {
		// RFC 5804 2.6: a script with errors is refused with NO and a
		// human-readable text saying what is wrong (and where).
		msg := strings.Join(strings.Fields(err.Error()), " ")
		if len(msg) > 900 {
			msg = msg[:900] + "..."
		}
		s.no("", msg)
		return false
	}
	return true
}

// cmdHaveSpace: RFC 5804 2.5.
func (s *session) cmdHaveSpace(c *command) {
	if len(c.args) != 2 || c.args[0].kind != argString || c.args[1].kind != argNumber {
		s.bad("Use HAVESPACE \"name\" size")
		return
	}
	name, ok := s.scriptName(c.args[0].s)
	if !ok {
		return
	}
	if err := s.srv.opts.Store.SieveHaveSpace(s.ctx, s.user, name, int64(c.args[1].n), s.srv.opts.Limits); err != nil {
		s.storeFailed("havespace", err)
		return
	}
	s.ok("", "Putscript would succeed")
}

// cmdPutScript: RFC 5804 2.6; replacing a script keeps it active.
func (s *session) cmdPutScript(c *command) {
	a, ok := s.stringArgs(c, 2)
	if !ok {
		return
	}
	name, ok := s.scriptName(a[0])
	if !ok || !s.checkScript(a[1]) {
		return
	}
	if err := s.srv.opts.Store.PutSieveScript(s.ctx, s.user, name, a[1], s.srv.opts.Limits); err != nil {
		s.storeFailed("putscript", err)
		return
	}
	s.log.Info("sieve script stored", "script", name, "size", len(a[1]))
	s.ok("", "Script stored")
}

// cmdCheckScript: RFC 5804 2.12.
func (s *session) cmdCheckScript(c *command) {
	a, ok := s.stringArgs(c, 1)
	if ok && s.checkScript(a[0]) {
		s.ok("", "Script is valid")
	}
}

// cmdListScripts: RFC 5804 2.7.
func (s *session) cmdListScripts(c *command) {
	if !s.noArgs(c) {
		return
	}
	l, err := s.srv.opts.Store.ListSieveScripts(s.ctx, s.user)
	if err != nil {
		s.storeFailed("listscripts", err)
		return
	}
	for _, e := range l {
		s.writeString([]byte(e.Name))
		if e.Active {
			s.w.WriteString(" ACTIVE")
		}
		s.w.WriteString("\r\n")
	}
	s.ok("", "Listscripts completed")
}

// cmdSetActive: RFC 5804 2.8; "" deactivates.
func (s *session) cmdSetActive(c *command) {
	a, ok := s.stringArgs(c, 1)
	if !ok {
		return
	}
	name := ""
	if len(a[0]) > 0 {
		if name, ok = s.scriptName(a[0]); !ok {
			return
		}
	}
	if err := s.srv.opts.Store.SetActiveSieveScript(s.ctx, s.user, name); err != nil {
		s.storeFailed("setactive", err)
		return
	}
	if name == "" {
		s.log.Info("sieve scripts deactivated")
		s.ok("", "No script is active now")
		return
	}
	s.log.Info("sieve script activated", "script", name)
	s.ok("", "Script activated")
}

// cmdGetScript: RFC 5804 2.9; the script always goes as a literal.
func (s *session) cmdGetScript(c *command) {
	a, ok := s.stringArgs(c, 1)
	if !ok {
		return
	}
	name, ok := s.scriptName(a[0])
	if !ok {
		return
	}
	script, err := s.srv.opts.Store.GetSieveScript(s.ctx, s.user, name)
	if err != nil {
		s.storeFailed("getscript", err)
		return
	}
	s.w.WriteString("{" + strconv.Itoa(len(script)) + "}\r\n")
	s.w.Write(script)
	s.w.WriteString("\r\n")
	s.ok("", "Getscript completed")
}

// cmdDeleteScript: RFC 5804 2.10; the active script is refused (ACTIVE).
func (s *session) cmdDeleteScript(c *command) {
	a, ok := s.stringArgs(c, 1)
	if !ok {
		return
	}
	name, ok := s.scriptName(a[0])
	if !ok {
		return
	}
	if err := s.srv.opts.Store.DeleteSieveScript(s.ctx, s.user, name); err != nil {
		s.storeFailed("deletescript", err)
		return
	}
	s.log.Info("sieve script deleted", "script", name)
	s.ok("", "Script deleted")
}

// cmdRenameScript: RFC 5804 2.11.1; the active script stays active.
func (s *session) cmdRenameScript(c *command) {
	a, ok := s.stringArgs(c, 2)
	if !ok {
		return
	}
	oldName, ok := s.scriptName(a[0])
	if !ok {
		return
	}
	newName, ok := s.scriptName(a[1])
	if !ok {
		return
	}
	if err := s.srv.opts.Store.RenameSieveScript(s.ctx, s.user, oldName, newName); err != nil {
		s.storeFailed("renamescript", err)
		return
	}
	s.log.Info("sieve script renamed", "script", oldName, "new_name", newName)
	s.ok("", "Script renamed")
}
