package testutil

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
)

// TestCertAndDial: a TLS client dialled with Dial trusts the server
// certificate, and the CA file holds PEM.
func TestCertAndDial(t *testing.T) {
	c := NewCert(t, "mail.example.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = s.Write([]byte("hi\n"))
	}()
	conn := Dial(t, ln.Addr().String(), c.Client)
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "hi\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	pemData, err := os.ReadFile(c.CAFile)
	if err != nil || len(pemData) == 0 || string(pemData[:27]) != "-----BEGIN CERTIFICATE-----" {
		t.Fatalf("CA file: %q, %v", pemData, err)
	}
}

func TestFakeAuth(t *testing.T) {
	a := NewFakeAuth(map[string]string{"a@x.test": "pw"})
	ctx := context.Background()
	if r, err := a.Authenticate(ctx, auth.Attempt{Username: "a@x.test", Password: auth.Secret("pw")}); err != nil || r.User.Email != "a@x.test" {
		t.Fatalf("good password: %v, %v", r, err)
	}
	if _, err := a.Authenticate(ctx, auth.Attempt{Username: "a@x.test", Password: auth.Secret("no")}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("bad password: %v", err)
	}
	a.SetFail(auth.ErrRateLimited)
	if _, err := a.Authenticate(ctx, auth.Attempt{Username: "a@x.test", Password: auth.Secret("pw")}); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("SetFail: %v", err)
	}
	if n := len(a.Attempts()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	if a.Last().Password != "pw" {
		t.Fatalf("Last = %+v", a.Last())
	}
}

type echoServer struct{ ln chan net.Listener }

func (e *echoServer) Serve(ln net.Listener) error {
	e.ln <- ln
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		_ = c.Close()
	}
}

func (e *echoServer) Shutdown(ctx context.Context) error { return (<-e.ln).Close() }

func TestServe(t *testing.T) {
	srv := &echoServer{ln: make(chan net.Listener, 1)}
	addr, _ := Serve(t, srv, time.Second)
	if _, err := net.Dial("tcp", addr); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
}
