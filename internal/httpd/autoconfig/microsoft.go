package autoconfig

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Outlook autodiscover (POX, [MS-OXDSCLI]; Mailu: autoconfig_microsoft).
const (
	responseNS        = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	outlookResponseNS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	outlookSchema     = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006"
)

type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

type adResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	NS       string   `xml:"xmlns,attr"`
	Response struct {
		NS      string `xml:"xmlns,attr"`
		Account struct {
			AccountType string       `xml:"AccountType"`
			Action      string       `xml:"Action"`
			Protocols   []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type adProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName,omitempty"`
	DomainRequired string `xml:"DomainRequired"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	AuthRequired   string `xml:"AuthRequired"`
	// Encryption overrides SSL: "SSL" is implicit TLS, "TLS" would be
	// STARTTLS ([MS-OXDSCLI] 2.2.4.1.1.2.5.3.9).
	Encryption string `xml:"Encryption"`
}

// microsoft answers Outlook's POST (GET is answered the same, without a
// login name, as Mailu does).
func (h *Handler) microsoft(w http.ResponseWriter, r *http.Request) {
	var email string
	switch r.Method {
	case http.MethodPost:
		var req adRequest
		err := xml.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req)
		if err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, "the body is not an autodiscover request", http.StatusBadRequest)
			return
		}
		if s := req.Request.AcceptableResponseSchema; s != "" && !strings.HasPrefix(s, outlookSchema) {
			// e.g. the ActiveSync schema: not something Petrel serves.
			http.NotFound(w, r)
			return
		}
		email = address(req.Request.EMailAddress)
	case http.MethodGet, http.MethodHead:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var resp adResponse
	resp.NS, resp.Response.NS = responseNS, outlookResponseNS
	resp.Response.Account.AccountType, resp.Response.Account.Action = "email", "settings"
	for _, s := range h.servers() {
		p := adProtocol{Type: strings.ToUpper(s.proto), Server: h.o.Hostname, Port: s.port, LoginName: email,
			DomainRequired: "off", SPA: "off", SSL: "off", AuthRequired: "on", Encryption: "None"}
		if s.tls {
			p.SSL, p.Encryption = "on", "SSL"
		}
		resp.Response.Account.Protocols = append(resp.Response.Account.Protocols, p)
	}
	writeXML(w, "text/xml; charset=utf-8", resp)
}

// microsoftJSON is Autodiscover v2's first step: where the POX service is
// (Mailu: autoconfig_microsoft_json). Outlook asks
// /autodiscover/autodiscover.json/v1.0/<address>?Protocol=AutodiscoverV1.
func (h *Handler) microsoftJSON(w http.ResponseWriter, r *http.Request) {
	proto := r.URL.Query().Get("Protocol")
	if proto != "" && !strings.EqualFold(proto, "Autodiscoverv1") {
		http.NotFound(w, r)
		return
	}
	b, _ := json.Marshal(struct {
		Protocol string
		URL      string `json:"Url"`
	}{"Autodiscoverv1", "https://" + h.o.Hostname + "/autodiscover/autodiscover.xml"})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
