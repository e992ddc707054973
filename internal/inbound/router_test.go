package inbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// fixture is the account model the router tests run against, built both as
// the in-memory fake and (router_sqlstore_test.go) in a real sqlstore.
type fixture struct {
	domains []string
	alts    [][2]string // name, domain
	relays  []string
	users   []store.User
	aliases []store.Alias
}

func newUser(email string, mod ...func(*store.User)) store.User {
	i := lastAt(email)
	u := store.NewUser(email[:i], email[i+1:], 0, 80)
	for _, m := range mod {
		m(&u)
	}
	return u
}

func newAlias(email string, wildcard bool, dest ...string) store.Alias {
	i := lastAt(email)
	return store.Alias{Email: email, Localpart: email[:i], DomainName: email[i+1:], Wildcard: wildcard, Destination: dest}
}

func lastAt(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			return i
		}
	}
	panic("no @ in " + s)
}

func disabled(u *store.User) { u.Enabled = false }
func spoofer(u *store.User)  { u.AllowSpoofing = true }

func chain(prefix string, n int, last string) []store.Alias {
	var out []store.Alias
	for i := 0; i < n; i++ {
		out = append(out, newAlias(fmt.Sprintf("%s%d@example.com", prefix, i), false, fmt.Sprintf("%s%d@example.com", prefix, i+1)))
	}
	return append(out, newAlias(fmt.Sprintf("%s%d@example.com", prefix, n), false, last))
}

func routerFixture() fixture {
	fx := fixture{
		domains: []string{"example.com", "other.org", "xn--bcher-kva.de"},
		alts:    [][2]string{{"alt.example", "example.com"}, {"xn--caf-dma.example", "example.com"}},
		relays:  []string{"relay.net"},
		users: []store.User{
			newUser("alice@example.com"),
			newUser("bob@example.com"),
			newUser("catchall@example.com"),
			newUser("erin@example.com", disabled),
			newUser("sales-team@example.com"),
			newUser("mallory@example.com", spoofer),
			newUser("frank@example.com", forward(false)),
			newUser("carol@example.com", forward(false, "dave@remote.test")),
			newUser("dan@example.com", forward(true, "alice@example.com", "X@Remote.Test")),
			newUser("self@example.com", forward(false, "self@example.com")),
			newUser("ping@example.com", forward(false, "pong@example.com")),
			newUser("pong@example.com", forward(false, "ping@example.com")),
			newUser("olga@other.org"),
			newUser("anna@xn--bcher-kva.de"),
		},
		aliases: []store.Alias{
			newAlias("info@example.com", false, "alice@example.com", "bob@example.com"),
			newAlias("team@example.com", false, "info@example.com", "carol@example.com"),
			newAlias("loop1@example.com", false, "loop2@example.com"),
			newAlias("loop2@example.com", false, "loop1@example.com"),
			newAlias("selfalias@example.com", false, "selfalias@example.com", "alice@example.com"),
			newAlias("ext@example.com", false, "someone@remote.test", "bob@alt.example", "x@relay.net", "Bob@Example.com"),
			newAlias("help@example.com", false, "bob@example.com"),
			newAlias("sales-special@example.com", false, "erin@example.com"),
			newAlias("dia@example.com", false, "info@example.com", "team@example.com"),
			newAlias("ghost@example.com", false, "nobody@other.org", "alice@example.com"),
			newAlias("weird@example.com", false, "not an address", "alice@example.com"),
			newAlias("%@example.com", true, "catchall@example.com"),
			newAlias("sales-%@example.com", true, "bob@example.com"),
			newAlias("sales-eu%@example.com", true, "alice@example.com"),
			newAlias("t_st@example.com", true, "erin@example.com"),
			newAlias("ab%@other.org", true, "olga@other.org"),
			newAlias("%+zz@other.org", true, "x@remote.test"),
		},
	}
	fx.aliases = append(fx.aliases, chain("c", 5, "alice@example.com")...)
	fx.aliases = append(fx.aliases, chain("d", 15, "alice@example.com")...)
	return fx
}

func (fx fixture) fake() *fakeAccounts {
	f := newFake()
	for _, d := range fx.domains {
		f.domain(d)
	}
	for _, a := range fx.alts {
		f.alternative(a[0], a[1])
	}
	for _, r := range fx.relays {
		f.relay(r)
	}
	for _, u := range fx.users {
		f.users[u.Email] = u
	}
	for _, a := range fx.aliases {
		f.aliases[a.Email] = a
	}
	return f
}

