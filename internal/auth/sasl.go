package auth

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// LoginMechanism is the SASL mechanism name of LOGIN.
const LoginMechanism = "LOGIN"

// ErrLoginExchange: a LOGIN client sent a response after the exchange was over.
var ErrLoginExchange = errors.New("sasl: unexpected LOGIN response")

// loginServer is the server side of the obsolete but ubiquitous LOGIN
// mechanism (draft-murchison-sasl-login-00): the server asks
// "Username:", then "Password:"; the protocol layer base64-encodes the
// challenges. go-sasl only has the client side.
type loginServer struct {
	step         int // 0 start, 1 want username, 2 want password, 3 done
	username     string
	authenticate func(username, password string) error
}

// NewLoginServer returns a LOGIN server calling authenticate once both
// answers are in. An initial response (SMTP "AUTH LOGIN <base64>", IMAP
// SASL-IR) carries the username, as Outlook and others send it.
func NewLoginServer(authenticate func(username, password string) error) sasl.Server {
	return &loginServer{authenticate: authenticate}
}

// Next implements sasl.Server.
func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if response == nil {
			s.step = 1
			return []byte("Username:"), false, nil
		}
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 1:
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.authenticate(s.username, string(response))
	}
	return nil, true, ErrLoginExchange
}
