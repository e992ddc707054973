package httpd

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
)

// FuzzRealIP feeds any header value from a trusted proxy: RemoteAddr must
// stay a valid host:port, and an untrusted address never comes from the
// header unless it parses as an address.
func FuzzRealIP(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "198.51.100.7, 203.0.113.9, 10.1.1.1", "[2001:db8::5]:443", "", ",,", "not-an-ip", "1.2.3.4:99999"} {
		f.Add(s)
	}
	s := &Server{opts: Options{RealIPHeader: "X-Forwarded-For", RealIPFrom: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	f.Fuzz(func(t *testing.T, v string) {
		r := &http.Request{RemoteAddr: "10.0.0.1:4242", Header: http.Header{"X-Forwarded-For": {v}}}
		s.realIP(r)
		host, port, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil || port != "4242" {
			t.Fatalf("RemoteAddr %q after %q", r.RemoteAddr, v)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			t.Fatalf("RemoteAddr host %q is not an address (header %q)", host, v)
		}
	})
}
