package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// KnownPorts lists the port numbers that name a role, in Mailu's order
// (inventory 1.1): 25 MX, 80 HTTP, 443 HTTPS, 465 submissions, 587
// submission, 993 IMAPS, 143 IMAP, 995 POP3S, 110 POP3, 4190 ManageSieve.
func KnownPorts() []int {
	return []int{25, 80, 443, 465, 587, 993, 143, 995, 110, 4190}
}

// UnservedPorts maps each role port that this Petrel build does not serve
// yet to why, so config-check, the start-up lines, quickstart and `petrel
// dns` agree on what is really served. Every role is served now
// (ManageSieve on 4190 was the last).
func UnservedPorts() map[int]string {
	return map[int]string{}
}

// NotServed says why serve does not answer on an enabled port, or "" when
// it does: a role this build lacks (UnservedPorts), or 443 under
// TLS_FLAVOR=mail or mail-letsencrypt, where the web is plain HTTP on 80
// for a TLS-terminating proxy (Mailu: nginx's tls.conf is mail-only then).
func (c *Config) NotServed(port int) string {
	if why := UnservedPorts()[port]; why != "" {
		return why
	}
	if port == 443 && (c.TLSFlavor == "mail" || c.TLSFlavor == "mail-letsencrypt") {
		return "TLS_FLAVOR=" + c.TLSFlavor + " serves the web in plain HTTP on port 80, for a TLS-terminating proxy"
	}
	return ""
}

// ServedPorts lists, in order, the role ports serve answers on: enabled
// and not NotServed.
func (c *Config) ServedPorts() []int {
	out := []int{}
	for _, p := range KnownPorts() {
		if l, ok := c.Listeners[p]; ok && l.Enabled && c.NotServed(p) == "" {
			out = append(out, p)
		}
	}
	return out
}

const portsFix = "use a comma list such as " + DefaultPorts

