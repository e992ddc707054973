package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	e := newEnv(t)
	// Both spellings of a good token work.
	for _, auth := range []string{testToken, "Bearer " + testToken} {
		if code, _ := e.callAuth(auth, "GET", "/domain", ""); code != 200 {
			t.Errorf("Authorization %q: %d, want 200", auth, code)
		}
	}
	for _, tc := range []struct {
		auth   string
		status int
		msg    string
	}{
		{"", 401, "A valid Authorization header is mandatory"},
		{"Bearer wrong", 403, "Invalid API token"},
		{"bearer " + testToken, 403, "Invalid API token"}, // Mailu strips only "Bearer "
		{testToken + "x", 403, "Invalid API token"},
	} {
		code, v := e.callAuth(tc.auth, "GET", "/domain", "")
		if m, _ := v.(map[string]any); code != tc.status || m["message"] != tc.msg {
			t.Errorf("Authorization %q: %d %v, want %d %q", tc.auth, code, v, tc.status, tc.msg)
		}
	}
	// Three failures so far from 127.0.0.1 (max 3): now even the right
	// token is refused with 429, before the token is looked at.
	code, v := e.callAuth("Bearer "+testToken, "GET", "/domain", "")
	if m, _ := v.(map[string]any); code != 429 || m["message"] != "Too many attempts from your IP (rate-limit)" {
		t.Errorf("after 3 failures: %d %v, want 429", code, v)
	}
	// A missing header is not a failed guess (Mailu counts only wrong tokens).
	if n := e.lim.fails[mustAddr("127.0.0.1")]; n != 3 {
		t.Errorf("failures counted: %d, want 3", n)
	}
	if _, err := New(Options{Admin: e.svc, Token: "abc"}); err == nil {
		t.Error("a 3-character API_TOKEN was accepted")
	}
	if _, err := New(Options{Token: testToken}); err == nil {
		t.Error("an API without admin service was accepted")
	}
}