type resolveCase struct {
	rcpt      string
	delims    string // "" = the default "+-"; "none" = no delimiter
	kind      RouteKind
	normRcpt  string
	mailboxes []string
	remote    []string
	err       error
}

func local(rcpt string, mailboxes []string, remote ...string) resolveCase {
	return resolveCase{rcpt: rcpt, kind: RouteLocal, mailboxes: mailboxes, remote: remote}
}

func mb(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "@example.com"
	}
	return out
}

func resolveCases() []resolveCase {
	withDelims := func(c resolveCase, d string) resolveCase { c.delims = d; return c }
	withNorm := func(c resolveCase, n string) resolveCase { c.normRcpt = n; return c }
	return []resolveCase{
		// step 1 and case folding
		local("alice@example.com", mb("alice")),
		withNorm(local("ALICE@Example.COM", mb("alice")), "alice@example.com"),
		// step 1b: the delimiter set "+-"
		local("alice+tag@example.com", mb("alice")),
		local("alice-tag@example.com", mb("alice")),
		local("alice+tag-x@example.com", mb("alice")),
		withDelims(local("alice-tag@example.com", mb("catchall")), "+"),
		withDelims(local("alice+tag@example.com", mb("catchall")), "none"),
		// an exact user wins over the stripped form and over wildcards
		local("sales-team@example.com", mb("sales-team")),
		// step 2 and 3
		local("info@example.com", mb("alice", "bob")),
		local("info+x@example.com", mb("alice", "bob")),
		local("help-x@example.com", mb("bob")),
		// step 4: exact beats wildcard, longest pattern wins, _ is one char
		local("sales-special@example.com", mb("erin")),
		withDelims(local("sales-us@example.com", mb("bob")), "+"),
		withDelims(local("sales-eu1@example.com", mb("alice")), "+"),
		// Mailu quirk kept: with "-" a delimiter, "sales-us" strips to
		// "sales", whose alias (the catch-all) wins in step 3 before the
		// full local part's wildcards are tried
		local("sales-us@example.com", mb("catchall")),
		local("test@example.com", mb("erin")),
		local("toast@example.com", mb("catchall")),
		local("random@example.com", mb("catchall")),
		// Mailu: an alias of the stripped local part (even a wildcard)
		// beats a wildcard that matches the full local part
		withDelims(resolveCase{rcpt: "ab+zz@other.org", kind: RouteLocal, mailboxes: []string{"olga@other.org"}}, "+"),
		withDelims(resolveCase{rcpt: "xy+zz@other.org", kind: RouteLocal, remote: []string{"x@remote.test"}}, "+"),
		// disabled users still receive
		local("erin@example.com", mb("erin")),
		// forwards
		local("carol@example.com", nil, "dave@remote.test"),
		// RFC 5321 2.4: a remote destination keeps its local part's case
		local("dan@example.com", mb("dan", "alice"), "X@remote.test"),
		local("frank@example.com", mb("frank")),
		local("self@example.com", mb("self")),
		local("ping@example.com", mb("ping")),
		local("pong@example.com", mb("pong")),
		// alias chains, loops, diamonds, dropped destinations
		local("team@example.com", mb("alice", "bob"), "dave@remote.test"),
		{rcpt: "loop1@example.com", err: ErrUnknownRecipient},
		local("selfalias@example.com", mb("alice")),
		local("ext@example.com", mb("bob"), "someone@remote.test", "x@relay.net"),
		local("c0@example.com", mb("alice")),
		{rcpt: "d0@example.com", err: ErrUnknownRecipient},
		local("dia@example.com", mb("alice", "bob"), "dave@remote.test"),
		local("ghost@example.com", mb("alice")),
		local("weird@example.com", mb("alice")),
		// alternatives and IDNA
		local("alice@alt.example", mb("alice")),
		withNorm(local("alice@ALT.Example", mb("alice")), "alice@alt.example"),
		withNorm(local("alice@café.example", mb("alice")), "alice@xn--caf-dma.example"),
		withNorm(resolveCase{rcpt: "Anna@BÜCHER.de", kind: RouteLocal, mailboxes: []string{"anna@xn--bcher-kva.de"}}, "anna@xn--bcher-kva.de"),
		// relay and foreign domains
		{rcpt: "x@relay.net", kind: RouteRelay, remote: []string{"x@relay.net"}},
		// RFC 5321 2.4: relayed local parts keep their case, domains fold
		{rcpt: "X@Relay.NET", kind: RouteRelay, normRcpt: "X@relay.net", remote: []string{"X@relay.net"}},
		{rcpt: "CaseCheck.MiXeD@Remote.Example", kind: RouteForeign, normRcpt: "CaseCheck.MiXeD@remote.example", remote: []string{"CaseCheck.MiXeD@remote.example"}},
		{rcpt: `"Mixed Case"@Gmail.com`, kind: RouteForeign, normRcpt: `"Mixed Case"@gmail.com`, remote: []string{`"Mixed Case"@gmail.com`}},
		{rcpt: "a%b@relay.net", err: ErrBadAddress},
		{rcpt: "x@gmail.com", kind: RouteForeign, remote: []string{"x@gmail.com"}},
		{rcpt: "x@sub.example.com", kind: RouteForeign, remote: []string{"x@sub.example.com"}},
		// unknown
		{rcpt: "nobody@other.org", err: ErrUnknownRecipient},
		{rcpt: "no-at-sign", err: ErrBadAddress},
	}
}

