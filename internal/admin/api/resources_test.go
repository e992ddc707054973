package api

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
)

func TestUsers(t *testing.T) {
	e := newEnv(t)
	e.want("POST", "/domain", `{"name": "example.com", "max_users": 2, "max_quota_bytes": 5000}`, 200, "Domain example.com has been created")
	// Mailu docs example (shortened).
	e.want("POST", "/user", `{"email": "Alice@Example.com", "raw_password": "secret", "comment": "my comment", "quota_bytes": 4000,
		"global_admin": false, "enabled": true, "enable_imap": true, "enable_pop": false, "allow_spoofing": false,
		"forward_enabled": true, "forward_destination": ["other@example.net"], "forward_keep": true,
		"reply_enabled": true, "reply_subject": "Out of office", "reply_body": "Back soon", "reply_startdate": "2022-02-10",
		"reply_enddate": "2022-02-22", "displayed_name": "Alice A.", "spam_enabled": true, "spam_mark_as_read": false, "spam_threshold": 75}`,
		200, "User Alice@Example.com has been created")
	u := e.obj("GET", "/user/alice@example.com", 200)
	want := map[string]any{
		"email": "alice@example.com", "comment": "my comment", "quota_bytes": 4000.0, "quota_bytes_used": 0.0,
		"global_admin": false, "enabled": true, "change_pw_next_login": false, "enable_imap": true, "enable_pop": false,
		"allow_spoofing": false, "forward_enabled": true, "forward_destination": []any{"other@example.net"}, "forward_keep": true,
		"reply_enabled": true, "reply_subject": "Out of office", "reply_body": "Back soon", "reply_startdate": "2022-02-10",
		"reply_enddate": "2022-02-22", "displayed_name": "Alice A.", "spam_enabled": true, "spam_mark_as_read": false, "spam_threshold": 75.0,
	}
	for k, v := range want {
		if !reflect.DeepEqual(u[k], v) {
			t.Errorf("user %s = %#v, want %#v", k, u[k], v)
		}
	}
	hash, _ := u["password"].(string)
	if ok, _, _ := auth.VerifyPassword(hash, "secret"); !ok {
		t.Errorf("password field %q does not verify the raw_password", hash)
	}

	// Errors, each changing nothing.
	e.want("POST", "/user", `{"email": "alice@example.com", "raw_password": "x"}`, 409, "User alice@example.com already exists")
	e.want("POST", "/user", `{"email": "not-an-address", "raw_password": "x"}`, 400, "Provided email address not-an-address is not a valid email address")
	e.want("POST", "/user", `{"email": "x@none.example", "raw_password": "x"}`, 404, "Domain none.example does not exist")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": "x", "reply_startdate": "10/02/2022"}`, 400, "reply_startdate 10/02/2022 is not a valid date (expected YYYY-MM-DD)")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": "x", "forward_enabled": true}`, 400, "forward_destination must list at least one address when forward_enabled is true")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": "x", "forward_enabled": true, "forward_destination": []}`, 400, "forward_destination must list at least one address when forward_enabled is true")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": "x", "forward_destination": ["bad"]}`, 400, "Provided forward destination email address bad is not a valid email address")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": "x", "displayed_name": "`+strings.Repeat("n", 161)+`"}`, 400, "Displayed_name is longer than 160 characters")
	e.want("POST", "/user", `{"email": "`+strings.Repeat("l", 81)+`@example.com", "raw_password": "x"}`, 400, "Provided email address "+strings.Repeat("l", 81)+"@example.com is not a valid email address")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": ""}`, 400, "Empty password refused")
	e.want("POST", "/user", `{"email": "x@example.com", "raw_password": "x", "quota_bytes": 6000}`, 409, "Quota_bytes 6000 exceeds max_quota_bytes (5000) of domain example.com")
	code, v := e.call("POST", "/user", `{"email": "x@example.com"}`)
	if m, _ := v.(map[string]any); code != 400 || !reflect.DeepEqual(m["errors"], map[string]any{"raw_password": "'raw_password' is a required property"}) {
		t.Errorf("missing raw_password: %d %v", code, v)
	}
	if l := e.list("/user"); len(l) != 1 {
		t.Fatalf("refused requests created users: %v", l)
	}
	e.want("POST", "/user", `{"email": "bob@example.com", "raw_password": "x", "quota_bytes": 100}`, 200, "User bob@example.com has been created")
	e.want("POST", "/user", `{"email": "carol@example.com", "raw_password": "x", "quota_bytes": 100}`, 409, "Too many users for domain example.com")
	e.want("POST", "/user", `{"email": "dörte@bücher.example", "raw_password": "x"}`, 404, "Domain xn--bcher-kva.example does not exist")

	// PATCH changes only what is sent; a password change is hashed.
	e.want("PATCH", "/user/alice@example.com", `{"raw_password": "new-secret", "spam_threshold": 90, "forward_enabled": false, "forward_destination": []}`, 200, "User alice@example.com has been updated")
	u = e.obj("GET", "/user/alice@example.com", 200)
	if u["spam_threshold"] != 90.0 || u["comment"] != "my comment" || u["forward_enabled"] != false || !reflect.DeepEqual(u["forward_destination"], []any{}) {
		t.Errorf("after PATCH: %v", u)
	}
	if ok, _, _ := auth.VerifyPassword(u["password"].(string), "new-secret"); !ok {
		t.Error("PATCH raw_password did not set the password")
	}
	before := e.obj("GET", "/user/bob@example.com", 200)
	e.want("PATCH", "/user/bob@example.com", `{"comment": "changed", "reply_enddate": "2022-13-01"}`, 400, "reply_enddate 2022-13-01 is not a valid date (expected YYYY-MM-DD)")
	e.want("PATCH", "/user/bob@example.com", `{"comment": "changed", "spam_threshold": 101}`, 400, "Spam_threshold must be between 0 and 100, not 101")
	e.want("PATCH", "/user/bob@example.com", `{"comment": "changed", "quota_bytes": 9000}`, 409, "Quota_bytes 9000 exceeds max_quota_bytes (5000) of domain example.com")
	e.want("PATCH", "/user/bob@example.com", `{"forward_enabled": true}`, 400, "forward_destination must list at least one address when forward_enabled is true")
	e.want("PATCH", "/user/bob@example.com", `{"raw_password": ""}`, 400, "raw_password must not be empty")
	if after := e.obj("GET", "/user/bob@example.com", 200); !reflect.DeepEqual(before, after) {
		t.Errorf("refused PATCHes changed bob:\n%v\n%v", before, after)
	}
	e.want("PATCH", "/user/nobody@example.com", `{}`, 404, "User nobody@example.com cannot be found")
	e.want("GET", "/user/nobody@example.com", "", 404, "User nobody@example.com cannot be found")
	e.want("GET", "/user/nobody", "", 400, "Provided email address nobody is not a valid email address")

	l := e.list("/user")
	if len(l) != 2 {
		t.Fatalf("users: %v", l)
	}
	if m := l[1].(map[string]any); hasKey(m, "comment") || hasKey(m, "reply_subject") {
		t.Errorf("list entry keeps None fields: %v", m)
	}
	e.want("DELETE", "/user/bob@example.com", "", 200, "User bob@example.com has been deleted")
	e.want("DELETE", "/user/bob@example.com", "", 404, "User bob@example.com cannot be found")
}

