package imapd

import (
	"strings"
)

// cmdEnable is ENABLE (RFC 5161, RFC 9051 6.3.1): CONDSTORE, QRESYNC
// (RFC 7162) and IMAP4rev2. Unknown or refused extensions (UTF8=ACCEPT)
// are left out of the ENABLED response.
func cmdEnable(s *session, c *command) error {
	d := c.args
	var caps []string
	for d.Accept(' ') {
		caps = append(caps, d.Atom())
	}
	if err := d.End(); err != nil {
		return err
	}
	if len(caps) == 0 {
		return bad("ENABLE needs at least one capability")
	}
	var enabled []string
	for _, cp := range caps {
		switch upperASCII(cp) {
		case "CONDSTORE":
			if !s.condstore {
				s.enableCondstore()
				enabled = append(enabled, "CONDSTORE")
			}
		case "QRESYNC":
			// RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
			if !s.condstore {
				s.enableCondstore()
			}
			if !s.qresync {
				s.qresync = true
				enabled = append(enabled, "QRESYNC")
			}
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2 = true
				s.w.utf8 = true // RFC 9051 4.3: UTF-8 in quoted strings
				enabled = append(enabled, "IMAP4rev2")
			}
		}
	}
	s.w.Untagged()
	s.w.Raw("ENABLED")
	for _, e := range enabled {
		s.w.Byte(' ')
		s.w.Raw(e)
	}
	s.w.CRLF()
	return nil
}

// cmdID is ID (RFC 2971): the client's identification is logged, the
// server names itself.
func cmdID(s *session, c *command) error {
	d := c.args
	d.SP()
	var fields []string
	if d.Is('(') {
		d.List(func() bool {
			k := d.String()
			d.SP()
			v, _ := d.NString()
			if len(fields) < 60 { // RFC 2971 3.3: at most 30 pairs
				fields = append(fields, k, truncate(v, 256))
			}
			return d.Err() == nil
		})
	} else {
		d.NString() // NIL
	}
	if err := d.End(); err != nil {
		return err
	}
	if len(fields) > 0 {
		s.log.Debug("client id", "id", strings.Join(fields, " "))
	}
	s.w.Untagged()
	s.w.Raw(`ID ("name" "Petrel")`)
	s.w.CRLF()
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// quotaRoot is the one quota root: the user's whole storage (Mailu:
// quota_bytes covers every mailbox).
const quotaRoot = ""

// cmdGetQuotaRoot is GETQUOTAROOT mailbox (RFC 9208 4.3.2).
func cmdGetQuotaRoot(s *session, c *command) error {
	d := c.args
	d.SP()
	name := s.mailboxArg(d)
	if err := d.End(); err != nil {
		return err
	}
	if _, err := s.srv.opts.Store.GetMailbox(s.ctx, s.user, name); err != nil {
		return mailboxError(err)
	}
	used, limit, err := s.srv.opts.Store.Quota(s.ctx, s.user)
	if err != nil {
		return err
	}
	s.w.Untagged()
	s.w.Raw("QUOTAROOT ")
	s.writeMailbox(name)
	if limit > 0 {
		s.w.Raw(` ""`)
	}
	s.w.CRLF()
	if limit > 0 {
		s.writeQuota(used, limit)
	}
	return nil
}

// cmdGetQuota is GETQUOTA root (RFC 9208 4.2.1).
func cmdGetQuota(s *session, c *command) error {
	d := c.args
	d.SP()
	root := d.AString()
	if err := d.End(); err != nil {
		return err
	}
	used, limit, err := s.srv.opts.Store.Quota(s.ctx, s.user)
	if err != nil {
		return err
	}
	if root != quotaRoot || limit <= 0 {
		// No limit means no quota root (RFC 9208 4.2.1).
		return no("NONEXISTENT", "No such quota root")
	}
	s.writeQuota(used, limit)
	return nil
}

// writeQuota writes `* QUOTA "" (STORAGE used limit)` in KiB (RFC 9208
// 5.1: STORAGE is in units of 1024 octets).
func (s *session) writeQuota(used, limit int64) {
	s.w.Untagged()
	s.w.Raw(`QUOTA "" (STORAGE `)
	s.w.Uint(uint64((max(used, 0) + 1023) / 1024))
	s.w.Byte(' ')
	s.w.Uint(uint64(limit / 1024))
	s.w.Raw(")")
	s.w.CRLF()
}

// cmdSetQuota is SETQUOTA: quotas are the admin's (Mailu: quota_bytes),
// not the user's.
func cmdSetQuota(s *session, c *command) error {
	d := c.args
	d.SP()
	d.AString()
	d.SP()
	d.List(func() bool { d.Atom(); d.SP(); d.Number64(); return d.Err() == nil })
	if err := d.End(); err != nil {
		return err
	}
	return no("NOPERM", "Quotas are set by the administrator")
}
