// Package proxyproto reads the PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 1 and 2) that a load balancer sends ahead
// of a connection, and wraps listeners so that only trusted proxies may
// send one and their connections carry the client's address.
package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Header is one parsed PROXY header.
type Header struct {
	Version int // 1 or 2
	// Local is true for v2's LOCAL command and v1's UNKNOWN, and for
	// address families other than TCP over IPv4/IPv6: the connection is
	// the proxy's own (a health check) and keeps the proxy's address.
	Local bool
	Src   netip.AddrPort // the client, when !Local
	Dst   netip.AddrPort // the address the client connected to, when !Local
}

// ErrNoHeader means the connection did not start with a PROXY header.
var ErrNoHeader = errors.New("proxyproto: no PROXY header")

// v2sig starts every version 2 header (proxy-protocol.txt 2.2).
var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Limits: a v1 line is at most 107 bytes with its CRLF (2.1); a v2 header
// may carry up to 64 KiB of TLVs, more than any proxy sends, so the
// address block plus TLVs is capped.
const (
	v1Max      = 107
	v2MaxBlock = 4096
)

// Read reads one PROXY header, v1 or v2, from r and nothing more.
func Read(r *bufio.Reader) (Header, error) {
	first, err := r.Peek(1)
	if err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading header: %w", err)
	}
	switch first[0] {
	case 'P':
		return readV1(r)
	case '\r':
		return readV2(r)
	}
	return Header{}, ErrNoHeader
}

// readV1 parses "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n" (2.1).
func readV1(r *bufio.Reader) (Header, error) {
	var line []byte
	for len(line) < v1Max {
		b, err := r.ReadByte()
		if err != nil {
			return Header{}, fmt.Errorf("proxyproto: v1 header: %w", noEOF(err))
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return Header{}, errors.New("proxyproto: v1 header: no CRLF within 107 bytes")
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if f[0] != "PROXY" || len(f) < 2 {
		return Header{}, ErrNoHeader
	}
	h := Header{Version: 1}
	switch f[1] {
	case "UNKNOWN": // the rest of the line is to be ignored
		h.Local = true
		return h, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, fmt.Errorf("proxyproto: v1 header: unknown protocol %q", f[1])
	}
	if len(f) != 6 {
		return Header{}, fmt.Errorf("proxyproto: v1 header: %d fields, want 6", len(f))
	}
	src, err := v1Addr(f[2], f[4], f[1])
	if err != nil {
		return Header{}, fmt.Errorf("proxyproto: v1 source: %w", err)
	}
	dst, err := v1Addr(f[3], f[5], f[1])
	if err != nil {
		return Header{}, fmt.Errorf("proxyproto: v1 destination: %w", err)
	}
	h.Src, h.Dst = src, dst
	return h, nil
}

func v1Addr(ip, port, proto string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", ip)
	}
	if a.Is4() != (proto == "TCP4") {
		return netip.AddrPort{}, fmt.Errorf("address %q is not %s", ip, proto)
	}
	// Ports are decimal without leading zeros or signs (2.1).
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (len(port) > 1 && port[0] == '0') {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// readV2 parses the binary header (2.2).
func readV2(r *bufio.Reader) (Header, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %w", noEOF(err))
	}
	if !bytes.Equal(fixed[:12], v2sig) {
		return Header{}, ErrNoHeader
	}
	if fixed[12]>>4 != 2 {
		return Header{}, fmt.Errorf("proxyproto: v2 header: version %d", fixed[12]>>4)
	}
	cmd, fam := fixed[12]&0x0f, fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if n > v2MaxBlock {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %d bytes of addresses and TLVs, at most %d taken", n, v2MaxBlock)
	}
	block := make([]byte, n)
	if _, err := io.ReadFull(r, block); err != nil {
		return Header{}, fmt.Errorf("proxyproto: v2 header: %w", noEOF(err))
	}
	h := Header{Version: 2}
	switch cmd {
	case 0x0: // LOCAL: the proxy's own connection; the block is ignored
		h.Local = true
		return h, nil
	case 0x1: // PROXY
	default:
		return Header{}, fmt.Errorf("proxyproto: v2 header: unknown command %#x", cmd)
	}
	switch fam {
	case 0x11: // TCP over IPv4: 4+4+2+2
		if n < 12 {
			return Header{}, fmt.Errorf("proxyproto: v2 header: %d bytes for TCP4 addresses, want 12", n)
		}
		src, _ := netip.AddrFromSlice(block[0:4])
		dst, _ := netip.AddrFromSlice(block[4:8])
		h.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[8:10]))
		h.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[10:12]))
	case 0x21: // TCP over IPv6: 16+16+2+2
		if n < 36 {
			return Header{}, fmt.Errorf("proxyproto: v2 header: %d bytes for TCP6 addresses, want 36", n)
		}
		src, _ := netip.AddrFromSlice(block[0:16])
		dst, _ := netip.AddrFromSlice(block[16:32])
		h.Src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(block[32:34]))
		h.Dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(block[34:36]))
	default:
		// UNSPEC, UDP or unix sockets: nothing we can use as a client
		// address; the receiver must accept and use the real one (2.2).
		h.Local = true
	}
	return h, nil
}

// noEOF turns a header cut short into an error that says so.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendV1 appends h as a v1 line, for tests and clients.
func AppendV1(b []byte, h Header) []byte {
	if h.Local {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	proto := "TCP4"
	if !h.Src.Addr().Is4() || !h.Dst.Addr().Is4() {
		proto = "TCP6"
	}
	return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", proto, h.Src.Addr(), h.Dst.Addr(), h.Src.Port(), h.Dst.Port())
}

// AppendV2 appends h as a v2 header (no TLVs), for tests and clients.
func AppendV2(b []byte, h Header) []byte {
	b = append(b, v2sig...)
	if h.Local {
		return append(b, 0x20, 0x00, 0, 0)
	}
	if h.Src.Addr().Is4() && h.Dst.Addr().Is4() {
		b = append(b, 0x21, 0x11, 0, 12)
		s, d := h.Src.Addr().As4(), h.Dst.Addr().As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x21, 0x21, 0, 36)
		s, d := h.Src.Addr().As16(), h.Dst.Addr().As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Src.Port())
	return binary.BigEndian.AppendUint16(b, h.Dst.Port())
}
