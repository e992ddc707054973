// Package autoconfig tells mail clients how to connect, in the formats
// they ask for: Mozilla autoconfig (Thunderbird, K-9, FairEmail), Microsoft
// autodiscover (Outlook, XML and JSON) and an Apple configuration profile
// (.mobileconfig). Like Mailu (admin internal/views/autoconfig.py) it
// advertises only implicit TLS, IMAP 993 and submission 465 (and POP3 995
// when on), with the full address as the user name, so no client ends up
// on port 25 or on a closed 587. It reads no store: the answer depends only
// on the server's settings and the address asked about.
package autoconfig

import (
	"crypto/sha1" //nolint:gosec // RFC 4122 name-based UUID (version 5), not a security use
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// Options describe the server clients should use.
type Options struct {
	Hostname string // HOSTNAMES[0]: the name in the certificate
	SiteName string // SITENAME, shown in the profile
	// DocURL is the client setup page (Mailu: https://HOSTNAME/admin/client);
	// "" leaves the documentation element out.
	DocURL string
	// TLS is false under TLS_FLAVOR=notls: then IMAP 143 and submission
	// 587 without TLS are offered, if on, since nothing else exists.
	TLS       bool
	POP3      bool // POP3S 995 is on (with TLS), or POP3 110 (notls)
	IMAP143   bool // notls only: IMAP 143 is on
	Submit587 bool // notls only: submission 587 is on
}

// Handler serves the autoconfig paths (httpd.AutoconfigPaths).
type Handler struct{ o Options }

// New returns the handler.
func New(o Options) *Handler { return &Handler{o: o} }

// maxRequest bounds an autodiscover request body; real ones are < 1 KB.
const maxRequest = 16 << 10

// ServeHTTP dispatches on the path, case-insensitively (Outlook varies it).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.ToLower(r.URL.Path)
	switch {
	case p == "/.well-known/autoconfig/mail/config-v1.1.xml" || p == "/mail/config-v1.1.xml":
		if !getOrHead(w, r) {
			return
		}
		h.mozilla(w, r)
	case p == "/autodiscover/autodiscover.xml":
		h.microsoft(w, r)
	case p == "/autodiscover/autodiscover.json" || strings.HasPrefix(p, "/autodiscover/autodiscover.json/"):
		if !getOrHead(w, r) {
			return
		}
		h.microsoftJSON(w, r)
	case p == "/apple" || p == "/mobileconfig" || p == "/apple.mobileconfig":
		if !getOrHead(w, r) {
			return
		}
		h.apple(w, r)
	default:
		http.NotFound(w, r)
	}
}

func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// server is one advertised endpoint.
type server struct {
	proto string // imap, pop3, smtp
	port  int
	tls   bool // implicit TLS
}

// servers lists what clients should use, incoming first.
func (h *Handler) servers() []server {
	if h.o.TLS {
		s := []server{{"imap", 993, true}}
		if h.o.POP3 {
			s = append(s, server{"pop3", 995, true})
		}
		return append(s, server{"smtp", 465, true})
	}
	var s []server
	if h.o.IMAP143 {
		s = append(s, server{"imap", 143, false})
	}
	if h.o.POP3 {
		s = append(s, server{"pop3", 110, false})
	}
	if h.o.Submit587 {
		s = append(s, server{"smtp", 587, false})
	}
	return s
}

// address returns the address the client asked about, normalised, or "".
func address(raw string) string {
	a, err := mailaddr.Normalize(strings.TrimSpace(raw))
	if err != nil || !strings.Contains(a, "@") {
		return ""
	}
	return a
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// Mozilla clientConfig 1.1
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string       `xml:"id,attr"`
	Domain           string       `xml:"domain"`
	DisplayName      string       `xml:"displayName"`
	DisplayShortName string       `xml:"displayShortName"`
	Incoming         []mozServer  `xml:"incomingServer"`
	Outgoing         []mozServer  `xml:"outgoingServer"`
	Documentation    *mozDocument `xml:"documentation,omitempty"`
}

type mozServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

type mozDocument struct {
	URL   string `xml:"url,attr"`
	Descr struct {
		Lang string `xml:"lang,attr"`
		Text string `xml:",chardata"`
	} `xml:"descr"`
}

func (h *Handler) mozilla(w http.ResponseWriter, r *http.Request) {
	dom := domainOf(address(r.URL.Query().Get("emailaddress")))
	if dom == "" {
		// autoconfig.<domain> is a CNAME to the host name.
		host := strings.ToLower(r.Host)
		if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
			host = host[:i]
		}
		if d, ok := strings.CutPrefix(host, "autoconfig."); ok {
			if n, err := mailaddr.NormalizeDomain(d); err == nil {
				dom = n
			}
		}
	}
	if dom == "" {
		dom = "%EMAILDOMAIN%"
	}
	name := h.o.SiteName
	if name == "" {
		name = "Email"
	}
	cc := clientConfig{Version: "1.1", Provider: emailProvider{
		// Mailu a5dccfed: the id is the host name (K-9 Mail keys on it).
		ID: h.o.Hostname, Domain: dom, DisplayName: name, DisplayShortName: name,
	}}
	for _, s := range h.servers() {
		ms := mozServer{Type: s.proto, Hostname: h.o.Hostname, Port: s.port, SocketType: "plain",
			Username: "%EMAILADDRESS%", Authentication: "password-cleartext"}
		if s.tls {
			ms.SocketType = "SSL"
		}
		if s.proto == "smtp" {
			cc.Provider.Outgoing = append(cc.Provider.Outgoing, ms)
		} else {
			cc.Provider.Incoming = append(cc.Provider.Incoming, ms)
		}
	}
	if h.o.DocURL != "" {
		d := &mozDocument{URL: h.o.DocURL}
		d.Descr.Lang, d.Descr.Text = "en", "Configure your email client"
		cc.Provider.Documentation = d
	}
	writeXML(w, "text/xml; charset=utf-8", cc)
}

func writeXML(w http.ResponseWriter, ctype string, v any) {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(b)
	_, _ = io.WriteString(w, "\n")
}

// uuid5 is an RFC 4122 version 5 UUID of name in a fixed namespace, so a
// profile for the same account replaces the installed one.
func uuid5(name string) string {
	ns := []byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8} // DNS namespace
	sum := sha1.Sum(append(ns, name...))                                                                         //nolint:gosec // see import
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}
