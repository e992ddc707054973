package inbound

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
)

// Mail for the reporting address reaches the tap after the commit, with
// the stored message readable (inline or as a blob); other mail does not,
// and a tap that never reads cannot hold up the delivery.
func TestReportTap(t *testing.T) {
	type took struct {
		id, rcpt string
		body     []byte
	}
	var mu sync.Mutex
	var got []took
	tap := &ReportTap{Addrs: []string{"tlsrpt@example.com"}, Take: func(id, rcpt string, open func() (io.ReadCloser, error)) {
		rc, err := open()
		if err != nil {
			t.Errorf("open %s: %v", id, err)
			return
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		mu.Lock()
		got = append(got, took{id, rcpt, b})
		mu.Unlock()
	}}
	st := newMemStore()
	h := newHarness(t, st, DelivererOptions{Reports: tap, InlineMax: 1024})
	ctx := context.Background()
	small := []byte("Subject: report\r\n\r\nsmall\r\n")
	large := append([]byte("Subject: report\r\n\r\n"), bytes.Repeat([]byte("x"), 4096)...)
	if err := h.deliver(ctx, env("m1", toBox("tlsrpt@example.com", "admin@example.com")), small); err != nil {
		t.Fatal(err)
	}
	if err := h.deliver(ctx, env("m2", toBox("user@example.com"), toBox("tlsrpt@example.com", "admin@example.com")), large); err != nil {
		t.Fatal(err)
	}
	if err := h.deliver(ctx, env("m3", toBox("user@example.com")), small); err != nil {
		t.Fatal(err)
	}
	// A relay route with the same address is no local delivery.
	if err := h.deliver(ctx, env("m4", toBox("user@example.com"), Route{Kind: RouteRelay, Rcpt: "tlsrpt@example.com", Remote: []string{"tlsrpt@example.com"}}), small); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].id != "m1" || got[1].id != "m2" {
		t.Fatalf("tap got %+v, want m1 and m2 only", got)
	}
	for i, want := range [][]byte{small, large} {
		if got[i].rcpt != "tlsrpt@example.com" || !bytes.HasSuffix(got[i].body, want) || !bytes.HasPrefix(got[i].body, []byte(rpSender)) {
			t.Errorf("%s: rcpt %q body %d bytes, want the stored message", got[i].id, got[i].rcpt, len(got[i].body))
		}
	}
	if st.count("admin@example.com", "m2") != 1 {
		t.Error("m2 not stored")
	}
}
