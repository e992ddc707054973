package inbound

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/store/blob"
)

// BenchmarkWithReturnPath: the cost of the Return-Path at local delivery,
// for an inline body and a spilled one, that carries a Return-Path of its
// own (re-spooled without it) or none (the field prepended).
func BenchmarkWithReturnPath(b *testing.B) {
	blobs, err := blob.New(filepath.Join(b.TempDir(), "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	d := NewDeliverer(DelivererOptions{Blobs: blobs})
	for _, c := range []struct {
		name, header string
		size         int
	}{
		{"forged", "Return-Path: <forged@x>\r\nSubject: s\r\n\r\n", 4 << 10},
		{"forged", "Return-Path: <forged@x>\r\nSubject: s\r\n\r\n", 1 << 20},
		{"clean", "Subject: s\r\n\r\n", 4 << 10},
		{"clean", "Subject: s\r\n\r\n", 1 << 20},
	} {
		body := append([]byte(c.header), bytes.Repeat([]byte("0123456789abcdef\r\n"), c.size/18)...)
		b.Run(fmt.Sprintf("%s/%d", c.name, c.size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				sp, _ := d.NewSpool()
				sp.Write(body)
				out, err := d.withReturnPath("sender@example.com", sp)
				if err != nil {
					b.Fatal(err)
				}
				out.Abort()
			}
		})
	}
}
