package queue

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// RFC 8689: REQUIRETLS reaches the transport; "TLS-Required: No" is read
// from the header only when asked, and ignored with REQUIRETLS.

func (h *harness) submitTLS(id string, requireTLS bool, header string) {
	h.t.Helper()
	body := []byte("From: <alice@example.com>\r\n" + header + "Subject: test " + id + "\r\n\r\nsecret body of " + id + "\r\n")
	m := &store.NewMessage{ID: id, Sender: "alice@example.com", Body: body, Size: int64(len(body)),
		Remote: []string{"bob@remote.example"}, RequireTLS: requireTLS, DSN: &store.DSNParams{Ret: "FULL"}}
	if err := h.st.CommitMessages(context.Background(), []*store.NewMessage{m}); err != nil {
		h.t.Fatal(err)
	}
	h.clock.notBefore(time.Now())
}

func TestRequireTLSReachesTransport(t *testing.T) {
	h := newHarness(t)
	seen := map[string][2]bool{} // id -> RequireTLS, TLSRequiredNo
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		seen[m.ID] = [2]bool{m.RequireTLS, m.TLSRequiredNo != nil && m.TLSRequiredNo()}
		return nil
	}
	h.submitTLS("plain", false, "")
	h.submitTLS("no", false, "TLS-Required:  no\r\n")
	h.submitTLS("folded", false, "TLS-Required:\r\n No\r\n")
	h.submitTLS("yes", false, "TLS-Required: Yes\r\n")
	h.submitTLS("req", true, "TLS-Required: No\r\n")
	h.start(nil)
	h.settle()
	h.tr.mu.Lock()
	defer h.tr.mu.Unlock()
	want := map[string][2]bool{"plain": {false, false}, "no": {false, true}, "folded": {false, true}, "yes": {false, false}, "req": {true, false}}
	for id, w := range want {
		if seen[id] != w {
			t.Errorf("%s: transport saw RequireTLS, TLSRequiredNo = %v, want %v", id, seen[id], w)
		}
	}
}

func TestTLSRequiredNoReadsOnce(t *testing.T) {
	opens := 0
	f := tlsRequiredNo(func() (io.ReadCloser, error) {
		opens++
		return io.NopCloser(strings.NewReader("Subject: x\r\nTLS-Required: No\r\n\r\nTLS-Required: Yes\r\n")), nil
	})
	if !f() || !f() || opens != 1 {
		t.Errorf("TLSRequiredNo: %v, body opened %d times; want true, once", f(), opens)
	}
	inBody := tlsRequiredNo(func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("Subject: x\r\n\r\nTLS-Required: No\r\n")), nil
	})
	if inBody() {
		t.Error("a TLS-Required line in the body counted as the header")
	}
}

// A REQUIRETLS message returned as undeliverable (5.7.30) carries its
// headers only, even with RET=FULL: the DSN travels without REQUIRETLS.
func TestRequireTLSBounceHeadersOnly(t *testing.T) {
	h := newHarness(t)
	h.tr.answer = func(m *Message, rcpt string, n int) error {
		return perm(0, "5.7.30", "REQUIRETLS support required: mx.remote.example does not offer REQUIRETLS")
	}
	h.submitTLS("req", true, "")
	h.start(nil)
	h.settle()
	bs := h.bo.all()
	if len(bs) != 1 {
		t.Fatalf("%d DSNs, want 1", len(bs))
	}
	p := parseDSN(t, bs[0].msg)
	if strings.Contains(string(bs[0].msg), "secret body") || p.types[2] != "text/rfc822-headers" {
		t.Errorf("DSN of a REQUIRETLS message carries its body: types %v\n%s", p.types, bs[0].msg)
	}
	if p.perRcpt[0].Get("Status") != "5.7.30" || !strings.Contains(p.perRcpt[0].Get("Diagnostic-Code"), "REQUIRETLS support required") {
		t.Errorf("per-recipient fields %v", p.perRcpt[0])
	}
}
