package inbound

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// Open reads back what was written, inline or spilled, as often as asked,
// and the spool still delivers the whole body afterwards.
func TestSpoolOpen(t *testing.T) {
	for _, size := range []int{500, 300_000} {
		st := newMemStore()
		h := newHarness(t, st, DelivererOptions{InlineMax: 1000})
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i * 13)
		}
		sp, _ := h.d.NewSpool()
		if _, err := sp.Write(body[:size/2]); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			rc, err := sp.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, body[:size/2]) {
				t.Fatalf("size %d: read back %d bytes, %v", size, len(got), err)
			}
		}
		if _, err := sp.Write(body[size/2:]); err != nil {
			t.Fatal(err)
		}
		rc, err := sp.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) {
			t.Fatalf("size %d: whole body differs", size)
		}
		if err := h.d.Deliver(context.Background(), env("o", toBox("u@example.com")), sp); err != nil {
			t.Fatal(err)
		}
		st.mu.Lock()
		m := st.msgs["u@example.com"][0]
		st.mu.Unlock()
		if m.Size != int64(len(rpSender)+size) {
			t.Fatalf("delivered size %d, want %d", m.Size, size)
		}
		if _, err := sp.Open(); err == nil {
			t.Fatal("Open after Deliver should fail")
		}
	}
}
