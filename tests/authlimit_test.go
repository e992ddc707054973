package tests

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// Failed-login limits against the real binary (issue 17; README "Failed-login
// limits"). Clients bind to chosen 127.0.x.y addresses, each its own /24
// (the default AUTH_RATELIMIT_IP_V4_MASK), so Petrel sees distinct networks.

// imapLoginFrom logs in on 993 from the address from and returns the tagged
// reply to LOGIN.
func imapLoginFrom(from, addr, user, pw string) (string, error) {
	c, err := abuseOpen(from, addr, true)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if greet, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(greet, "* OK") {
		return "", fmt.Errorf("imap greeting %q: %v", greet, err)
	}
	if _, err := io.WriteString(c, "a1 LOGIN "+user+" \""+pw+"\"\r\n"); err != nil {
		return "", err
	}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "a1 ") {
			_, _ = io.WriteString(c, "a2 LOGOUT\r\n")
			return strings.TrimRight(l, "\r\n"), nil
		}
	}
}

const (
	imapOK      = "a1 OK"
	imapBadAuth = "a1 NO [AUTHENTICATIONFAILED]"
	imapLimited = "a1 NO [LIMIT]"
	smtpOK      = "235"
	smtpBadAuth = "535 5.7.8"
	smtpLimited = "451 4.3.2"
)

func TestFailedLoginLimits(t *testing.T) {
	s := newServer(t, map[string]string{
		"PORTS":     "25,465,993",
		"LOG_LEVEL": "INFO",
	})
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.mustCLI("Secret-Bob-2\n", "user", "bob", "example.test", "-")
	s.mustCLI("Secret-Carol-3\n", "user", "carol", "example.test", "-")
	s.mustCLI("Secret-Dave-4\n", "user", "dave", "example.test", "-")
	s.start()
	imap, smtp := s.addr[993], s.addr[465]

	mustPrefix := func(t *testing.T, what, got string, err error, want string) {
		t.Helper()
		if !strings.HasPrefix(got, want) {
			t.Fatalf("%s: %q (%v), want %s", what, got, err, want)
		}
	}

	// (1) Mailu #2880: a brute force from one network used to refuse the
	// right password from every address. Now only that network is
	// refused for alice, after AUTH_RATELIMIT_USER_NETWORK (10/day).
	t.Run("one network cannot lock the owner out", func(t *testing.T) {
		r, err := imapLoginFrom("127.0.6.1", imap, "alice@example.test", "Secret-Alice-1")
		mustPrefix(t, "alice at home", r, err, imapOK)
		bad, limited := 0, 0
		for i := range 60 {
			r, err := imapLoginFrom("127.0.5.1", imap, "alice@example.test", fmt.Sprintf("guess-%d", i))
			switch {
			case strings.HasPrefix(r, imapBadAuth):
				bad++
			case strings.HasPrefix(r, imapLimited):
				limited++
			default:
				t.Fatalf("guess %d: %q %v", i, r, err)
			}
		}
		if bad != 10 || limited != 50 {
			t.Fatalf("attacker: %d AUTHENTICATIONFAILED, %d LIMIT; want 10 and 50", bad, limited)
		}
		r, err = imapLoginFrom("127.0.5.2", imap, "alice@example.test", "Secret-Alice-1")
		mustPrefix(t, "alice from the attacking network", r, err, imapLimited)
		r, err = imapLoginFrom("127.0.7.1", imap, "alice@example.test", "Secret-Alice-1")
		mustPrefix(t, "alice from a network she never used", r, err, imapOK)
		r, err = imapLoginFrom("127.0.6.2", imap, "alice@example.test", "Secret-Alice-1")
		mustPrefix(t, "alice from her home network", r, err, imapOK)
		// Another account from the attacking network is not affected.
		r, err = imapLoginFrom("127.0.5.3", imap, "dave@example.test", "Secret-Dave-4")
		mustPrefix(t, "dave from the attacking network", r, err, imapOK)
	})

	// (2) A login as bob used to exempt the address for every account.
	t.Run("exemption is per account", func(t *testing.T) {
		r, err := abuseAuth465("127.0.8.1", smtp, "bob@example.test", "Secret-Bob-2")
		mustPrefix(t, "bob", r, err, smtpOK)
		bad, limited := 0, 0
		for i := range 25 {
			r, err := abuseAuth465("127.0.8.1", smtp, "carol@example.test", fmt.Sprintf("guess-%d", i))
			switch {
			case strings.HasPrefix(r, smtpBadAuth):
				bad++
			case strings.HasPrefix(r, smtpLimited):
				limited++
			default:
				t.Fatalf("guess %d: %q %v", i, r, err)
			}
		}
		if bad != 10 || limited != 15 {
			t.Fatalf("carol's password from bob's address: %d 535, %d 451; want 10 and 15", bad, limited)
		}
		r, err = abuseAuth465("127.0.8.1", smtp, "bob@example.test", "Secret-Bob-2")
		mustPrefix(t, "bob again", r, err, smtpOK)
	})

	// (3) Four parallel guessers used to get past the limit (53 checks for
	// a limit of 50): exactly 10 password checks here.
	t.Run("exact under concurrency", func(t *testing.T) {
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					r, _ := abuseAuth465("127.0.9.1", smtp, "dave@example.test", fmt.Sprintf("g%d-%d", g, i))
					mu.Lock()
					got[r[:min(len(r), 9)]]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if got[smtpBadAuth] != 10 || got[smtpLimited] != 30 {
			t.Fatalf("replies %v, want 10 %q and 30 %q", got, smtpBadAuth, smtpLimited)
		}
		if n := abuseCount(s.logs(), "dave@example.test/smtp/465 from: 127.0.9.1: failed: badauth"); n != 10 {
			t.Fatalf("%d badauth log lines for 127.0.9.1, want 10", n)
		}
	})

	// Guessing spread over many networks stays bounded by
	// AUTH_RATELIMIT_USER (50/day); then only networks carol has used
	// get in.
	t.Run("spread guessing bounded", func(t *testing.T) {
		r, err := imapLoginFrom("127.0.10.1", imap, "carol@example.test", "Secret-Carol-3")
		mustPrefix(t, "carol at home", r, err, imapOK)
		bad, limited := 0, 0
		// Carol already has 10 wrong passwords from 127.0.8.1 above.
		for i := range 50 {
			r, err := imapLoginFrom(fmt.Sprintf("127.0.%d.9", 20+i), imap, "carol@example.test", fmt.Sprintf("spread-%d", i))
			switch {
			case strings.HasPrefix(r, imapBadAuth):
				bad++
			case strings.HasPrefix(r, imapLimited):
				limited++
			default:
				t.Fatalf("guess %d: %q %v", i, r, err)
			}
		}
		if bad != 40 || limited != 10 {
			t.Fatalf("spread: %d AUTHENTICATIONFAILED, %d LIMIT; want 40 and 10", bad, limited)
		}
		r, err = imapLoginFrom("127.0.200.1", imap, "carol@example.test", "Secret-Carol-3")
		mustPrefix(t, "carol from a new network, budget spent", r, err, imapLimited)
		r, err = imapLoginFrom("127.0.10.2", imap, "carol@example.test", "Secret-Carol-3")
		mustPrefix(t, "carol from her network", r, err, imapOK)
	})

	logs := s.logs()
	if strings.Contains(logs, "Secret-Alice-1") || strings.Contains(logs, "guess-1\"") {
		t.Error("a password reached the log")
	}
	if n := abuseCount(logs, "limit=account-network"); n == 0 {
		t.Errorf("no log line names the account-network limit\n%s", authTail(logs, 20))
	}
}

func authTail(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
