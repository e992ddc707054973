package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestReadV1(t *testing.T) {
	for _, tc := range []struct {
		in, err  string
		src, dst string
		local    bool
	}{
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", src: "192.0.2.1:56324", dst: "198.51.100.2:25"},
		{in: "PROXY TCP6 2001:db8::1 2001:db8::2 1 993\r\n", src: "[2001:db8::1]:1", dst: "[2001:db8::2]:993"},
		{in: "PROXY UNKNOWN\r\n", local: true},
		{in: "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", local: true},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n", err: "5 fields"},
		{in: "PROXY TCP4 2001:db8::1 198.51.100.2 1 25\r\n", err: "is not TCP4"},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 025 25\r\n", err: "bad port"},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n", err: "bad port"},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 +25\r\n", err: "bad port"},
		{in: "PROXY UDP4 192.0.2.1 198.51.100.2 1 25\r\n", err: "unknown protocol"},
		{in: "PROXY TCP4 192.0.2.1 198.51.100.2 1 25\n", err: "no CRLF"},
		{in: "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", err: "no CRLF within 107"},
		{in: "PROXY TCP4 192.0.2.1", err: "unexpected EOF"},
		{in: "EHLO example.com\r\n", err: "no PROXY header"},
		{in: "PROXYTCP4\r\n", err: "no PROXY header"},
	} {
		h, err := Read(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if h.Version != 1 || h.Local != tc.local || (!tc.local && (h.Src.String() != tc.src || h.Dst.String() != tc.dst)) {
			t.Errorf("%q: %+v", tc.in, h)
		}
	}
}

func TestReadV2(t *testing.T) {
	h4 := Header{Src: netip.MustParseAddrPort("192.0.2.1:56324"), Dst: netip.MustParseAddrPort("198.51.100.2:465")}
	h6 := Header{Src: netip.MustParseAddrPort("[2001:db8::1]:4000"), Dst: netip.MustParseAddrPort("[2001:db8::2]:993")}
	for _, want := range []Header{h4, h6} {
		in := AppendV2(nil, want)
		in = append(in, "rest"...)
		r := bufio.NewReader(bytes.NewReader(in))
		got, err := Read(r)
		if err != nil || got.Version != 2 || got.Local || got.Src != want.Src || got.Dst != want.Dst {
			t.Errorf("v2 %v: got %+v, %v", want, got, err)
		}
		if rest, _ := r.Peek(4); string(rest) != "rest" {
			t.Errorf("v2 read past the header: %q left", rest)
		}
	}
	if h, err := Read(bufio.NewReader(bytes.NewReader(AppendV2(nil, Header{Local: true})))); err != nil || !h.Local {
		t.Errorf("v2 LOCAL: %+v, %v", h, err)
	}

	// With TLVs after the addresses: skipped.
	withTLV := AppendV2(nil, h4)
	withTLV[15] += 7
	withTLV = append(withTLV, 0x04, 0x00, 0x04, 'a', 'b', 'c', 'd')
	if got, err := Read(bufio.NewReader(bytes.NewReader(withTLV))); err != nil || got.Src != h4.Src {
		t.Errorf("v2 with a TLV: %+v, %v", got, err)
	}
	// UNSPEC family with PROXY: kept as the proxy's own.
	unspec := append(append([]byte(nil), v2sig...), 0x21, 0x00, 0, 0)
	if got, err := Read(bufio.NewReader(bytes.NewReader(unspec))); err != nil || !got.Local {
		t.Errorf("v2 UNSPEC: %+v, %v", got, err)
	}

	bad := func(mutate func([]byte) []byte) []byte { return mutate(AppendV2(nil, h4)) }
	for name, tc := range map[string]struct {
		in  []byte
		err string
	}{
		"version 1 in v2":  {bad(func(b []byte) []byte { b[12] = 0x11; return b }), "version 1"},
		"command 2":        {bad(func(b []byte) []byte { b[12] = 0x22; return b }), "unknown command"},
		"short TCP4 block": {bad(func(b []byte) []byte { b[15] = 8; return b[:16+8] }), "want 12"},
		"short TCP6 block": {bad(func(b []byte) []byte { b[13] = 0x21; return b }), "want 36"},
		"cut short":        {bad(func(b []byte) []byte { return b[:20] }), "unexpected EOF"},
		"huge block":       {bad(func(b []byte) []byte { b[14], b[15] = 0xff, 0xff; return b }), "at most 4096"},
		"bad signature":    {bad(func(b []byte) []byte { b[5] = 'x'; return b }), "no PROXY header"},
	} {
		_, err := Read(bufio.NewReader(bytes.NewReader(tc.in)))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want %q", name, err, tc.err)
		}
	}
	if _, err := Read(bufio.NewReader(strings.NewReader("\x16\x03\x01"))); !errors.Is(err, ErrNoHeader) {
		t.Errorf("TLS ClientHello: %v, want ErrNoHeader", err)
	}
}

// FuzzRead: no input makes Read panic or read past what a header may
// hold, and what it accepts survives a round trip through Append.
func FuzzRead(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 993\r\nEHLO"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendV2(nil, Header{Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2")}))
	f.Add(AppendV2(nil, Header{Src: netip.MustParseAddrPort("[2001:db8::1]:1"), Dst: netip.MustParseAddrPort("[::1]:2")}))
	f.Add(AppendV2(nil, Header{Local: true}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		h, err := Read(r)
		consumed := len(in) - r.Buffered()
		if rest, _ := bytes.NewReader(in).Seek(0, 2); consumed > int(rest) {
			t.Fatalf("consumed %d of %d bytes", consumed, rest)
		}
		if err != nil {
			return
		}
		if h.Version == 1 && consumed > v1Max {
			t.Fatalf("v1 header of %d bytes accepted", consumed)
		}
		if h.Local {
			return
		}
		var again []byte
		if h.Version == 1 {
			again = AppendV1(nil, h)
		} else {
			again = AppendV2(nil, h)
		}
		h2, err := Read(bufio.NewReader(bytes.NewReader(again)))
		if err != nil || h2.Src != h.Src || h2.Dst != h.Dst {
			t.Fatalf("round trip of %+v: %+v, %v", h, h2, err)
		}
	})
}
