package smtpd

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/submit"
)

// fakePreparer marks what it prepared and records the meta it got.
type fakePreparer struct {
	mu    sync.Mutex
	metas []submit.Meta
	err   error // returned after reading the whole body
}

func (f *fakePreparer) Prepare(ctx context.Context, src io.Reader, dst io.Writer, meta submit.Meta) error {
	f.mu.Lock()
	f.metas = append(f.metas, meta)
	ferr := f.err
	f.mu.Unlock()
	if _, err := io.WriteString(dst, "X-Prepared: yes\r\n"); err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	return ferr
}

func (f *fakePreparer) calls() []submit.Meta {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]submit.Meta(nil), f.metas...)
}

const clientReceived = "Received: from [192.168.1.23] (client.example.net [203.0.113.7])\r\n\tby laptop.local; Tue, 4 Mar 2025 05:06:00 +0100\r\n"

// The Preparer runs on 465 (and 587), with the login and sender, and
// replaces Petrel's Received header; port 25 is unchanged.
func TestSubmissionPreparer(t *testing.T) {
	for _, role := range []Role{RoleSubmissions, RoleSubmission, RoleMX} {
		t.Run(role.String(), func(t *testing.T) {
			fp := &fakePreparer{}
			e := startServer(t, role, func(o *Options) { o.Submission = fp })
			c := e.dial()
			c.ehlo()
			rcpt := "alice@example.test"
			if role != RoleMX {
				if role == RoleSubmission {
					c.starttls(e.cert.Client)
					c.ehlo()
				}
				c.login("alice@example.test", "alice-secret-pw")
				rcpt = "friend@foreign.test"
			}
			c.sendMail("alice@example.test", []string{rcpt}, clientReceived+simpleBody)
			got := e.deliv.delivered()
			if len(got) != 1 {
				t.Fatalf("delivered %d messages", len(got))
			}
			body := got[0].body
			if role == RoleMX {
				if len(fp.calls()) != 0 || strings.Contains(body, "X-Prepared") {
					t.Fatalf("port 25 used the Preparer:\n%s", body)
				}
				if !strings.HasPrefix(body, "Received: from client.example.net ([127.0.0.1])") {
					t.Errorf("port 25 lost its Received header:\n%s", body)
				}
				return
			}
			calls := fp.calls()
			if len(calls) != 1 || calls[0].User != "alice@example.test" || calls[0].Sender != "alice@example.test" || calls[0].ID != got[0].env.ID {
				t.Fatalf("Prepare calls %+v (msgid %s)", calls, got[0].env.ID)
			}
			if !strings.HasPrefix(body, "X-Prepared: yes\r\n"+clientReceived) {
				t.Fatalf("not prepared, or Petrel's Received header added:\n%s", body)
			}
			if strings.Contains(body, "(Petrel)") {
				t.Errorf("a submission carries Petrel's Received header:\n%s", body)
			}
		})
	}
}

// With the real Preparer the client's Received header and client fields
// are gone, and Message-ID and Date are added.
func TestSubmissionRealPreparer(t *testing.T) {
	p := submit.New(submit.Options{Hostname: testHost, Now: func() time.Time { return time.Unix(1741061167, 0) }})
	e := startServer(t, RoleSubmissions, func(o *Options) { o.Submission = p })
	c := e.dial()
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	msg := clientReceived + "From: alice@example.test\r\nUser-Agent: Thunderbird\r\nSubject: hi\r\n\r\nhello\r\n"
	c.sendMail("alice@example.test", []string{"friend@foreign.test"}, msg)
	body := e.deliv.delivered()[0].body
	for _, gone := range []string{"Received:", "203.0.113.7", "User-Agent"} {
		if strings.Contains(body, gone) {
			t.Errorf("%q survived:\n%s", gone, body)
		}
	}
	if !strings.Contains(body, "Message-ID: <") || !strings.Contains(body, "@"+testHost+">\r\n") || !strings.Contains(body, "\r\nDate: ") {
		t.Errorf("Message-ID or Date not added:\n%s", body)
	}
}

// Errors from the Preparer: a header too large is the client's fault
// (552), the client's bare LF keeps its reply although the Preparer read
// it, and anything else is a local problem (451).
func TestSubmissionPreparerErrors(t *testing.T) {
	tests := []struct {
		name     string
		prepErr  error
		body     string
		code     int
		enh      string
		realPrep bool
	}{
		{"header too large", nil, "X-Pad: " + strings.Repeat("p", 900) + "\r\n", 552, "5.3.4", true},
		{"bare LF", nil, "Subject: x\nbody\r\n", 550, "5.5.2", false},
		{"local failure", errors.New("disk full"), simpleBody, 451, "4.3.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prep Preparer = &fakePreparer{err: tt.prepErr}
			body := tt.body
			if tt.realPrep {
				prep = submit.New(submit.Options{Hostname: testHost})
				// Bigger than MaxHeaderBytes, within MESSAGE_SIZE_LIMIT.
				body = strings.Repeat(tt.body, submit.MaxHeaderBytes/900+10) + "\r\nbody\r\n"
			}
			e := startServer(t, RoleSubmissions, func(o *Options) {
				o.Submission = prep
				o.MaxMessageBytes = 4 << 20
			})
			c := e.dial()
			c.ehlo()
			c.login("alice@example.test", "alice-secret-pw")
			c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
			c.cmd("RCPT TO:<friend@foreign.test>", 250, "2.0.0")
			c.cmd("DATA", 354, "")
			c.write(body + ".\r\n")
			c.expect(tt.code, tt.enh)
			if n := len(e.deliv.delivered()); n != 0 {
				t.Errorf("%d messages delivered", n)
			}
			// The session goes on.
			c.cmd("RSET", 250, "2.0.0")
		})
	}
}
