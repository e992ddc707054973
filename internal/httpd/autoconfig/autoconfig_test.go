package autoconfig

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, o Options) string {
	t.Helper()
	srv := httptest.NewServer(New(o))
	t.Cleanup(srv.Close)
	return srv.URL
}

var tlsOptions = Options{Hostname: "mail.example.com", SiteName: "Example Mail", DocURL: "https://mail.example.com/admin/client", TLS: true, POP3: true}

func fetch(t *testing.T, method, url, ctype, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// The Mozilla format as the spec (ConfigFileFormat) describes it, read
// back with encoding/xml from an independent struct.
type mozConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string   `xml:"id,attr"`
		Domains  []string `xml:"domain"`
		Display  string   `xml:"displayName"`
		Short    string   `xml:"displayShortName"`
		Incoming []struct {
			Type       string `xml:"type,attr"`
			Hostname   string `xml:"hostname"`
			Port       int    `xml:"port"`
			SocketType string `xml:"socketType"`
			Username   string `xml:"username"`
			Auth       string `xml:"authentication"`
		} `xml:"incomingServer"`
		Outgoing []struct {
			Type       string `xml:"type,attr"`
			Hostname   string `xml:"hostname"`
			Port       int    `xml:"port"`
			SocketType string `xml:"socketType"`
			Username   string `xml:"username"`
			Auth       string `xml:"authentication"`
		} `xml:"outgoingServer"`
		Doc struct {
			URL string `xml:"url,attr"`
		} `xml:"documentation"`
	} `xml:"emailProvider"`
}

func TestMozilla(t *testing.T) {
	base := serve(t, tlsOptions)
	for _, path := range []string{"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40Example.org", "/mail/config-v1.1.xml?emailaddress=alice@example.org"} {
		resp, b := fetch(t, "GET", base+path, "", "")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var c mozConfig
		if err := xml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, b)
		}
		p := c.Provider
		if c.Version != "1.1" || p.ID != "mail.example.com" || len(p.Domains) != 1 || p.Domains[0] != "example.org" || p.Doc.URL != "https://mail.example.com/admin/client" {
			t.Errorf("%s: provider %+v", path, c)
		}
		if len(p.Incoming) != 2 || p.Incoming[0].Type != "imap" || p.Incoming[0].Port != 993 || p.Incoming[1].Type != "pop3" || p.Incoming[1].Port != 995 {
			t.Errorf("incoming %+v, want IMAP 993 then POP3 995", p.Incoming)
		}
		for _, s := range p.Incoming {
			if s.SocketType != "SSL" || s.Username != "%EMAILADDRESS%" || s.Hostname != "mail.example.com" || s.Auth != "password-cleartext" {
				t.Errorf("incoming %+v", s)
			}
		}
		if len(p.Outgoing) != 1 || p.Outgoing[0].Port != 465 || p.Outgoing[0].SocketType != "SSL" || p.Outgoing[0].Username != "%EMAILADDRESS%" {
			t.Errorf("outgoing %+v, want SMTP 465 SSL with the full address", p.Outgoing)
		}
	}
	// The domain from autoconfig.<domain>, else the placeholder.
	req, _ := http.NewRequest("GET", base+"/mail/config-v1.1.xml", nil)
	req.Host = "autoconfig.bücher.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var c mozConfig
	if err := xml.Unmarshal(b, &c); err != nil || c.Provider.Domains[0] != "xn--bcher-kva.example" {
		t.Errorf("domain from Host: %v %q", err, c.Provider.Domains)
	}
	_, b = fetch(t, "GET", base+"/mail/config-v1.1.xml?emailaddress=%3Cscript%3E", "", "")
	c = mozConfig{}
	if err := xml.Unmarshal(b, &c); err != nil || c.Provider.Domains[0] != "%EMAILDOMAIN%" || strings.Contains(string(b), "<script>") {
		t.Errorf("bad address: %v %s", err, b)
	}
	if resp, _ := fetch(t, "POST", base+"/mail/config-v1.1.xml", "", ""); resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func TestMozillaNoTLS(t *testing.T) {
	base := serve(t, Options{Hostname: "mail.example.com", IMAP143: true, Submit587: true})
	_, b := fetch(t, "GET", base+"/mail/config-v1.1.xml", "", "")
	var c mozConfig
	if err := xml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Provider.Incoming) != 1 || c.Provider.Incoming[0].Port != 143 || c.Provider.Incoming[0].SocketType != "plain" ||
		len(c.Provider.Outgoing) != 1 || c.Provider.Outgoing[0].Port != 587 {
		t.Errorf("notls: %+v", c.Provider)
	}
	if strings.Contains(string(b), "<port>25</port>") {
		t.Error("port 25 advertised to clients")
	}
}

