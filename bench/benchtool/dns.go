package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// runDNS is a tiny authoritative-style DNS server on UDP that answers from
// a hosts file: A/AAAA for its names, PTR for its addresses, NXDOMAIN for
// anything else. It stands in for the resolver Mailu runs next to its
// servers (RESOLVER_ADDRESS), so that the benchmark does not measure the
// machine's upstream DNS: Petrel's Received-header lookup (PTR, then
// forward confirmation) asks DNS on every connection, while Postfix reads
// /etc/hosts for 127.0.0.1 through nsswitch.
//
//	benchtool dns [-listen 127.0.0.1:10053] [-hosts /etc/hosts]
func runDNS(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dns", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:10053", "UDP address to serve")
	hostsFile := fs.String("hosts", "/etc/hosts", "hosts file to answer from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	z, err := readHosts(*hostsFile)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	fmt.Fprintf(out, "dns: serving %d names from %s on %s\n", len(z.byName), *hostsFile, pc.LocalAddr())
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns: %w", err)
		}
		if reply, ok := z.answer(buf[:n]); ok {
			_, _ = pc.WriteTo(reply, from)
		}
	}
}

// zone is a hosts file: names (lower case, fully qualified) to addresses
// and addresses to names.
type zone struct {
	byName map[string][]netip.Addr
	byAddr map[netip.Addr][]string
}

func readHosts(path string) (*zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	defer f.Close()
	z := &zone{byName: map[string][]netip.Addr{}, byAddr: map[netip.Addr][]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, n := range fields[1:] {
			n = strings.ToLower(strings.TrimSuffix(n, ".")) + "."
			z.byName[n] = append(z.byName[n], ip)
			z.byAddr[ip] = append(z.byAddr[ip], n)
		}
	}
	return z, sc.Err()
}

// answer builds the reply to one query; false when the packet is not a
// query worth answering.
func (z *zone) answer(pkt []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(pkt)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	name := strings.ToLower(q.Name.String())
	var answers []dnsmessage.Resource
	known := false
	switch {
	case q.Type == dnsmessage.TypePTR:
		if ip, ok := ptrAddr(name); ok {
			for _, n := range z.byAddr[ip] {
				known = true
				answers = append(answers, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: 60},
					Body:   &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(n)},
				})
			}
		}
	default:
		addrs, ok := z.byName[name]
		known = ok
		for _, ip := range addrs {
			hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case q.Type == dnsmessage.TypeA && ip.Is4():
				hdr.Type = dnsmessage.TypeA
				answers = append(answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AResource{A: ip.As4()}})
			case q.Type == dnsmessage.TypeAAAA && ip.Is6():
				hdr.Type = dnsmessage.TypeAAAA
				answers = append(answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AAAAResource{AAAA: ip.As16()}})
			}
		}
	}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError // NXDOMAIN
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	for _, a := range answers {
		var err error
		switch body := a.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(a.Header, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(a.Header, *body)
		case *dnsmessage.PTRResource:
			err = b.PTRResource(a.Header, *body)
		default:
			err = errors.New("unexpected resource")
		}
		if err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// ptrAddr turns "1.0.0.127.in-addr.arpa." into 127.0.0.1 (IPv4 only; the
// benchmark's clients are on 127.0.0.1).
func ptrAddr(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	p := strings.Split(rest, ".")
	if len(p) != 4 {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
	return ip, err == nil
}