func runResolveCases(t *testing.T, acc Accounts) {
	t.Helper()
	for _, tc := range resolveCases() {
		delims := "+-"
		if tc.delims != "" {
			delims = tc.delims
		}
		if tc.delims == "none" {
			delims = ""
		}
		t.Run(tc.rcpt+"/"+delims, func(t *testing.T) {
			r := NewRouter(RouterOptions{Accounts: acc, Delimiters: delims})
			rt, err := r.Resolve(context.Background(), tc.rcpt)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Resolve(%q) = %+v, %v; want error %v", tc.rcpt, rt, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.rcpt, err)
			}
			want := tc.normRcpt
			if want == "" {
				want = tc.rcpt
			}
			if rt.Rcpt != want {
				t.Errorf("Rcpt = %q, want %q", rt.Rcpt, want)
			}
			if rt.Kind != tc.kind {
				t.Errorf("Kind = %v, want %v", rt.Kind, tc.kind)
			}
			if !sameSet(rt.Mailboxes, tc.mailboxes) {
				t.Errorf("Mailboxes = %q, want %q", rt.Mailboxes, tc.mailboxes)
			}
			if !sameSet(rt.Remote, tc.remote) {
				t.Errorf("Remote = %q, want %q", rt.Remote, tc.remote)
			}
		})
	}
}

