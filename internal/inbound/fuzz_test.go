package inbound

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// graphFake builds an account model from fuzz bytes: eight local names in
// example.com, each a user (optionally forwarding) or an alias, with edges
// between them, to remote addresses and to a wildcard, so that loops,
// diamonds and self-references all occur.
func graphFake(graph []byte) *fakeAccounts {
	f := newFake()
	f.domain("example.com")
	f.alternative("alt.example", "example.com")
	f.relay("relay.net")
	name := func(i byte) string { return fmt.Sprintf("n%d@example.com", i&7) }
	var users, fwd, keep byte
	if len(graph) > 0 {
		users, graph = graph[0], graph[1:]
	}
	if len(graph) > 0 {
		fwd, graph = graph[0], graph[1:]
	}
	if len(graph) > 0 {
		keep, graph = graph[0], graph[1:]
	}
	dests := map[byte][]string{}
	for _, b := range graph {
		src := b >> 5
		var d string
		switch t := b & 31; {
		case t < 8:
			d = name(t)
		case t < 16:
			d = fmt.Sprintf("n%d+x@alt.example", t&7)
		case t < 20:
			d = fmt.Sprintf("r%d@remote.test", t&3)
		case t < 22:
			d = "w@relay.net"
		case t < 24:
			d = "unknown@example.com"
		default:
			d = "w%@example.com"
		}
		dests[src] = append(dests[src], d)
	}
	for i := byte(0); i < 8; i++ {
		if users&(1<<i) != 0 {
			f.user(name(i), func(u *store.User) {
				u.ForwardEnabled = fwd&(1<<i) != 0
				u.ForwardKeep = keep&(1<<i) != 0
				u.ForwardDestination = dests[i]
			})
		} else {
			f.alias(name(i), false, dests[i]...)
		}
	}
	f.alias("w%@example.com", true, name(users))
	f.alias("n%@example.com", true, name(fwd))
	return f
}

func FuzzResolve(f *testing.F) {
	f.Add("n0@example.com", "+", []byte{0x01, 0, 0, 0x01, 0x22})
	f.Add("N1+tag@ALT.example", "+-", []byte{0xff, 0xff, 0x00, 0x21, 0x40, 0x01, 0x30})
	f.Add("w1@example.com", "", []byte{0x00, 0x00, 0x00, 0x00, 0x20, 0x41, 0x62, 0x83, 0xa4})
	f.Add("n%x@relay.net", "%", []byte{})
	f.Add("x@gmail.com", "+", []byte{0x80, 0x80, 0x80, 0x18, 0x1f})
	f.Add("n3@example.com", "+", []byte{0x08, 0x08, 0x00, 0x63, 0x61, 0x62, 0x60})
	f.Fuzz(func(t *testing.T, rcpt, delims string, graph []byte) {
		acc := graphFake(graph)
		r := NewRouter(RouterOptions{Accounts: acc, Delimiters: delims})
		rt, err := r.Resolve(context.Background(), rcpt)
		// Bounded work: a look-up budget that an unbounded loop would blow.
		if n := acc.calls.Load(); n > 20000 {
			t.Fatalf("%d store calls for one Resolve", n)
		}
		if err != nil {
			if !errors.Is(err, ErrUnknownRecipient) && !errors.Is(err, ErrBadAddress) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		switch rt.Kind {
		case RouteLocal:
			if len(rt.Mailboxes)+len(rt.Remote) == 0 {
				t.Fatalf("local route with no destination: %+v", rt)
			}
		case RouteRelay, RouteForeign:
			if len(rt.Mailboxes) != 0 || len(rt.Remote) != 1 || rt.Remote[0] != rt.Rcpt {
				t.Fatalf("relay/foreign route %+v", rt)
			}
		default:
			t.Fatalf("bad kind %v", rt.Kind)
		}
		seen := map[string]bool{}
		for _, m := range rt.Mailboxes {
			if _, ok := acc.users[m]; !ok {
				t.Fatalf("mailbox %q is not a user", m)
			}
			if seen[m] {
				t.Fatalf("duplicate mailbox %q", m)
			}
			seen[m] = true
		}
		for _, a := range rt.Remote {
			if seen["r"+a] {
				t.Fatalf("duplicate remote %q", a)
			}
			seen["r"+a] = true
		}
		// The same question must get the same answer.
		rt2, err := r.Resolve(context.Background(), rcpt)
		if err != nil || !sameSet(rt.Mailboxes, rt2.Mailboxes) || !sameSet(rt.Remote, rt2.Remote) {
			t.Fatalf("Resolve not deterministic: %+v vs %+v, %v", rt, rt2, err)
		}
	})
}