// portList reads PORTS or TLS: a comma list of port numbers.
func (r *reader) portList(name string) []int {
	v, ok := r.get(name)
	if !ok {
		v = DefaultPorts
	}
	var out []int
	for _, item := range splitList(v) {
		n, err := strconv.Atoi(item)
		if err != nil || strings.HasPrefix(item, "+") {
			r.errorf(name, v, portsFix, "%q is not a port number", item)
			continue
		}
		if n < 1 || n > 65535 {
			r.errorf(name, v, portsFix, "%d is not a port number (1..65535)", n)
			continue
		}
		if !slices.Contains(KnownPorts(), n) {
			r.warnf(name, v, "remove it; the known ports are "+joinInts(KnownPorts()),
				"port %d has no role in Petrel and is ignored", n)
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// listeners fills Ports, TLSPorts and Listeners with Mailu's gating
// (socrate/system.py clean_env, inventory 1.2): PORTS switches a port on, but
// 465, 993 and 443 follow the undocumented TLS list instead, 995 needs both,
// TLS_FLAVOR=notls closes every implicit-TLS port, and 25 is always on.
func (r *reader) listeners(cfg *Config) {
	cfg.Ports = r.portList("PORTS")
	cfg.TLSPorts = r.portList("TLS")
	inPorts := func(p int) bool { return slices.Contains(cfg.Ports, p) }
	inTLS := func(p int) bool { return slices.Contains(cfg.TLSPorts, p) && cfg.TLSFlavor != "notls" }
	enabled := map[int]bool{
		25:   true, // "SMTP is always enabled, to avoid losing emails when TLS is failing"
		465:  inTLS(465),
		993:  inTLS(993),
		443:  inTLS(443),
		995:  inTLS(995) && inPorts(995),
		80:   inPorts(80),
		587:  inPorts(587),
		143:  inPorts(143),
		110:  inPorts(110),
		4190: inPorts(4190),
	}

	bind := r.bindAddress(cfg)
	cfg.Listeners = make(map[int]Listener, len(enabled))
	for _, p := range KnownPorts() {
		l := Listener{Port: p, Enabled: enabled[p], Addr: net.JoinHostPort(bind, strconv.Itoa(p))}
		name := "LISTEN_" + strconv.Itoa(p)
		if v, ok := r.get(name); ok {
			if err := checkListenAddr(v); err != nil {
				r.errorf(name, v, "use host:port, e.g. 0.0.0.0:2525, [::1]:2525 or :2525", "%v", err)
			} else {
				l.Addr = v
				if !l.Enabled {
					r.warnf(name, v, fmt.Sprintf("add %d to PORTS (or TLS for 443, 465, 993, 995), or remove %s", p, name),
						"port %d is not enabled, so this address is not used", p)
				}
			}
		}
		cfg.Listeners[p] = l
	}
	r.checkListenNames()
	r.checkDuplicateAddrs(cfg)
}

// bindAddress reads BIND_ADDRESS: empty (all addresses) or one IP address.
func (r *reader) bindAddress(cfg *Config) string {
	v, ok := r.get("BIND_ADDRESS")
	if !ok {
		return ""
	}
	a := v
	if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
		a = a[1 : len(a)-1]
	}
	ip, err := netip.ParseAddr(a)
	if err != nil {
		r.errorf("BIND_ADDRESS", v, "use one IP address such as 0.0.0.0, :: or 192.0.2.10, or leave it empty for all addresses",
			"%q is not an IP address", v)
		return ""
	}
	cfg.BindAddress = ip.String()
	return cfg.BindAddress
}

// checkListenAddr accepts host:port with an IP address, a host name or an
// empty host, and a port from 0 (any free port) to 65535.
func checkListenAddr(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || strings.HasPrefix(port, "+") {
		return fmt.Errorf("%q is not a port number", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if _, err := mailaddr.NormalizeDomain(host); err != nil {
		return fmt.Errorf("%q is not an IP address or host name", host)
	}
	return nil
}

// checkListenNames warns about LISTEN_<n> for ports without a role.
func (r *reader) checkListenNames() {
	var names []string
	for k := range r.env {
		if strings.HasPrefix(k, "LISTEN_") && !r.seen[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		r.warnf(k, strings.TrimSpace(r.env[k]), "use LISTEN_<port> with one of "+joinInts(KnownPorts()),
			"names no Petrel port and is ignored")
	}
}

// checkDuplicateAddrs reports two enabled roles on one fixed address.
func (r *reader) checkDuplicateAddrs(cfg *Config) {
	owner := make(map[string]int)
	for _, p := range KnownPorts() {
		l := cfg.Listeners[p]
		if !l.Enabled || strings.HasSuffix(l.Addr, ":0") {
			continue
		}
		if q, dup := owner[l.Addr]; dup {
			name := "LISTEN_" + strconv.Itoa(p)
			r.errorf(name, l.Addr, fmt.Sprintf("give port %d its own address", p),
				"port %d would listen on the same address as port %d", p, q)
			continue
		}
		owner[l.Addr] = p
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// proxyProtocolFix is the fix for a bad PROXY_PROTOCOL.
const proxyProtocolFix = "use a comma list of ports (e.g. 25,465,993) or mail, all-but-http or all, and list the proxies in REAL_IP_FROM"

// proxyProtocol reads PROXY_PROTOCOL (Mailu: socrate system.py): port
// numbers, "mail" and "all-but-http" (every mail port), "all" (the mail
// ports and 80, 443). Only REAL_IP_FROM may send the header, so the
// setting needs it.
func (r *reader) proxyProtocol(cfg *Config) {
	v, ok := r.get("PROXY_PROTOCOL")
	if !ok || strings.TrimSpace(v) == "" {
		return
	}
	mail := []int{25, 465, 587, 993, 143, 995, 110, 4190}
	var out []int
	add := func(ps ...int) {
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	for _, item := range splitList(v) {
		switch strings.ToLower(item) {
		case "mail", "all-but-http":
			add(mail...)
		case "all":
			add(KnownPorts()...)
		default:
			n, err := strconv.Atoi(item)
			if err != nil || !slices.Contains(KnownPorts(), n) {
				r.errorf("PROXY_PROTOCOL", v, proxyProtocolFix, "%q is neither a role port (%s) nor mail, all-but-http or all", item, joinInts(KnownPorts()))
				continue
			}
			add(n)
		}
	}
	if len(out) > 0 && len(cfg.RealIPFrom) == 0 {
		r.errorf("PROXY_PROTOCOL", v, "list the load balancers that send PROXY headers in REAL_IP_FROM",
			"needs REAL_IP_FROM: without trusted proxies every PROXY header would be refused")
		return
	}
	sort.Ints(out)
	cfg.ProxyProtocol = out
}
