package tests

import (
	"strings"
	"testing"
)

// TestDoctorAgainstRunningServer: `petrel doctor` on a running server finds
// every role it serves answering, no AUTH on 25, 587 off and explained,
// the served certificate's names and dates, the queue and disk; a bare
// username given with --user is a problem with its fix.
func TestDoctorAgainstRunningServer(t *testing.T) {
	s := withUsers(t, nil)
	out, err := s.cli("", "doctor", "--no-dns")
	if err != nil {
		t.Fatalf("doctor on a healthy server: %v\n%s", err, out)
	}
	for _, want := range []string{
		"ok      25 smtp (MX): answers: 220 ",
		"ok      25 smtp (MX): offers no AUTH",
		"ok      465 submissions: answers: 220 ",
		"info    587 submission: off",
		"add 587 to PORTS",
		"ok      993 imaps: accepts connections",
		"Certificate:",
		"ok      queue: empty",
		"ok      database: answers",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	out, err = s.cli("", "doctor", "--no-dns", "--user", "alice")
	if err == nil || !strings.Contains(out, "PROBLEM alice: not a full email address") {
		t.Errorf("doctor --user alice: %v\n%s", err, out)
	}
}
