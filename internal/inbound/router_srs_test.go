package inbound

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/srs"
)

// A bounce to an SRS address Petrel made goes back to the original sender
// through the queue (Mailu: recipient_canonical_maps).
func TestResolveSRS(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	rw := srs.New([]byte("0123456789abcdefghij"), "example.com", func() time.Time { return now })
	fwd, err := rw.Forward("Carol.X@Remote.Test", nil)
	if err != nil {
		t.Fatal(err)
	}
	srs1, _ := rw.Forward("SRS0=abcd=XY=orig.test=dave@first.test", nil)
	forged := fwd[:5] + "zzzz" + fwd[9:]
	r := NewRouter(RouterOptions{Accounts: routerFixture().fake(), Delimiters: "+", SRS: rw})
	ctx := context.Background()

	tests := []struct {
		rcpt   string
		remote string // "" = ErrUnknownRecipient
	}{
		{fwd, "Carol.X@remote.test"},
		{"srs0" + fwd[4:], "Carol.X@remote.test"},                                  // case smashed on the way back
		{fwd[:len(fwd)-len("example.com")] + "alt.example", "Carol.X@remote.test"}, // any local domain
		{srs1, "SRS0=abcd=XY=orig.test=dave@first.test"},
		{forged, ""},
	}
	for _, tt := range tests {
		rt, err := r.Resolve(ctx, tt.rcpt)
		if tt.remote == "" {
			// example.com has a catch-all: a forged SRS address must not
			// reach it.
			if !errors.Is(err, ErrUnknownRecipient) || !errors.Is(err, srs.ErrBadHash) {
				t.Errorf("Resolve(%q) = %+v, %v; want ErrUnknownRecipient", tt.rcpt, rt, err)
			}
			continue
		}
		if err != nil || rt.Kind != RouteLocal || len(rt.Mailboxes) != 0 || !slices.Equal(rt.Remote, []string{tt.remote}) {
			t.Errorf("Resolve(%q) = %+v, %v; want remote %s", tt.rcpt, rt, err, tt.remote)
		}
	}

	// Expired: the same address 21 days later.
	late := srs.New([]byte("0123456789abcdefghij"), "example.com", func() time.Time { return now.Add(21 * 24 * time.Hour) })
	rl := NewRouter(RouterOptions{Accounts: routerFixture().fake(), SRS: late})
	if _, err := rl.Resolve(ctx, fwd); !errors.Is(err, ErrUnknownRecipient) || !errors.Is(err, srs.ErrExpired) {
		t.Errorf("expired SRS: %v", err)
	}

	// A foreign domain is not ours to reverse: it stays foreign.
	if rt, err := r.Resolve(ctx, fwd[:len(fwd)-len("example.com")]+"remote.test"); err != nil || rt.Kind != RouteForeign {
		t.Errorf("SRS address in a foreign domain: %+v, %v", rt, err)
	}
	// Without SRS configured the address is an ordinary local part.
	plain := NewRouter(RouterOptions{Accounts: routerFixture().fake(), Delimiters: "+"})
	if rt, err := plain.Resolve(ctx, forged); err != nil || !sameSet(rt.Mailboxes, mb("catchall")) {
		t.Errorf("without SRS: %+v, %v; want the catch-all", rt, err)
	}
	// Ordinary recipients are unaffected.
	if rt, err := r.Resolve(ctx, "alice@example.com"); err != nil || !sameSet(rt.Mailboxes, mb("alice")) {
		t.Errorf("alice: %+v, %v", rt, err)
	}
}
