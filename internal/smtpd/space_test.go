package smtpd

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

type fakeSpace struct{ low atomic.Bool }

func (f *fakeSpace) Low() bool { return f.low.Load() }

// TestDiskReserveRefusesNewMail: below DISK_RESERVE new mail gets
// "452 4.3.1" (RFC 3463: insufficient system storage; Postfix queue_minfree)
// at MAIL and, when the disk runs low during a transaction, at the end of
// DATA; on every role. An ENOSPC from the spool gets the same reply, not
// 451 4.3.0 (issue 17).
func TestDiskReserveRefusesNewMail(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmissions, RoleSubmission} {
		t.Run(role.String(), func(t *testing.T) {
			space := &fakeSpace{}
			e := startServer(t, role, func(o *Options) {
				o.Space = space
				if role == RoleSubmission { // plaintext 587 (TLS_FLAVOR=notls) keeps the dialogue simple
					o.NoTLS, o.TLSConfig = true, nil
				}
			})
			c := e.dial()
			c.ehlo()
			from := "s@remote.test"
			if role != RoleMX {
				c.login("alice@example.test", "alice-secret-pw")
				from = "alice@example.test"
			}
			space.low.Store(true)
			c.cmd("MAIL FROM:<"+from+">", 452, "4.3.1")

			space.low.Store(false)
			c.cmd("MAIL FROM:<"+from+">", 250, "2.0.0")
			c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
			space.low.Store(true)
			c.cmd("DATA", 354, "")
			c.write(simpleBody + ".\r\n")
			c.expect(452, "4.3.1")
			if got := e.deliv.delivered(); len(got) != 0 {
				t.Fatalf("delivered %d messages below the reserve", len(got))
			}

			// The disk itself full: ENOSPC from the spool.
			space.low.Store(false)
			e.deliv.mu.Lock()
			e.deliv.spoolErr = fmt.Errorf("inbound: spool: %w", syscall.ENOSPC)
			e.deliv.mu.Unlock()
			c.cmd("MAIL FROM:<"+from+">", 250, "2.0.0")
			c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
			c.cmd("DATA", 354, "")
			c.write(simpleBody + ".\r\n")
			c.expect(452, "4.3.1")
			if !strings.Contains(e.logs.String(), "level=WARN msg=failed") {
				t.Errorf("ENOSPC not logged at WARN:\n%s", e.logs)
			}

			// Space again: mail flows.
			e.deliv.mu.Lock()
			e.deliv.spoolErr = nil
			e.deliv.mu.Unlock()
			c.sendMail(from, []string{"alice@example.test"}, simpleBody)
			if got := e.deliv.delivered(); len(got) != 1 {
				t.Fatalf("delivered %d messages, want 1", len(got))
			}
		})
	}
}
