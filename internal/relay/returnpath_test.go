package relay

import (
	"io"
	"strings"
	"testing"
)

// TestWithoutReturnPath: a Return-Path at the top (folded or not) is left
// out of what goes out; one anywhere else, or none, changes nothing.
func TestWithoutReturnPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Return-Path: <a@b>\r\nSubject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n"},
		{"return-path: <a@b>\r\n\t<folded>\r\nSubject: x\r\n\r\n", "Subject: x\r\n\r\n"},
		{"Subject: x\r\nReturn-Path: <a@b>\r\n\r\n", "Subject: x\r\nReturn-Path: <a@b>\r\n\r\n"},
		{"Subject: x\r\n\r\nReturn-Path: in the body\r\n", "Subject: x\r\n\r\nReturn-Path: in the body\r\n"},
		{"Return-Path: <" + strings.Repeat("x", 9000) + ">\r\nS: 1\r\n", "S: 1\r\n"},
		{"Ret", "Ret"},
		{"", ""},
	}
	for _, c := range cases {
		got, err := io.ReadAll(withoutReturnPath(strings.NewReader(c.in)))
		if err != nil || string(got) != c.want {
			t.Errorf("%.40q: got %.60q, %v; want %.60q", c.in, got, err, c.want)
		}
	}
}
