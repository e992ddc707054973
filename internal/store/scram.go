package store

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// scramScheme prefixes the text form of ScramCredentials (RFC 5803:
// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64).
const scramScheme = "SCRAM-SHA-256$"

// ErrBadScram: a stored SCRAM credential string is malformed.
var ErrBadScram = errors.New("store: malformed SCRAM credentials")

// String returns the RFC 5803 form of c, or "" when c is not valid.
func (c ScramCredentials) String() string {
	if !c.Valid() {
		return ""
	}
	b := base64.StdEncoding
	return scramScheme + strconv.Itoa(c.Iterations) + ":" + b.EncodeToString(c.Salt) + "$" +
		b.EncodeToString(c.StoredKey) + ":" + b.EncodeToString(c.ServerKey)
}

// ParseScramCredentials parses the RFC 5803 form; "" is the zero value.
func ParseScramCredentials(s string) (ScramCredentials, error) {
	if s == "" {
		return ScramCredentials{}, nil
	}
	rest, ok := strings.CutPrefix(s, scramScheme)
	if !ok {
		return ScramCredentials{}, ErrBadScram
	}
	salted, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return ScramCredentials{}, ErrBadScram
	}
	iter, salt, ok1 := strings.Cut(salted, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return ScramCredentials{}, ErrBadScram
	}
	var c ScramCredentials
	var err error
	if c.Iterations, err = strconv.Atoi(iter); err != nil {
		return ScramCredentials{}, ErrBadScram
	}
	b := base64.StdEncoding
	if c.Salt, err = b.DecodeString(salt); err != nil {
		return ScramCredentials{}, ErrBadScram
	}
	if c.StoredKey, err = b.DecodeString(stored); err != nil {
		return ScramCredentials{}, ErrBadScram
	}
	if c.ServerKey, err = b.DecodeString(server); err != nil {
		return ScramCredentials{}, ErrBadScram
	}
	if !c.Valid() {
		return ScramCredentials{}, ErrBadScram
	}
	return c, nil
}
