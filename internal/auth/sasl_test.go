package auth

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/emersion/go-sasl"
)

type loginStep struct {
	response      []byte // nil = no (initial) response
	wantChallenge string
	wantDone      bool
}

func TestLoginServer(t *testing.T) {
	cases := []struct {
		name     string
		steps    []loginStep
		wantUser string
		wantPass string
		wantErr  bool
	}{
		{name: "no initial response", steps: []loginStep{
			{nil, "Username:", false},
			{[]byte("alice@example.com"), "Password:", false},
			{[]byte("secret"), "", true},
		}, wantUser: "alice@example.com", wantPass: "secret"},
		{name: "initial response carries the username", steps: []loginStep{
			{[]byte("alice@example.com"), "Password:", false},
			{[]byte("secret"), "", true},
		}, wantUser: "alice@example.com", wantPass: "secret"},
		{name: "empty answers", steps: []loginStep{
			{nil, "Username:", false},
			{[]byte{}, "Password:", false},
			{[]byte{}, "", true},
		}, wantUser: "", wantPass: ""},
		{name: "empty initial response is an empty username", steps: []loginStep{
			{[]byte{}, "Password:", false},
			{[]byte("pw"), "", true},
		}, wantUser: "", wantPass: "pw"},
		{name: "refused", steps: []loginStep{
			{nil, "Username:", false},
			{[]byte("bob@example.com"), "Password:", false},
			{[]byte("bad"), "", true},
		}, wantUser: "bob@example.com", wantPass: "bad", wantErr: true},
	}
	refuse := errors.New("no")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotU, gotP string
			calls := 0
			s := NewLoginServer(func(u, p string) error {
				calls++
				gotU, gotP = u, p
				if p == "bad" {
					return refuse
				}
				return nil
			})
			for i, st := range c.steps {
				ch, done, err := s.Next(st.response)
				if string(ch) != st.wantChallenge || done != st.wantDone {
					t.Fatalf("step %d: challenge %q done %v, want %q %v", i, ch, done, st.wantChallenge, st.wantDone)
				}
				if done {
					if (err != nil) != c.wantErr {
						t.Fatalf("err %v", err)
					}
				} else if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if calls != 1 || gotU != c.wantUser || gotP != c.wantPass {
				t.Fatalf("authenticate(%q, %q) x%d", gotU, gotP, calls)
			}
			// Anything after the end is an error and does not authenticate again.
			if _, done, err := s.Next([]byte("more")); !done || !errors.Is(err, ErrLoginExchange) || calls != 1 {
				t.Fatalf("after the end: done=%v err=%v calls=%d", done, err, calls)
			}
		})
	}
}

// TestLoginAgainstClient runs go-sasl's LOGIN client against our server.
func TestLoginAgainstClient(t *testing.T) {
	c := sasl.NewLoginClient("alice@example.com", "pw")
	var got [2]string
	s := NewLoginServer(func(u, p string) error { got = [2]string{u, p}; return nil })
	_, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	ch, done, err := s.Next(ir)
	for !done && err == nil {
		var resp []byte
		if resp, err = c.Next(ch); err != nil {
			t.Fatal(err)
		}
		ch, done, err = s.Next(resp)
	}
	if err != nil || got != [2]string{"alice@example.com", "pw"} {
		t.Fatalf("got %q err %v", got, err)
	}
}

// TestPlainWithAuthenticator wires go-sasl's PLAIN server to the
// Authenticator as a protocol would.
func TestPlainWithAuthenticator(t *testing.T) {
	e := newEnv(t, nil)
	var res *Result
	s := sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return ErrBadCredentials
		}
		r, err := e.a.Authenticate(context.Background(), Attempt{Username: username, Password: Secret(password),
			Protocol: "smtp", Port: 465, Remote: netip.MustParseAddr("192.0.2.1")})
		res = r
		return err
	})
	if _, done, err := s.Next([]byte("\x00alice@example.com\x00" + alicePW)); !done || err != nil || res == nil {
		t.Fatalf("PLAIN: done=%v err=%v", done, err)
	}
	s2 := sasl.NewPlainServer(func(_, u, p string) error {
		_, err := e.a.Authenticate(context.Background(), Attempt{Username: u, Password: Secret(p), Protocol: "smtp", Port: 465, Remote: netip.MustParseAddr("192.0.2.1")})
		return err
	})
	if _, _, err := s2.Next([]byte("\x00alice@example.com\x00nope")); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("PLAIN wrong password: %v", err)
	}
}