// Outlook's response as [MS-OXDSCLI] describes it.
type adResp struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			AccountType string `xml:"AccountType"`
			Action      string `xml:"Action"`
			Protocol    []struct {
				Type, Server, LoginName, SSL, SPA, AuthRequired, Encryption string
				Port                                                        int
			} `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

const adRequestBody = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>Alice@Example.org</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

func TestMicrosoft(t *testing.T) {
	base := serve(t, tlsOptions)
	for _, path := range []string{"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"} {
		resp, b := fetch(t, "POST", base+path, "text/xml", adRequestBody)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		var r adResp
		if err := xml.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, b)
		}
		a := r.Response.Account
		if a.AccountType != "email" || a.Action != "settings" || len(a.Protocol) != 3 {
			t.Fatalf("account %+v", a)
		}
		for i, want := range []struct {
			typ  string
			port int
		}{{"IMAP", 993}, {"POP3", 995}, {"SMTP", 465}} {
			p := a.Protocol[i]
			if p.Type != want.typ || p.Port != want.port || p.Server != "mail.example.com" || p.LoginName != "alice@example.org" ||
				p.SSL != "on" || p.Encryption != "SSL" || p.SPA != "off" || p.AuthRequired != "on" {
				t.Errorf("protocol %d: %+v", i, p)
			}
		}
	}
	// Another schema (ActiveSync) is not served; garbage is refused.
	resp, _ := fetch(t, "POST", base+"/autodiscover/autodiscover.xml", "text/xml", strings.Replace(adRequestBody,
		"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a",
		"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006", 1))
	if resp.StatusCode != 404 {
		t.Errorf("mobilesync schema: %d, want 404", resp.StatusCode)
	}
	if resp, _ := fetch(t, "POST", base+"/autodiscover/autodiscover.xml", "text/xml", "<Autodiscover><Request>"); resp.StatusCode != 400 {
		t.Errorf("broken XML: %d, want 400", resp.StatusCode)
	}
	if resp, _ := fetch(t, "PUT", base+"/autodiscover/autodiscover.xml", "", ""); resp.StatusCode != 405 {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}

	// JSON: where the XML service is.
	for _, path := range []string{"/autodiscover/autodiscover.json?Protocol=Autodiscoverv1", "/autodiscover/autodiscover.json/v1.0/alice@example.org?Protocol=AutodiscoverV1", "/autodiscover/autodiscover.json"} {
		resp, b := fetch(t, "GET", base+path, "", "")
		var j map[string]string
		if err := json.Unmarshal(b, &j); resp.StatusCode != 200 || err != nil || j["Protocol"] != "Autodiscoverv1" || j["Url"] != "https://mail.example.com/autodiscover/autodiscover.xml" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	if resp, _ := fetch(t, "GET", base+"/autodiscover/autodiscover.json?Protocol=ActiveSync", "", ""); resp.StatusCode != 404 {
		t.Errorf("other protocol: %d, want 404", resp.StatusCode)
	}
}

func TestApplePlist(t *testing.T) {
	base := serve(t, tlsOptions)
	resp, b := fetch(t, "GET", base+"/apple?emailaddress=alice@example.org", "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-apple-aspen-config" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "mail.example.com.mobileconfig") {
		t.Fatalf("apple: %d %v", resp.StatusCode, resp.Header)
	}
	// Python's plistlib is an independent parser of Apple's format.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", `
import plistlib, sys, json
p = plistlib.loads(sys.stdin.buffer.read())
m = p["PayloadContent"][0]
print(json.dumps({"type": p["PayloadType"], "mtype": m["PayloadType"], "in": m["IncomingMailServerPortNumber"],
  "inssl": m["IncomingMailServerUseSSL"], "out": m["OutgoingMailServerPortNumber"], "outssl": m["OutgoingMailServerUseSSL"],
  "user": m["IncomingMailServerUsername"], "outuser": m["OutgoingMailServerUsername"], "host": m["IncomingMailServerHostName"],
  "addr": m["EmailAddress"], "uuid": m["PayloadUUID"], "version": p["PayloadVersion"]}))
`)
	cmd.Stdin = strings.NewReader(string(b))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib: %v\n%s\n%s", err, out, b)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "Configuration", "mtype": "com.apple.mail.managed", "in": 993.0, "inssl": true, "out": 465.0, "outssl": true,
		"user": "alice@example.org", "outuser": "alice@example.org", "host": "mail.example.com", "addr": "alice@example.org", "version": 1.0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if u, _ := got["uuid"].(string); len(u) != 36 || u[14] != '5' {
		t.Errorf("PayloadUUID %q is not a version 5 UUID", u)
	}
	// Same account, same UUIDs (a reinstall replaces the profile).
	_, b2 := fetch(t, "GET", base+"/mobileconfig?emailaddress=alice@example.org", "", "")
	if string(b) != string(b2) {
		t.Error("profile differs between /apple and /mobileconfig for the same address")
	}
	if resp, _ := fetch(t, "GET", serve(t, Options{Hostname: "h.example"})+"/apple", "", ""); resp.StatusCode != 404 {
		t.Errorf("profile without any port: %d, want 404", resp.StatusCode)
	}
}

func FuzzAutodiscoverRequest(f *testing.F) {
	f.Add(adRequestBody)
	f.Add("<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>")
	f.Add("")
	h := New(tlsOptions)
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/autodiscover/autodiscover.xml", strings.NewReader(body))
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			var r adResp
			if err := xml.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("answer is not XML: %v", err)
			}
		case 400, 404:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
