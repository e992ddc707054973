package connlimit

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"
)

// TestServeAndShutdown runs the accept loop on a real socket: a session
// is handled, one over MaxConns is refused through Refuse, and Shutdown
// drains the idle session, closes the listener and ends Serve with nil.
func TestServeAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{MaxConns: 1})
	refused := make(chan Reason, 1)
	served := make(chan error, 1)
	go func() {
		served <- tr.Serve(ln, ServeOptions{
			Refuse: func(c net.Conn, why Reason) {
				refused <- why
				tr.Refuse(c, "no\r\n")
			},
			Handle: func(c *Conn) {
				defer c.Close()
				_, _ = c.Write([]byte("hello\r\n"))
				_, _ = bufio.NewReader(c).ReadString('\n') // until the drain cuts it
			},
		})
	}()

	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	r1 := bufio.NewReader(c1)
	if line, err := r1.ReadString('\n'); err != nil || line != "hello\r\n" {
		t.Fatalf("greeting = %q, %v", line, err)
	}
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if line, err := bufio.NewReader(c2).ReadString('\n'); err != nil || line != "no\r\n" {
		t.Fatalf("refusal = %q, %v", line, err)
	}
	if why := <-refused; why != TooManyConns {
		t.Fatalf("refused for %v, want %v", why, TooManyConns)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	if n := tr.Count(); n != 0 {
		t.Fatalf("Count after Shutdown = %d", n)
	}
	if _, err := r1.ReadString('\n'); err == nil {
		t.Fatal("session still open after Shutdown")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepts after Shutdown")
	}

	// A Serve after the drain closes its listener and returns at once.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Serve(ln2, ServeOptions{}); err != nil {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Fatal("listener given to Serve after Shutdown is still open")
	}
}

// TestShutdownDeadline: a busy session outlives ctx; Shutdown closes it
// and reports ctx's error.
func TestShutdownDeadline(t *testing.T) {
	server, client := tcpPair(t)
	defer client.Close()
	tr := New(Options{})
	c := mustAdmit(t, tr, server)
	c.SetBusy(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.Close()
		_, _ = c.Read(make([]byte, 1)) // ends when CloseAll closes the socket
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Shutdown(ctx); err != context.Canceled {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	<-done
	if c.Context().Err() == nil {
		t.Fatal("connection context not cancelled")
	}
}