func TestAliases(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.want("PATCH", "/domain/example.com", `{"max_aliases": 2}`, 200, "Domain example.com has been updated")
	e.want("POST", "/alias", `{"email": "info@example.com", "destination": ["alice@example.com", "bob@example.com"], "comment": "desk"}`,
		200, "Alias info@example.com to destination(s) ['alice@example.com', 'bob@example.com'] has been created")
	e.want("POST", "/alias", `{"email": "info@example.com", "destination": ["alice@example.com"]}`, 409, "Duplicate alias info@example.com")
	e.want("POST", "/alias", `{"email": "alice@example.com", "destination": ["bob@example.com"]}`, 409, "Duplicate alias alice@example.com")
	e.want("POST", "/alias", `{"email": "x@example.com", "destination": ["outside@example.net"]}`, 404, "Provided destination email address outside@example.net does not exist")
	e.want("POST", "/alias", `{"email": "x@example.com", "destination": ["not-an-address"]}`, 400, "Provided destination email address not-an-address is not a valid email address")
	e.want("POST", "/alias", `{"email": "bad", "destination": ["alice@example.com"]}`, 400, "Provided alias bad is not a valid email address")
	e.want("POST", "/alias", `{"email": "x@none.example", "destination": ["alice@example.com"]}`, 404, "Domain none.example does not exist (x@none.example)")
	e.want("POST", "/alias", `{"email": "x@example.com", "destination": []}`, 400, "Alias x@example.com needs at least one destination")
	code, v := e.call("POST", "/alias", `{"email": "x@example.com"}`)
	if m, _ := v.(map[string]any); code != 400 || !reflect.DeepEqual(m["errors"], map[string]any{"destination": "'destination' is a required property"}) {
		t.Errorf("missing destination: %d %v", code, v)
	}
	e.want("POST", "/alias", `{"email": "%@example.com", "destination": ["alice@example.com"], "wildcard": true}`,
		200, "Alias %@example.com to destination(s) ['alice@example.com'] has been created")
	e.want("POST", "/alias", `{"email": "third@example.com", "destination": ["alice@example.com"]}`, 409, "Too many aliases for domain example.com")

	a := e.obj("GET", "/alias/info@example.com", 200)
	if !reflect.DeepEqual(a, map[string]any{"email": "info@example.com", "destination": []any{"alice@example.com", "bob@example.com"}, "comment": "desk", "wildcard": false}) {
		t.Errorf("alias: %v", a)
	}
	e.want("PATCH", "/alias/info@example.com", `{"destination": ["nobody@example.com"]}`, 404, "Provided destination email address nobody@example.com does not exist")
	e.want("PATCH", "/alias/info@example.com", `{"destination": ["bob@example.com"], "comment": "new"}`, 200, "Alias info@example.com has been updated")
	if a := e.obj("GET", "/alias/info@example.com", 200); !reflect.DeepEqual(a["destination"], []any{"bob@example.com"}) || a["comment"] != "new" {
		t.Errorf("after PATCH: %v", a)
	}
	e.want("GET", "/alias/none@example.com", "", 404, "Alias none@example.com cannot be found")
	e.want("GET", "/alias/none", "", 400, "Provided alias (email address) none is not a valid email address")
	if l := e.list("/alias/destination/example.com"); len(l) != 2 {
		t.Errorf("aliases of example.com: %v", l)
	}
	e.want("GET", "/alias/destination/none.example", "", 404, "Domain none.example cannot be found")
	if code, v := e.call("GET", "/alias/domains/available", ""); code != 200 || !reflect.DeepEqual(v, []any{"example.com"}) {
		t.Errorf("available domains: %d %v", code, v)
	}
	if l := e.list("/alias"); len(l) != 2 {
		t.Errorf("aliases: %v", l)
	}
	e.want("DELETE", "/alias/info@example.com", "", 200, "Alias info@example.com has been deleted")
	e.want("DELETE", "/alias/info@example.com", "", 404, "Alias info@example.com cannot be found")
}