// sameSet compares as sets and also fails on duplicates in got.
func sameSet(got, want []string) bool {
	g := slices.Clone(got)
	w := slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestResolve(t *testing.T) {
	runResolveCases(t, routerFixture().fake())
}

func TestResolveEmptyDelimiters(t *testing.T) {
	f := routerFixture().fake()
	r := NewRouter(RouterOptions{Accounts: f})
	rt, err := r.Resolve(context.Background(), "info+x@example.com")
	if err != nil || !sameSet(rt.Mailboxes, mb("catchall")) {
		t.Fatalf("without delimiters info+x should hit the catch-all, got %+v, %v", rt, err)
	}
}

func TestResolveBackendError(t *testing.T) {
	for _, fail := range []string{"example.com", "alice@example.com", "wildcards:example.com", "bob@example.com"} {
		f := routerFixture().fake()
		f.fail = fail
		r := NewRouter(RouterOptions{Accounts: f, Delimiters: "+"})
		rcpt := "alice@example.com"
		if fail == "wildcards:example.com" {
			rcpt = "random@example.com"
		}
		if fail == "bob@example.com" {
			rcpt = "info@example.com" // the failure is in the expansion
		}
		_, err := r.Resolve(context.Background(), rcpt)
		if !errors.Is(err, errBackend) {
			t.Errorf("fail %s: Resolve(%s) err = %v, want the backend error", fail, rcpt, err)
		}
		if errors.Is(err, ErrUnknownRecipient) {
			t.Errorf("fail %s: a backend error must not look like an unknown recipient", fail)
		}
	}
}

func TestResolveNoCatchAll(t *testing.T) {
	fx := routerFixture()
	f := fx.fake()
	delete(f.aliases, "%@example.com")
	r := NewRouter(RouterOptions{Accounts: f, Delimiters: "+"})
	_, err := r.Resolve(context.Background(), "random@example.com")
	if !errors.Is(err, ErrUnknownRecipient) {
		t.Fatalf("err = %v, want ErrUnknownRecipient", err)
	}
}

func TestResolveWildcardTieIsStable(t *testing.T) {
	f := newFake()
	f.domain("example.com")
	f.user("a@example.com")
	f.user("b@example.com")
	f.alias("x%@example.com", true, "b@example.com")
	f.alias("%y@example.com", true, "a@example.com")
	r := NewRouter(RouterOptions{Accounts: f})
	for i := 0; i < 20; i++ {
		rt, err := r.Resolve(context.Background(), "xy@example.com")
		if err != nil || !sameSet(rt.Mailboxes, []string{"a@example.com"}) {
			t.Fatalf("tie should go to the smaller address (%%y@...): %+v, %v", rt, err)
		}
	}
}

type senderCase struct {
	login    string
	sender   string
	wildcard []string
	want     bool
}

func senderCases() []senderCase {
	return []senderCase{
		{"alice@example.com", "", nil, true},
		{"alice@example.com", "alice@example.com", nil, true},
		{"alice@example.com", "ALICE@Example.com", nil, true},
		{"alice@example.com", "alice+tag@example.com", nil, true},
		{"alice@example.com", "alice-tag@example.com", nil, true},
		{"alice@example.com", "alice@alt.example", nil, true},
		{"alice@example.com", "info@example.com", nil, true},
		{"alice@example.com", "info+x@example.com", nil, true},
		{"erin@example.com", "tast@example.com", nil, true},
		{"alice@example.com", "sales-eu9@example.com", nil, false}, // "-" strips to "sales": the catch-all's
		{"alice@example.com", "bob@example.com", nil, false},
		{"alice@example.com", "random@example.com", nil, false},
		{"catchall@example.com", "random@example.com", nil, true},
		// destinations are taken one level deep, as Postfix does
		{"alice@example.com", "team@example.com", nil, false},
		{"alice@example.com", "dia@example.com", nil, false},
		// a forwarding user's forward targets may send as that user
		{"alice@example.com", "dan@example.com", nil, true},
		{"dan@example.com", "dan@example.com", nil, true},
		// ignore_forward_keep: a user forwarding without keep still owns the address
		{"carol@example.com", "carol@example.com", nil, true},
		{"alice@example.com", "x@gmail.com", nil, false},
		{"alice@example.com", "x@gmail.com", []string{"bob@example.com", " ALICE@example.com "}, true},
		{"bob@example.com", "x@gmail.com", []string{"alice@example.com"}, false},
		{"mallory@example.com", "x@gmail.com", nil, true},
		{"mallory@example.com", "alice@example.com", nil, true},
		{"alice@example.com", "not an address", nil, false},
		{"anna@xn--bcher-kva.de", "anna@bücher.de", nil, true},
		{"olga@other.org", "abc@other.org", nil, true},
	}
}

func runSenderCases(t *testing.T, acc Accounts, getUser func(string) *store.User) {
	t.Helper()
	r := NewRouter(RouterOptions{Accounts: acc, Delimiters: "+-"})
	for _, tc := range senderCases() {
		u := getUser(tc.login)
		got, err := r.SenderAllowed(context.Background(), u, tc.sender, tc.wildcard)
		if err != nil {
			t.Errorf("SenderAllowed(%s, %q): %v", tc.login, tc.sender, err)
			continue
		}
		if got != tc.want {
			t.Errorf("SenderAllowed(%s, %q, %q) = %v, want %v", tc.login, tc.sender, tc.wildcard, got, tc.want)
		}
	}
}

func TestSenderAllowed(t *testing.T) {
	f := routerFixture().fake()
	runSenderCases(t, f, func(email string) *store.User {
		u, err := f.GetUser(context.Background(), email)
		if err != nil {
			t.Fatalf("fixture user %s: %v", email, err)
		}
		return u
	})
}

func TestSenderAllowedBackendError(t *testing.T) {
	f := routerFixture().fake()
	f.fail = "bob@example.com"
	r := NewRouter(RouterOptions{Accounts: f})
	u := newUser("alice@example.com")
	if _, err := r.SenderAllowed(context.Background(), &u, "bob@example.com", nil); !errors.Is(err, errBackend) {
		t.Fatalf("err = %v, want the backend error", err)
	}
}

// BenchmarkResolve is the RCPT-time cost of the router over the in-memory
// fake: a local user, an alias and a foreign recipient.
func BenchmarkResolve(b *testing.B) {
	r := NewRouter(RouterOptions{Accounts: routerFixture().fake(), Delimiters: "+-"})
	ctx := context.Background()
	rcpts := []string{"Alice+Tag@Example.COM", "info@example.com", "CaseCheck.MiXeD@Remote.Example"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := r.Resolve(ctx, rcpts[i%len(rcpts)]); err != nil {
			b.Fatal(err)
		}
	}
}
