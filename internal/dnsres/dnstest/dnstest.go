// Package dnstest runs an in-process DNS server on 127.0.0.1 for tests:
// records are given in zone-file syntax, any name/type can be made to fail
// with an rcode (SERVFAIL, REFUSED), and Resolver returns a dnsres.Net that
// asks only this server. Names with no record at all answer NXDOMAIN; a name
// that has records of other types answers NODATA.
package dnstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres"
)

// Server is a running test DNS server.
type Server struct {
	// Addr is host:port of the server; UDP always, TCP on the same port
	// when it was free.
	Addr string

	mu      sync.Mutex
	rrs     []dns.RR
	fail    map[failKey]int
	secure  []string // zones whose answers carry the AD bit
	queries atomic.Int64
}

type failKey struct {
	name  string
	qtype uint16
}

// New starts a server on a random 127.0.0.1 port; it stops when the test
// ends.
func New(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: listen udp: %v", err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), fail: map[failKey]int{}}
	h := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	start(t, udp)
	// TCP on the same port serves answers too large for UDP.
	if l, err := net.Listen("tcp", s.Addr); err == nil {
		start(t, &dns.Server{Listener: l, Handler: h})
	}
	return s
}

func start(t testing.TB, srv *dns.Server) {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	select {
	case <-started:
	case <-done:
		t.Fatalf("dnstest: server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownContext(ctx)
		<-done
	})
}

// Add adds records in zone-file syntax, such as
// "example.com. MX 10 mx1.example.com." or "mx1.example.com. A 127.0.0.1".
// Relative names are taken as absolute; the TTL defaults to 300.
func (s *Server) Add(t testing.TB, records ...string) {
	t.Helper()
	for _, r := range records {
		rr, err := dns.NewRR("$ORIGIN .\n$TTL 300\n" + r)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: record %q: %v", r, err)
		}
		s.mu.Lock()
		s.rrs = append(s.rrs, rr)
		s.mu.Unlock()
	}
}

// Fail makes queries for name and qtype (dns.TypeMX, ...; 0 = every type)
// answer with rcode (dns.RcodeServerFailure, dns.RcodeRefused, ...).
func (s *Server) Fail(name string, qtype uint16, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[failKey{dns.CanonicalName(name), qtype}] = rcode
}

// Secure makes answers for names in each zone (the name itself or below
// it) carry the authenticated-data bit, as a DNSSEC-validating resolver
// sets it for signed zones, when the query asked for it (DO or AD set).
func (s *Server) Secure(zones ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, z := range zones {
		s.secure = append(s.secure, dns.CanonicalName(z))
	}
}

func (s *Server) isSecure(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = dns.CanonicalName(name)
	for _, z := range s.secure {
		if dns.IsSubDomain(z, name) {
			return true
		}
	}
	return false
}

// Queries is how many queries the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Resolver returns a resolver that asks only this server.
func (s *Server) Resolver() *dnsres.Net { return dnsres.New(s.Addr) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	// Authoritative and RA set: Go's resolver treats an empty answer from a
	// server with neither as a lame referral rather than NODATA.
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) == 1 {
		s.answer(m, req.Question[0])
		do := req.IsEdns0() != nil && req.IsEdns0().Do()
		m.AuthenticatedData = (do || req.AuthenticatedData) && m.Rcode != dns.RcodeServerFailure && s.isSecure(req.Question[0].Name)
	} else {
		m.Rcode = dns.RcodeFormatError
	}
	size := dns.MinMsgSize
	if o := req.IsEdns0(); o != nil {
		size = int(o.UDPSize())
		m.SetEdns0(o.UDPSize(), false)
	}
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func (s *Server) answer(m *dns.Msg, q dns.Question) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := dns.CanonicalName(q.Name)
	for _, k := range []failKey{{name, q.Qtype}, {name, 0}} {
		if rc, ok := s.fail[k]; ok {
			m.Rcode = rc
			return
		}
	}
	// Follow CNAMEs (a few hops) as a recursive resolver would.
	for hop := 0; hop < 8; hop++ {
		exists, cname := false, ""
		for _, rr := range s.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			exists = true
			switch {
			case h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY:
				m.Answer = append(m.Answer, dns.Copy(rr))
			case h.Rrtype == dns.TypeCNAME:
				m.Answer = append(m.Answer, dns.Copy(rr))
				cname = rr.(*dns.CNAME).Target
			}
		}
		if !exists {
			if hop == 0 {
				m.Rcode = dns.RcodeNameError
			}
			return
		}
		if cname == "" || q.Qtype == dns.TypeCNAME {
			return
		}
		name = dns.CanonicalName(cname)
	}
}