func TestRelays(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.want("POST", "/relay", `{"name": "relay.example", "smtp": "mx.relay.example", "comment": "backup"}`, 200, "Relayed domain relay.example has been created")
	e.want("POST", "/relay", `{"name": "relay.example"}`, 409, "Duplicate domain relay.example")
	e.want("POST", "/relay", `{"name": "example.com"}`, 409, "Duplicate domain example.com")
	e.want("POST", "/relay", `{"name": "bad..example"}`, 400, "Relayed domain bad..example is not a valid domain")
	e.want("POST", "/relay", `{"name": "r2.example", "smtp": "a b"}`, 400, `Invalid relay transport "a b"`)
	e.want("POST", "/relay", `{"name": "r2.example", "smtp": "`+strings.Repeat("h", 81)+`"}`, 400, fmt.Sprintf("Relay transport %q is longer than 80 characters", strings.Repeat("h", 81)))
	if r := e.obj("GET", "/relay/relay.example", 200); !reflect.DeepEqual(r, map[string]any{"name": "relay.example", "smtp": "mx.relay.example", "comment": "backup"}) {
		t.Errorf("relay: %v", r)
	}
	e.want("PATCH", "/relay/relay.example", `{"smtp": "[10.0.0.1]:25"}`, 200, "Relayed domain relay.example has been updated")
	if r := e.obj("GET", "/relay/relay.example", 200); r["smtp"] != "[10.0.0.1]:25" || r["comment"] != "backup" {
		t.Errorf("after PATCH: %v", r)
	}
	e.want("PATCH", "/relay/relay.example", `{"smtp": "bad,host"}`, 400, `Invalid relay transport "bad,host"`)
	e.want("GET", "/relay/none.example", "", 404, "Relayed domain none.example cannot be found")
	if l := e.list("/relay"); len(l) != 1 {
		t.Errorf("relays: %v", l)
	}
	e.want("DELETE", "/relay/relay.example", "", 200, "Relayed domain relay.example has been deleted")
	e.want("DELETE", "/relay/relay.example", "", 404, "Relayed domain relay.example cannot be found")
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	e.seed()
	code, v := e.call("POST", "/token", `{"email": "alice@example.com", "comment": "phone", "AuthorizedIP": ["203.0.113.0/24"]}`)
	tok, _ := v.(map[string]any)
	if code != 200 || tok["id"] != 1.0 || !hexToken.MatchString(fmt.Sprint(tok["token"])) || tok["email"] != "alice@example.com" ||
		tok["comment"] != "phone" || !reflect.DeepEqual(tok["AuthorizedIP"], []any{"203.0.113.0/24"}) || tok["Created"] == "None" {
		t.Fatalf("POST /token: %d %v", code, v)
	}
	// The token logs in as alice from the allowed network only.
	a := auth.New(auth.Options{Users: e.st})
	if _, err := a.Authenticate(context.Background(), auth.Attempt{Username: "alice@example.com", Password: auth.Secret(tok["token"].(string)), Protocol: "imap", Port: 993, Remote: mustAddr("203.0.113.7")}); err != nil {
		t.Errorf("new token does not log in: %v", err)
	}
	// Both paths of the user's tokens: /tokenuser/ (what Mailu serves) and /token/user/ (what it documents).
	for _, p := range []string{"/tokenuser/alice@example.com", "/token/user/alice@example.com"} {
		code, v := e.call("POST", p, `{"comment": "laptop"}`)
		if m, _ := v.(map[string]any); code != 200 || !hexToken.MatchString(fmt.Sprint(m["token"])) || m["email"] != "alice@example.com" {
			t.Errorf("POST %s: %d %v", p, code, v)
		}
		l := e.list(p)
		if len(l) < 2 || l[0].(map[string]any)["id"] != 1.0 || l[0].(map[string]any)["Last edit"] != "None" || hasKey(l[0].(map[string]any), "token") {
			t.Errorf("GET %s: %v", p, l)
		}
	}
	all := e.list("/token")
	if len(all) != 3 || all[0].(map[string]any)["id"] != "1" || hasKey(all[0].(map[string]any), "Last edit") {
		t.Errorf("GET /token (marshalled: id as string, no None): %v", all)
	}
	got := e.obj("GET", "/token/1", 200)
	if got["id"] != 1.0 || got["comment"] != "phone" || hasKey(got, "token") {
		t.Errorf("GET /token/1: %v", got)
	}
	e.want("PATCH", "/token/1", `{"comment": "old phone", "AuthorizedIP": ["198.51.100.0/24", "2001:db8::1"]}`, 200, "Token with id 1 has been updated")
	if got := e.obj("GET", "/token/1", 200); got["comment"] != "old phone" || !reflect.DeepEqual(got["AuthorizedIP"], []any{"198.51.100.0/24", "2001:db8::1"}) || got["Last edit"] == "None" {
		t.Errorf("after PATCH: %v", got)
	}
	e.want("PATCH", "/token/1", `{"AuthorizedIP": ["not-an-ip"]}`, 400, "Provided AuthorizedIP not-an-ip in ['not-an-ip'] is invalid")
	e.want("POST", "/token", `{"email": "alice@example.com", "AuthorizedIP": ["300.1.1.1"]}`, 400, "Provided AuthorizedIP 300.1.1.1 in ['300.1.1.1'] is invalid")
	e.want("POST", "/token", `{"email": "nobody@example.com"}`, 404, "User nobody@example.com cannot be found")
	e.want("POST", "/token", `{"email": "bad"}`, 400, "Provided email address bad is not a valid email address")
	e.want("GET", "/tokenuser/nobody@example.com", "", 404, "User nobody@example.com cannot be found")
	e.want("POST", "/token/user/nobody@example.com", "{}", 404, "User nobody@example.com cannot be found")
	for _, id := range []string{"99", "abc", "0", "-1"} {
		e.want("GET", "/token/"+id, "", 404, "Record cannot be found for id "+id+" or invalid id provided")
	}
	e.want("DELETE", "/token/1", "", 200, "Token with id 1 has been deleted")
	e.want("DELETE", "/token/1", "", 404, "Record cannot be found for id 1 or invalid id provided")
	if l := e.list("/token"); len(l) != 2 {
		t.Errorf("tokens after delete: %v", l)
	}
}
