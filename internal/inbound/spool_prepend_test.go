package inbound

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store/blob"
)

// TestSpoolPrepend: fields go on top of an in-memory body through its
// headroom without moving the body, past the headroom with one copy, and
// past InlineMax or onto a spilled body through a new blob file; the body
// reads back whole every time.
func TestSpoolPrepend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	blobs, err := blob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	temps := func() int {
		ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	d := NewDeliverer(DelivererOptions{Blobs: blobs, InlineMax: 4000})
	body := "Subject: s\r\n\r\nbody\r\n"

	sp := spoolOf(t, d, body)
	at := &sp.mem[len(sp.mem)-1]
	if err := sp.Prepend([]byte("A: 1\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := sp.Prepend([]byte("B: 2\r\n")); err != nil {
		t.Fatal(err)
	}
	if &sp.mem[len(sp.mem)-1] != at {
		t.Error("a prepend within the headroom moved the body")
	}
	want := "B: 2\r\nA: 1\r\n" + body
	if got := readSpool(t, sp); got != want || sp.Size() != int64(len(want)) {
		t.Errorf("got %q (size %d), want %q", got, sp.Size(), want)
	}

	// Past the headroom: one copy, then the headroom is there again.
	big := "X: " + strings.Repeat("x", headroom) + "\r\n"
	if err := sp.Prepend([]byte(big)); err != nil {
		t.Fatal(err)
	}
	want = big + want
	if got := readSpool(t, sp); got != want {
		t.Errorf("past the headroom: got %q", got)
	}
	if sp.head < headroom-1 {
		t.Errorf("headroom %d after a copy", sp.head)
	}

	// Past InlineMax: the body spills, with the field on top.
	huge := "Y: " + strings.Repeat("y", 4000) + "\r\n"
	if err := sp.Prepend([]byte(huge)); err != nil {
		t.Fatal(err)
	}
	want = huge + want
	if !sp.Spilled() || readSpool(t, sp) != want || sp.Size() != int64(len(want)) {
		t.Errorf("past InlineMax: spilled %v, size %d, body ok %v", sp.Spilled(), sp.Size(), readSpool(t, sp) == want)
	}
	// Onto a spilled body (kept aside, the file not written again), and
	// then more data after it; finish writes the file once more.
	if err := sp.Prepend([]byte("Z: 3\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := sp.Prepend([]byte("W: 4\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Write([]byte("tail\r\n")); err != nil {
		t.Fatal(err)
	}
	want = "W: 4\r\nZ: 3\r\n" + want + "tail\r\n"
	if got := readSpool(t, sp); got != want || sp.Size() != int64(len(want)) {
		t.Errorf("spilled: got %d bytes (size %d), want %d", len(got), sp.Size(), len(want))
	}
	if n := temps(); n != 1 {
		t.Errorf("%d temp files after prepending to a spilled body, want 1", n)
	}
	body2, name, err := sp.finish()
	if err != nil || body2 != nil || name == "" {
		t.Fatalf("finish: %v %q %v", body2, name, err)
	}
	f, err := blobs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if stored, _ := io.ReadAll(f); string(stored) != want {
		t.Errorf("committed blob has %d bytes, want %d", len(stored), len(want))
	}
	if n := temps(); n != 0 {
		t.Errorf("%d temp files left after finish", n)
	}

	// An empty body, and finish of an in-memory one.
	empty, _ := d.NewSpool()
	if err := empty.Prepend([]byte("E: 1\r\n")); err != nil {
		t.Fatal(err)
	}
	got, _, err := empty.finish()
	if err != nil || string(got) != "E: 1\r\n" {
		t.Errorf("empty: %q %v", got, err)
	}
	if err := empty.Prepend([]byte("F: 1\r\n")); err != errSpoolDone {
		t.Errorf("prepend after finish: %v", err)
	}
}

// TestWithReturnPathPrepends: a message without a Return-Path keeps its
// spool and gets the field on top without a copy.
func TestWithReturnPathPrepends(t *testing.T) {
	d := NewDeliverer(DelivererOptions{InlineMax: 1000})
	body := "Subject: s\r\nX-Return-Path: <kept@x>\r\n\r\nReturn-Path: <body@x>\r\n"
	sp := spoolOf(t, d, body)
	at := &sp.mem[len(sp.mem)-1]
	out, err := d.withReturnPath("s@example.com", sp)
	if err != nil {
		t.Fatal(err)
	}
	if out != sp || &out.mem[len(out.mem)-1] != at {
		t.Error("the body was copied")
	}
	if got, want := readSpool(t, out), "Return-Path: <s@example.com>\r\n"+body; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
