package config

import (
	"reflect"
	"slices"
	"sort"
	"testing"
)

func enabledPorts(cfg *Config) []int {
	var out []int
	for p, l := range cfg.Listeners {
		if l.Enabled {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

func TestListenerGating(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		enabled []int
	}{
		{"defaults", base(), []int{25, 80, 443, 465, 993, 995, 4190}},
		{"starttls ports added", with("PORTS", "25,80,443,465,587,993,995,4190,143,110"), []int{25, 80, 110, 143, 443, 465, 587, 993, 995, 4190}},
		// 465, 993 and 443 follow TLS, not PORTS: "ports 25, 465 and 993 cannot be disabled".
		{"only 25 in PORTS", with("PORTS", "25"), []int{25, 443, 465, 993}},
		{"25 is always on", with("PORTS", "80"), []int{25, 80, 443, 465, 993}},
		// 995 needs both lists.
		{"995 not in PORTS", with("PORTS", "25,80,443,465,993,4190"), []int{25, 80, 443, 465, 993, 4190}},
		{"995 not in TLS", with("TLS", "443,465,993"), []int{25, 80, 443, 465, 993, 4190}},
		{"TLS narrowed", with("TLS", "465"), []int{25, 80, 465, 4190}},
		{"notls", with("TLS_FLAVOR", "notls"), []int{25, 80, 4190}},
		{"notls with starttls", with("TLS_FLAVOR", "notls", "PORTS", "25,80,443,465,587,993,995,4190,143,110"), []int{25, 80, 110, 143, 587, 4190}},
		{"mail flavor like cert", with("TLS_FLAVOR", "mail"), []int{25, 80, 443, 465, 993, 995, 4190}},
		{"whitespace and duplicates", with("PORTS", " 25 , 587,587,"), []int{25, 443, 465, 587, 993}},
	}
	for _, tt := range tests {
		cfg, probs := Parse(tt.env)
		if HasErrors(probs) {
			t.Errorf("%s: problems %v", tt.name, probs)
			continue
		}
		if got := enabledPorts(cfg); !reflect.DeepEqual(got, tt.enabled) {
			t.Errorf("%s: enabled %v; want %v", tt.name, got, tt.enabled)
		}
		if len(cfg.Listeners) != len(KnownPorts()) {
			t.Errorf("%s: %d listeners; want one per role (%d)", tt.name, len(cfg.Listeners), len(KnownPorts()))
		}
		for _, p := range KnownPorts() {
			if l, ok := cfg.Listeners[p]; !ok || l.Port != p {
				t.Errorf("%s: listener %d = %+v, %v", tt.name, p, l, ok)
			}
		}
	}
}

func TestListenerAddrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		addrs map[int]string
		bind  string
	}{
		{"default", base(), map[int]string{25: ":25", 465: ":465", 587: ":587", 4190: ":4190"}, ""},
		{"ipv4 bind", with("BIND_ADDRESS", "192.0.2.10"), map[int]string{25: "192.0.2.10:25", 993: "192.0.2.10:993"}, "192.0.2.10"},
		{"ipv6 bind", with("BIND_ADDRESS", "2001:db8::10"), map[int]string{25: "[2001:db8::10]:25", 443: "[2001:db8::10]:443"}, "2001:db8::10"},
		{"ipv6 bind brackets", with("BIND_ADDRESS", "[::1]"), map[int]string{465: "[::1]:465"}, "::1"},
		{"all v6", with("BIND_ADDRESS", "::"), map[int]string{25: "[::]:25"}, "::"},
		{"listen overrides bind", with("BIND_ADDRESS", "192.0.2.10", "LISTEN_25", "127.0.0.1:2525", "LISTEN_465", "[::1]:0", "LISTEN_993", ":1993", "LISTEN_443", "localhost:8443"),
			map[int]string{25: "127.0.0.1:2525", 465: "[::1]:0", 993: ":1993", 443: "localhost:8443", 995: "192.0.2.10:995"}, "192.0.2.10"},
		{"port 0 twice is fine", with("LISTEN_25", "127.0.0.1:0", "LISTEN_465", "127.0.0.1:0"), map[int]string{25: "127.0.0.1:0", 465: "127.0.0.1:0"}, ""},
	}
	for _, tt := range tests {
		cfg, probs := Parse(tt.env)
		if len(probs) != 0 {
			t.Errorf("%s: problems %v", tt.name, probs)
			continue
		}
		if cfg.BindAddress != tt.bind {
			t.Errorf("%s: BindAddress %q; want %q", tt.name, cfg.BindAddress, tt.bind)
		}
		for p, want := range tt.addrs {
			if got := cfg.Listeners[p].Addr; got != want {
				t.Errorf("%s: port %d Addr %q; want %q", tt.name, p, got, want)
			}
		}
	}
}

func TestProxyProtocol(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want []int
	}{
		{"25,993", []int{25, 993}},
		{"mail", []int{25, 110, 143, 465, 587, 993, 995, 4190}},
		{"all-but-http", []int{25, 110, 143, 465, 587, 993, 995, 4190}},
		{"all", []int{25, 80, 110, 143, 443, 465, 587, 993, 995, 4190}},
		{"", nil},
	} {
		cfg, _ := Parse(with("PROXY_PROTOCOL", tc.v, "REAL_IP_FROM", "10.0.0.0/8"))
		if !slices.Equal(cfg.ProxyProtocol, tc.want) {
			t.Errorf("PROXY_PROTOCOL=%q: %v, want %v", tc.v, cfg.ProxyProtocol, tc.want)
		}
	}
}
