package inbound

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store/blob"
)

// TestWithReturnPath re-spools inline and spilled bodies: our field on
// top, every arriving Return-Path gone, the rest byte for byte; a header
// that starts with a continuation line is left as it came.
func TestWithReturnPath(t *testing.T) {
	blobs, err := blob.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDeliverer(DelivererOptions{Blobs: blobs, InlineMax: 1000})
	rest := "Subject: s\r\nreturn-path: <forged2@x>\r\n\r\nReturn-Path: <body@x>\r\n"
	for _, pad := range []int{0, 2000} { // inline, spilled
		in := "Return-Path: <forged@x>\r\n" + rest + strings.Repeat("b", pad)
		sp := spoolOf(t, d, in)
		out, err := d.withReturnPath("s\r\n<x>@example.com", sp)
		if err != nil {
			t.Fatal(err)
		}
		got := readSpool(t, out)
		want := "Return-Path: <sx@example.com>\r\nSubject: s\r\n\r\nReturn-Path: <body@x>\r\n" + strings.Repeat("b", pad)
		if got != want {
			t.Errorf("pad %d: got %q, want %q", pad, got, want)
		}
		if out.Spilled() != (pad > 0) {
			t.Errorf("pad %d: spilled %v", pad, out.Spilled())
		}
		if out.Size() != int64(len(want)) {
			t.Errorf("pad %d: size %d, want %d", pad, out.Size(), len(want))
		}
		out.Abort()
	}

	folded := " folded\r\nSubject: s\r\n\r\nbody\r\n"
	sp := spoolOf(t, d, folded)
	out, err := d.withReturnPath("s@example.com", sp)
	if err != nil {
		t.Fatal(err)
	}
	if out != sp || readSpool(t, out) != folded {
		t.Errorf("a leading continuation line was re-spooled: %q", readSpool(t, out))
	}

	empty := spoolOf(t, d, "")
	if out, err = d.withReturnPath("s@example.com", empty); err != nil || readSpool(t, out) != "Return-Path: <s@example.com>\r\n" {
		t.Errorf("empty body: %v %q", err, readSpool(t, out))
	}
}

// TestSpoolGrow: Grow reserves room for an inline body and is only a hint.
func TestSpoolGrow(t *testing.T) {
	d := NewDeliverer(DelivererOptions{InlineMax: 100})
	sp, _ := d.NewSpool()
	sp.Grow(80)
	if cap(sp.mem) < 80 {
		t.Errorf("cap %d after Grow(80)", cap(sp.mem))
	}
	sp.Write([]byte("abc"))
	sp.Grow(1000) // would not fit inline: nothing reserved
	if room := cap(sp.mem) - sp.head; room >= 1000 {
		t.Errorf("room %d after Grow past InlineMax", room)
	}
	if got := readSpool(t, sp); got != "abc" {
		t.Errorf("body %q", got)
	}
}

func spoolOf(t *testing.T, d *Deliverer, s string) *Spool {
	t.Helper()
	sp, err := d.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sp, s); err != nil {
		t.Fatal(err)
	}
	return sp
}

func readSpool(t *testing.T, sp *Spool) string {
	t.Helper()
	rc, err := sp.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, rc); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
