package inbound

import (
	"context"
	"slices"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// Mailu's default sieve: spamtest :percent > spam_threshold files into
// Junk (floor(score) stars of 15), spam_mark_as_read adds \Seen,
// spam_enabled=false keeps INBOX; DMARC quarantine goes to Junk always.
func TestJunkTarget(t *testing.T) {
	on := SpamPrefs{Enabled: true, Threshold: 80, MarkAsRead: true}
	low := SpamPrefs{Enabled: true, Threshold: 20}
	off := SpamPrefs{Enabled: false, Threshold: 0, MarkAsRead: true}
	for _, tc := range []struct {
		name  string
		env   Envelope
		prefs SpamPrefs
		box   string
		seen  bool
	}{
		{"unscored", Envelope{SpamScore: 14}, on, "INBOX", false},
		{"12 points is 80 %, not above", Envelope{Scored: true, SpamScore: 12.9}, on, "INBOX", false},
		{"13 points is 86 %", Envelope{Scored: true, SpamScore: 13}, on, "Junk", true},
		{"low threshold", Envelope{Scored: true, SpamScore: 4}, low, "Junk", false},
		{"3 points is 20 %, not above 20", Envelope{Scored: true, SpamScore: 3.5}, low, "INBOX", false},
		{"spam off", Envelope{Scored: true, SpamScore: 14.9}, off, "INBOX", false},
		{"quarantine", Envelope{Quarantine: true}, off, "Junk", true},
		{"negative", Envelope{Scored: true, SpamScore: -5}, SpamPrefs{Enabled: true}, "INBOX", false},
		{"user's classifier", Envelope{Scored: true, SpamScore: 1, UserScores: map[string]float64{"u@example.com": 9}}, low, "Junk", false},
		{"another user's classifier", Envelope{Scored: true, SpamScore: 1, UserScores: map[string]float64{"x@example.com": 9}}, low, "INBOX", false},
	} {
		tg := junkTarget(&tc.env, "u@example.com", tc.prefs)
		if tg.Mailbox != tc.box || slices.Contains(tg.Flags, `\Seen`) != tc.seen || tg.User != "u@example.com" {
			t.Errorf("%s: %+v, want %s seen=%v", tc.name, tg, tc.box, tc.seen)
		}
	}
}

// The spam settings travel from the user row through Resolve (aliases
// included) to the stored target.
func TestDeliverSpamToJunk(t *testing.T) {
	f := newFake()
	f.domain("example.com")
	f.user("low@example.com", func(u *store.User) { u.SpamThreshold = 10; u.SpamMarkAsRead = false })
	f.user("off@example.com", func(u *store.User) { u.SpamEnabled = false })
	f.alias("team@example.com", false, "low@example.com", "off@example.com")
	r := NewRouter(RouterOptions{Accounts: f})
	rt, err := r.Resolve(context.Background(), "team@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Spam["low@example.com"].Enabled || rt.Spam["low@example.com"].Threshold != 10 || rt.Spam["off@example.com"].Enabled {
		t.Fatalf("route spam prefs = %+v", rt.Spam)
	}
	st := newMemStore()
	h := newHarness(t, st, DelivererOptions{})
	e := env("j1", rt)
	e.Scored, e.SpamScore = true, 7
	if err := h.deliver(context.Background(), e, []byte("Subject: x\r\n\r\nbody")); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	got := st.msgs["low@example.com"][0]
	st.mu.Unlock()
	boxes := map[string]string{}
	for _, tg := range got.Targets {
		boxes[tg.User] = tg.Mailbox
		if len(tg.Flags) != 0 {
			t.Errorf("%s: flags %v, want none (spam_mark_as_read off / not spam)", tg.User, tg.Flags)
		}
	}
	if boxes["low@example.com"] != "Junk" || boxes["off@example.com"] != "INBOX" {
		t.Errorf("targets = %v", boxes)
	}
	recs := h.logs.find("delivered", "j1")
	if len(recs) != 1 || attr(recs[0], "junk").String() != "[low@example.com]" {
		t.Errorf("delivered log line should name the Junk filing: %v", recs)
	}
}
