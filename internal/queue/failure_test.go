package queue

import (
	"strings"
	"testing"
	"time"
)

// TestFailureReport: the DSN for a mailbox found over quota at delivery
// names that recipient with 5.2.2 and carries the original headers.
func TestFailureReport(t *testing.T) {
	msg := string(FailureReport{
		Hostname: "mail.example.com", ID: "dsn1", MessageID: "m1", Sender: "s@remote.test",
		Arrival: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Headers: []byte("Subject: hi\r\nMessage-ID: <x@y>\r\n"),
		Recipients: []string{"full@example.com"}, Code: 552, Status: "5.2.2", Diagnostic: "mailbox full",
	}.Build())
	for _, want := range []string{
		"To: <s@remote.test>\r\n",
		"Content-Type: multipart/report; report-type=delivery-status",
		"Final-Recipient: rfc822; full@example.com\r\n",
		"Action: failed\r\n",
		"Status: 5.2.2\r\n",
		"Diagnostic-Code: smtp; 552 5.2.2 mailbox full",
		"Subject: hi\r\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("DSN lacks %q:\n%s", want, msg)
		}
	}
}
