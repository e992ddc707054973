package inbound

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/petrelmail/petrel/internal/store/blob"
)

// BenchmarkWithReturnPath: the cost of re-spooling a body behind its
// Return-Path at local delivery, for an inline body and a spilled one.
func BenchmarkWithReturnPath(b *testing.B) {
	blobs, err := blob.New(filepath.Join(b.TempDir(), "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	d := NewDeliverer(DelivererOptions{Blobs: blobs})
	for _, size := range []int{4 << 10, 1 << 20} {
		body := append([]byte("Return-Path: <forged@x>\r\nSubject: s\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), size/18)...)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
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
