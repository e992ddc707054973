package autoconfig

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strconv"
)

// apple serves a configuration profile with one com.apple.mail.managed
// payload (Apple: Configuration Profile Reference, "Mail"; Mailu:
// autoconfig_apple). ?emailaddress= fills in the address and user name,
// which Mailu leaves for the user to type. The UUIDs derive from the host
// name and address, so installing the profile again replaces it.
func (h *Handler) apple(w http.ResponseWriter, r *http.Request) {
	email := address(r.URL.Query().Get("emailaddress"))
	var in, out *server
	for _, s := range h.servers() {
		switch {
		case s.proto == "imap" && in == nil:
			in = &s
		case s.proto == "smtp" && out == nil:
			out = &s
		}
	}
	if in == nil || out == nil {
		http.Error(w, "no IMAP or submission port is open, so there is nothing to configure", http.StatusNotFound)
		return
	}
	site := h.o.SiteName
	if site == "" {
		site = h.o.Hostname
	}
	var mail plist
	mail.str("EmailAccountDescription", site)
	mail.str("EmailAccountName", email)
	mail.str("EmailAccountType", "EmailTypeIMAP")
	mail.str("EmailAddress", email)
	mail.str("IncomingMailServerAuthentication", "EmailAuthPassword")
	mail.str("IncomingMailServerHostName", h.o.Hostname)
	mail.integer("IncomingMailServerPortNumber", in.port)
	mail.boolean("IncomingMailServerUseSSL", in.tls)
	mail.str("IncomingMailServerUsername", email)
	mail.str("OutgoingMailServerAuthentication", "EmailAuthPassword")
	mail.str("OutgoingMailServerHostName", h.o.Hostname)
	mail.integer("OutgoingMailServerPortNumber", out.port)
	mail.boolean("OutgoingMailServerUseSSL", out.tls)
	mail.str("OutgoingMailServerUsername", email)
	mail.boolean("OutgoingPasswordSameAsIncomingPassword", true)
	mail.str("PayloadDescription", "Email account "+email+" on "+h.o.Hostname)
	mail.str("PayloadDisplayName", site)
	mail.str("PayloadIdentifier", reverseDNS(h.o.Hostname)+".email")
	mail.str("PayloadType", "com.apple.mail.managed")
	mail.str("PayloadUUID", uuid5("petrel-mail:"+h.o.Hostname+":"+email))
	mail.integer("PayloadVersion", 1)
	mail.boolean("PreventAppSheet", false)
	mail.boolean("PreventMove", false)
	mail.boolean("SMIMEEnabled", false)

	var top plist
	top.raw("PayloadContent", "<array>\n"+mail.dict()+"</array>")
	top.str("PayloadDescription", h.o.Hostname+" - E-Mail Account Configuration")
	top.str("PayloadDisplayName", "E-Mail Account "+h.o.Hostname)
	top.str("PayloadIdentifier", reverseDNS(h.o.Hostname))
	top.str("PayloadOrganization", site)
	top.boolean("PayloadRemovalDisallowed", false)
	top.str("PayloadType", "Configuration")
	top.str("PayloadUUID", uuid5("petrel-profile:"+h.o.Hostname+":"+email))
	top.integer("PayloadVersion", 1)

	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n" + top.dict() + "</plist>\n")
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="`+safeFile(h.o.Hostname)+`.mobileconfig"`)
	_, _ = w.Write(b.Bytes())
}

// plist builds a <dict> body.
type plist struct{ b bytes.Buffer }

func (p *plist) key(k string) {
	p.b.WriteString("<key>")
	_ = xml.EscapeText(&p.b, []byte(k))
	p.b.WriteString("</key>\n")
}

func (p *plist) str(k, v string) {
	p.key(k)
	p.b.WriteString("<string>")
	_ = xml.EscapeText(&p.b, []byte(v))
	p.b.WriteString("</string>\n")
}

func (p *plist) integer(k string, v int) {
	p.key(k)
	p.b.WriteString("<integer>" + strconv.Itoa(v) + "</integer>\n")
}

func (p *plist) boolean(k string, v bool) {
	p.key(k)
	if v {
		p.b.WriteString("<true/>\n")
	} else {
		p.b.WriteString("<false/>\n")
	}
}

func (p *plist) raw(k, v string) {
	p.key(k)
	p.b.WriteString(v + "\n")
}

func (p *plist) dict() string { return "<dict>\n" + p.b.String() + "</dict>\n" }

// reverseDNS turns mail.example.com into com.example.mail (Apple's
// PayloadIdentifier convention).
func reverseDNS(host string) string {
	parts := bytes.Split([]byte(host), []byte("."))
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return string(bytes.Join(parts, []byte(".")))
}

// safeFile keeps a file name to letters, digits, dots and dashes.
func safeFile(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			out[i] = '_'
		}
	}
	return string(out)
}