func TestSpecNeedsNoToken(t *testing.T) {
	e := newEnv(t)
	code, v := e.callAuth("", "GET", "/swagger.json", "")
	m, _ := v.(map[string]any)
	if code != 200 || m["swagger"] != "2.0" || m["basePath"] != "/api/v1" {
		t.Fatalf("swagger.json: %d %v", code, m["swagger"])
	}
	resp, err := http.Get(e.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("doc root: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	e := newEnv(t)
	code, v := e.call("GET", "/nothing", "")
	if m, _ := v.(map[string]any); code != 404 || !strings.Contains(fmt.Sprint(m["message"]), "not found") {
		t.Errorf("unknown path: %d %v", code, v)
	}
	code, v = e.call("PUT", "/domain/example.com", "{}")
	if m, _ := v.(map[string]any); code != 405 || !strings.Contains(fmt.Sprint(m["message"]), "method is not allowed") {
		t.Errorf("PUT: %d %v", code, v)
	}
}

func TestDomainLifecycle(t *testing.T) {
	e := newEnv(t)
	// Mailu docs: curl -X POST .../domain -d '{"name": "example.com", ...}'
	e.want("POST", "/domain", `{"name": "example.com", "comment": "main", "max_users": 10, "max_aliases": 5, "max_quota_bytes": 2000000000, "signup_enabled": true, "alternatives": ["example.org"], "unknown": 1}`,
		200, "Domain example.com has been created")
	d := e.obj("GET", "/domain/example.com", 200)
	want := map[string]any{
		"name": "example.com", "comment": "main", "managers": []any{}, "max_users": 10.0, "max_aliases": 5.0,
		"max_quota_bytes": 2e9, "signup_enabled": true, "alternatives": []any{"example.org"},
		"dns_mx":           "example.com. 600 IN MX 10 mail.example.com.",
		"dns_spf":          `example.com. 600 IN TXT "v=spf1 mx a:mail.example.com ~all"`,
		"dns_dmarc":        `_dmarc.example.com. 600 IN TXT "v=DMARC1; p=reject; rua=mailto:admin@example.com; ruf=mailto:admin@example.com; adkim=s; aspf=s"`,
		"dns_dmarc_report": nil, "dns_tlsa": nil,
	}
	for k, v := range want {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("domain %s = %#v, want %#v", k, d[k], v)
		}
	}
	if dk, _ := d["dns_dkim"].(string); !strings.HasPrefix(dk, `dkim._domainkey.example.com. 600 IN TXT "v=DKIM1; k=rsa; p=`) {
		t.Errorf("dns_dkim = %q", dk)
	}
	auto := fmt.Sprint(d["dns_autoconfig"])
	for _, s := range []string{"_imaps._tcp.example.com. 600 IN SRV 10 1 993 mail.example.com.", "_submissions._tcp.example.com. 600 IN SRV 10 1 465 mail.example.com.",
		"_submission._tcp.example.com. 600 IN SRV 0 0 0 .", "_autodiscover._tcp.example.com. 600 IN SRV 10 1 443 mail.example.com.",
		"autoconfig.example.com. 600 IN CNAME mail.example.com."} {
		if !strings.Contains(auto, s) {
			t.Errorf("dns_autoconfig lacks %q: %s", s, auto)
		}
	}
	if len(d) != 15 {
		t.Errorf("DomainGet has %d fields, want Mailu's 15: %v", len(d), d)
	}

	// Name clashes: domain, alternative and relay share one namespace.
	e.want("POST", "/domain", `{"name": "example.com"}`, 409, "Duplicate domain name example.com")
	e.want("POST", "/domain", `{"name": "example.org"}`, 409, "Duplicate domain name example.org")
	e.want("POST", "/relay", `{"name": "relay.example"}`, 200, "Relayed domain relay.example has been created")
	e.want("POST", "/domain", `{"name": "relay.example"}`, 409, "Duplicate domain name relay.example")
	e.want("POST", "/domain", `{"name": "new.example", "alternatives": ["a.example", "a.example"]}`, 409, "Duplicate alternative domain names in request")
	e.want("POST", "/domain", `{"name": "new.example", "alternatives": ["relay.example"]}`, 409, "Duplicate alternative domain name relay.example")
	e.want("POST", "/domain", `{"name": "new.example", "alternatives": ["bad..name"]}`, 400, "Alternative domain bad..name is not a valid domain")
	// Nothing of the refused requests was created.
	if code, _ := e.call("GET", "/domain/new.example", ""); code != 404 {
		t.Errorf("refused domain exists: %d", code)
	}

	// PATCH adds alternatives and changes only what is sent.
	e.want("PATCH", "/domain/example.com", `{"max_users": 20, "alternatives": ["example.net"]}`, 200, "Domain example.com has been updated")
	d = e.obj("GET", "/domain/example.com", 200)
	if d["max_users"] != 20.0 || d["max_aliases"] != 5.0 || d["comment"] != "main" || !reflect.DeepEqual(d["alternatives"], []any{"example.net", "example.org"}) {
		t.Errorf("after PATCH: %v", d)
	}
	e.want("PATCH", "/domain/example.com", `{"alternatives": ["relay.example"]}`, 409, "Duplicate alternative domain name relay.example")
	e.want("PATCH", "/domain/missing.example", `{}`, 404, "Domain missing.example does not exist")
	e.want("POST", "/domain/example.com/dkim", "", 200, "DKIM/DMARC keys have been generated for domain example.com")

	l := e.list("/domain")
	if len(l) != 1 {
		t.Fatalf("GET /domain: %v", l)
	}
	if m := l[0].(map[string]any); m["name"] != "example.com" || m["dns_tlsa"] != nil || hasKey(m, "dns_tlsa") || hasKey(m, "dns_dmarc_report") {
		t.Errorf("list entry (None fields must be left out): %v", m)
	}
	e.want("DELETE", "/domain/example.com", "", 200, "Domain example.com has been deleted")
	e.want("DELETE", "/domain/example.com", "", 404, "Domain example.com does not exist")
	if l := e.list("/alternative"); len(l) != 0 {
		t.Errorf("alternatives outlived their domain: %v", l)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

func TestValidationShape(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		body   string
		errors map[string]any
	}{
		{`{}`, map[string]any{"name": "'name' is a required property"}},
		{`{"name": 5}`, map[string]any{"name": "5 is not of type 'string'"}},
		{`{"name": "x.example", "max_users": "ten"}`, map[string]any{"max_users": "'ten' is not of type 'integer'"}},
		{`{"name": "x.example", "max_users": -2, "max_quota_bytes": -1}`, map[string]any{"max_users": "-2 is less than the minimum of -1", "max_quota_bytes": "-1 is less than the minimum of 0"}},
		{`{"name": "x.example", "signup_enabled": "yes"}`, map[string]any{"signup_enabled": "'yes' is not of type 'boolean'"}},
		{`{"name": "x.example", "alternatives": "a.example"}`, map[string]any{"alternatives": "'a.example' is not of type 'array'"}},
		{`{"name": "x.example", "alternatives": [1]}`, map[string]any{"alternatives": "1 is not of type 'string'"}},
		{`{"name": null}`, map[string]any{"name": "None is not of type 'string'"}},
		{`[1]`, map[string]any{"": "[1] is not of type 'object'"}},
	} {
		code, v := e.call("POST", "/domain", tc.body)
		m, _ := v.(map[string]any)
		if code != 400 || m["message"] != "Input payload validation failed" || !reflect.DeepEqual(m["errors"], tc.errors) {
			t.Errorf("POST /domain %s: %d %v, want 400 %v", tc.body, code, v, tc.errors)
		}
	}
	code, v := e.call("POST", "/domain", `{"name": `)
	if code != 400 {
		t.Errorf("broken JSON: %d %v", code, v)
	}
	code, v = e.call("POST", "/domain", `{"name": "x.example", "comment": "`+strings.Repeat("x", maxBody)+`"}`)
	if m, _ := v.(map[string]any); code != 413 || !strings.Contains(fmt.Sprint(m["message"]), "larger than") {
		t.Errorf("huge body: %d %v", code, v)
	}
	code, v = e.call("POST", "/domain", `{"name": "x.example"} {"name": "y.example"}`)
	if code != 400 {
		t.Errorf("two JSON values: %d %v", code, v)
	}
	if l := e.list("/domain"); len(l) != 0 {
		t.Errorf("invalid requests created domains: %v", l)
	}
}

func TestDomainNames(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", 70) + ".example"
	e.want("POST", "/domain", `{"name": "bücher.example"}`, 200, "Domain bücher.example has been created")
	if d := e.obj("GET", "/domain/xn--bcher-kva.example", 200); d["name"] != "xn--bcher-kva.example" {
		t.Errorf("IDN stored as %v", d["name"])
	}
	e.obj("GET", "/domain/b%C3%BCcher.example", 200) // the Unicode form finds it too
	e.want("POST", "/domain", `{"name": "bad_name!.example"}`, 400, "Domain bad_name!.example is not a valid domain")
	e.want("POST", "/domain", `{"name": "nodot"}`, 400, "Domain nodot is not a valid domain")
	e.want("POST", "/domain", `{"name": "`+long+`"}`, 400, "Domain "+long+" is not a valid domain")
	e.want("POST", "/domain", `{"name": "x.example", "comment": "`+strings.Repeat("c", 256)+`"}`, 400, "Comment is longer than 255 characters")
	e.want("GET", "/domain/bad..example", "", 400, "Domain bad..example is not a valid domain")
	if l := e.list("/domain"); len(l) != 1 {
		t.Errorf("domains: %v", l)
	}
}

func TestManagers(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.want("POST", "/domain/example.com/manager", `{"user_email": "alice@example.com"}`, 200, "User alice@example.com has been added as manager of the domain example.com ")
	e.want("POST", "/domain/example.com/manager", `{"user_email": "alice@example.com"}`, 409, "User alice@example.com is already a manager of the domain example.com ")
	e.want("POST", "/domain/example.com/manager", `{"user_email": "nobody@example.com"}`, 404, "User nobody@example.com does not exist")
	e.want("POST", "/domain/example.com/manager", `{"user_email": "not-an-address"}`, 400, "Invalid email address not-an-address")
	e.want("POST", "/domain/other.example/manager", `{"user_email": "alice@example.com"}`, 404, "Domain other.example does not exist")
	if m := e.obj("GET", "/domain/example.com/manager", 200); !reflect.DeepEqual(m, map[string]any{"managers": []any{"alice@example.com"}}) {
		t.Errorf("managers: %v", m)
	}
	e.want("GET", "/domain/example.com/manager/alice@example.com", "", 200, "User alice@example.com is a manager of the domain example.com")
	e.want("GET", "/domain/example.com/manager/bob@example.com", "", 404, "User bob@example.com is not a manager of the domain example.com")
	e.want("DELETE", "/domain/example.com/manager/alice@example.com", "", 200, "User alice@example.com has been removed as a manager of the domain example.com ")
	e.want("DELETE", "/domain/example.com/manager/alice@example.com", "", 404, "User alice@example.com is not a manager of the domain example.com")
	if d := e.obj("GET", "/domain/example.com", 200); !reflect.DeepEqual(d["managers"], []any{}) {
		t.Errorf("managers after delete: %v", d["managers"])
	}
	users := e.list("/domain/example.com/users")
	if len(users) != 2 || users[0].(map[string]any)["email"] != "alice@example.com" {
		t.Errorf("domain users: %v", users)
	}
	e.want("GET", "/domain/none.example/users", "", 404, "Domain none.example does not exist")
}

func TestAlternatives(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.want("POST", "/alternative", `{"name": "example.org", "domain": "example.com"}`, 200, "Alternative example.org for domain example.com has been created")
	e.want("POST", "/alternative", `{"name": "example.org", "domain": "example.com"}`, 409, "Duplicate alternative domain name example.org")
	e.want("POST", "/alternative", `{"name": "example.com", "domain": "example.com"}`, 409, "Duplicate alternative domain name example.com")
	e.want("POST", "/alternative", `{"name": "x.example", "domain": "none.example"}`, 404, "Domain none.example does not exist")
	e.want("POST", "/alternative", `{"name": "x..example", "domain": "example.com"}`, 400, "Alternative domain x..example is not a valid domain")
	code, v := e.call("POST", "/alternative", `{"name": "x.example"}`)
	if m, _ := v.(map[string]any); code != 400 || !reflect.DeepEqual(m["errors"], map[string]any{"domain": "'domain' is a required property"}) {
		t.Errorf("missing domain: %d %v", code, v)
	}
	if l := e.list("/alternative"); !reflect.DeepEqual(l, []any{map[string]any{"name": "example.org", "domain": "example.com"}}) {
		t.Errorf("alternatives: %v", l)
	}
	if m := e.obj("GET", "/alternative/example.org", 200); m["domain"] != "example.com" {
		t.Errorf("alternative: %v", m)
	}
	e.want("GET", "/alternative/none.example", "", 404, "Alternative domain none.example does not exist")
	e.want("DELETE", "/alternative/example.org", "", 200, "Alternative example.org for domain example.com has been deleted")
	e.want("DELETE", "/alternative/example.org", "", 404, "Alternative domain example.org does not exist")
}

var hexToken = regexp.MustCompile(`^[0-9a-f]{32}$`)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestUnicodeMessages(t *testing.T) {
	// Messages echo what the client sent, not the A-label.
	e := newEnv(t)
	e.want("POST", "/relay", `{"name": "bücher.example", "smtp": "mx.example.net"}`, 200, "Relayed domain bücher.example has been created")
	if m := e.obj("GET", "/relay/xn--bcher-kva.example", 200); m["name"] != "xn--bcher-kva.example" || m["smtp"] != "mx.example.net" {
		t.Errorf("relay: %v", m)
	}
}

// sortedPaths is the spec's paths in order, for stable test output.
func sortedPaths(p map[string]any) []string {
	out := make([]string, 0, len(p))
	for k := range p {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestEveryDocumentedPathAnswers walks swagger.json and calls every
// operation with the token and real parameters: each must answer with a
// status the document lists for it, in JSON, never the router's 404/405.
func TestEveryDocumentedPathAnswers(t *testing.T) {
	e := newEnv(t)
	e.seed()
	_, tok, err := e.svc.CreateToken(context.Background(), "alice@example.com", "seed", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.want("POST", "/alias", `{"email": "info@example.com", "destination": ["alice@example.com"]}`, 200, "Alias info@example.com to destination(s) ['alice@example.com'] has been created")
	e.want("POST", "/relay", `{"name": "relay.example"}`, 200, "Relayed domain relay.example has been created")
	e.want("POST", "/alternative", `{"name": "example.org", "domain": "example.com"}`, 200, "Alternative example.org for domain example.com has been created")
	params := map[string]string{"{domain}": "example.com", "{email}": "alice@example.com", "{alt}": "example.org",
		"{alias}": "info@example.com", "{name}": "relay.example", "{token_id}": fmt.Sprint(tok.ID)}
	bodies := map[string]string{
		"POST /domain": `{"name": "new.example"}`, "PATCH /domain/{domain}": `{"comment": "c"}`,
		"POST /domain/{domain}/manager": `{"user_email": "bob@example.com"}`,
		"POST /alternative":             `{"name": "example.net", "domain": "example.com"}`,
		"POST /user":                    `{"email": "carol@example.com", "raw_password": "pw"}`, "PATCH /user/{email}": `{"comment": "c"}`,
		"POST /alias": `{"email": "sales@example.com", "destination": ["bob@example.com"]}`, "PATCH /alias/{alias}": `{"comment": "c"}`,
		"POST /relay": `{"name": "relay2.example"}`, "PATCH /relay/{name}": `{"comment": "c"}`,
		"POST /token": `{"email": "bob@example.com"}`, "PATCH /token/{token_id}": `{"comment": "c"}`,
		"POST /tokenuser/{email}": `{}`, "POST /token/user/{email}": `{}`,
	}
	spec := e.api.Spec().(map[string]any)
	paths := spec["paths"].(map[string]map[string]any)
	pm := map[string]any{}
	for k := range paths {
		pm[k] = nil
	}
	e.want("POST", "/domain/example.com/manager", `{"user_email": "alice@example.com"}`, 200, "User alice@example.com has been added as manager of the domain example.com ")
	calls := 0
	// DELETE last, the domain itself at the very end, so the other calls
	// find what they need.
	for _, method := range []string{"get", "post", "patch", "delete"} {
		order := sortedPaths(pm)
		if method == "delete" {
			sort.SliceStable(order, func(i, j int) bool {
				return order[j] == "/domain/{domain}" && order[i] != order[j]
			})
		}
		for _, p := range order {
			op, ok := paths[p][method]
			if !ok {
				continue
			}
			path := p
			for k, v := range params {
				path = strings.ReplaceAll(path, k, v)
			}
			code, v := e.call(strings.ToUpper(method), path, bodies[strings.ToUpper(method)+" "+p])
			calls++
			resps := op.(map[string]any)["responses"].(map[string]any)
			if _, documented := resps[fmt.Sprint(code)]; !documented || code >= 300 {
				t.Errorf("%s %s: %d %v (want a documented 2xx)", method, path, code, v)
			}
		}
	}
	if calls != len(e.api.routes) {
		t.Errorf("called %d operations, the table has %d", calls, len(e.api.routes))
	}
	// Every model of the document is referenced or is the response model.
	if defs := spec["definitions"].(map[string]any); len(defs) != len(allModels()) {
		t.Errorf("%d definitions, want %d", len(defs), len(allModels()))
	}
}
