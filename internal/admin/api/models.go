package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// field is one member of a Mailu API model (flask-restx fields.*). The
// same definitions validate request bodies and produce the OpenAPI
// definitions.
type field struct {
	name     string
	typ      string // string, integer, boolean, date (a string YYYY-MM-DD), list (of strings)
	desc     string
	example  string
	required bool
	min      *int64 // integers only
}

// model is a named set of fields (flask-restx api.model).
type model struct {
	name   string
	fields []field
}

func str(name, desc, example string) field {
	return field{name: name, typ: "string", desc: desc, example: example}
}
func integer(name, desc string) field { return field{name: name, typ: "integer", desc: desc} }
func boolean(name, desc string) field { return field{name: name, typ: "boolean", desc: desc} }
func list(name, desc, example string) field {
	return field{name: name, typ: "list", desc: desc, example: example}
}
func date(name, desc, example string) field {
	return field{name: name, typ: "date", desc: desc, example: example}
}
func (f field) req() field            { f.required = true; return f }
func (f field) atLeast(n int64) field { f.min = &n; return f }

// body is a validated request body: every member present has its model's
// type; members the model does not name are dropped (Mailu ignores them).
type body map[string]any

func (b body) has(k string) bool { _, ok := b[k]; return ok }

func (b body) str(k string) (string, bool) {
	v, ok := b[k].(string)
	return v, ok
}

func (b body) integer(k string) (int64, bool) {
	v, ok := b[k].(int64)
	return v, ok
}

func (b body) boolean(k string) (bool, bool) {
	v, ok := b[k].(bool)
	return v, ok
}

func (b body) list(k string) ([]string, bool) {
	v, ok := b[k].([]string)
	return v, ok
}

// validationFailed is flask-restx's answer to a body that does not match
// the model (Api(validate=True)): 400 with one reason per field.
func validationFailed(w http.ResponseWriter, errs map[string]string) {
	e := make(obj, 0, len(errs))
	for _, k := range sortedKeys(errs) {
		e = append(e, kv{k, errs[k]})
	}
	writeJSON(w, http.StatusBadRequest, obj{{"errors", e}, {"message", "Input payload validation failed"}})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// maxBody bounds a request body; Mailu's largest (a user) is < 10 KB.
const maxBody = 1 << 20

// decode reads the request body as JSON and validates it against m. An
// empty body counts as {}. It answers the client itself when it fails.
func (c *call) decode(m *model) (body, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			abort(c.w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes", mbe.Limit))
			return nil, false
		}
		abort(c.w, http.StatusBadRequest, "The request body could not be read")
		return nil, false
	}
	if strings.TrimSpace(string(raw)) == "" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		abort(c.w, http.StatusBadRequest, "Failed to decode JSON object: the body is not valid JSON")
		return nil, false
	}
	in, ok := v.(map[string]any)
	if !ok {
		validationFailed(c.w, map[string]string{"": fmt.Sprintf("%s is not of type 'object'", pyRepr(v))})
		return nil, false
	}
	out, errs := m.validate(in)
	if len(errs) > 0 {
		validationFailed(c.w, errs)
		return nil, false
	}
	return out, true
}

// validate checks in against the model the way jsonschema does, with its
// messages.
func (m *model) validate(in map[string]any) (body, map[string]string) {
	out := body{}
	errs := map[string]string{}
	for _, f := range m.fields {
		v, ok := in[f.name]
		if !ok {
			if f.required {
				errs[f.name] = fmt.Sprintf("'%s' is a required property", f.name)
			}
			continue
		}
		got, err := f.check(v)
		if err != "" {
			errs[f.name] = err
			continue
		}
		out[f.name] = got
	}
	return out, errs
}

// check returns v as its Go type (string, int64, bool, []string) or the
// jsonschema reason it is refused.
func (f field) check(v any) (any, string) {
	switch f.typ {
	case "string", "date":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Sprintf("%s is not of type 'string'", pyRepr(v))
		}
		return s, ""
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Sprintf("%s is not of type 'integer'", pyRepr(v))
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return nil, fmt.Sprintf("%s is not of type 'integer'", n)
		}
		if f.min != nil && i < *f.min {
			return nil, fmt.Sprintf("%d is less than the minimum of %d", i, *f.min)
		}
		return i, ""
	case "boolean":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Sprintf("%s is not of type 'boolean'", pyRepr(v))
		}
		return b, ""
	case "list":
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Sprintf("%s is not of type 'array'", pyRepr(v))
		}
		out := make([]string, 0, len(items))
		for _, it := range items {
			s, ok := it.(string)
			if !ok {
				return nil, fmt.Sprintf("%s is not of type 'string'", pyRepr(it))
			}
			out = append(out, s)
		}
		return out, ""
	}
	return nil, "unknown field type " + f.typ
}

// pyRepr writes a JSON value the way Python prints it in jsonschema's
// messages ('abc', 5, True, None, [...], {...}).
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return "'" + x + "'"
	case json.Number:
		return x.String()
	case []any:
		parts := make([]string, len(x))
		for i, it := range x {
			parts[i] = pyRepr(it)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return "{...}"
	}
	return fmt.Sprint(v)
}

// pyList prints a list of strings as Python does (Mailu puts lists into
// messages with f-strings).
func pyList(l []string) string {
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = "'" + s + "'"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Mailu's models (api/v1/*.py), in Mailu's field order.
var (
	responseModel = &model{"Response", []field{
		integer("code", "HTTP status code"), str("message", "message", ""),
	}}

	domainModel = &model{"Domain", []field{
		str("name", "FQDN (e.g. example.com)", "example.com").req(),
		str("comment", "a comment", ""),
		integer("max_users", "maximum number of users").atLeast(-1),
		integer("max_aliases", "maximum number of aliases").atLeast(-1),
		integer("max_quota_bytes", "maximum quota for mailbox").atLeast(0),
		boolean("signup_enabled", "allow signup"),
		list("alternatives", "FQDN", `["example.com"]`),
	}}
	domainUpdateModel = &model{"DomainUpdate", domainModel.fields[1:]}
	domainGetModel    = &model{"DomainGet", []field{
		str("name", "FQDN (e.g. example.com)", "example.com").req(),
		str("comment", "a comment", ""),
		list("managers", "manager of domain", ""),
		integer("max_users", "maximum number of users").atLeast(-1),
		integer("max_aliases", "maximum number of aliases").atLeast(-1),
		integer("max_quota_bytes", "maximum quota for mailbox").atLeast(0),
		boolean("signup_enabled", "allow signup"),
		list("alternatives", "FQDN", `["example.com"]`),
		list("dns_autoconfig", "DNS client auto-configuration entry", ""),
		str("dns_mx", "MX record for domain", ""),
		str("dns_spf", "SPF record for domain", ""),
		str("dns_dkim", "DKIM records for domain", ""),
		str("dns_dmarc", "DMARC record for domain", ""),
		str("dns_dmarc_report", "DMARC report record for domain", ""),
		list("dns_tlsa", "TLSA records for domain", ""),
	}}
	managerModel       = &model{"Manager", []field{list("managers", "manager of domain", "")}}
	managerCreateModel = &model{"ManagerCreate", []field{str("user_email", "email address of manager", "").req()}}
	alternativeModel   = &model{"AlternativeDomain", []field{
		str("name", "alternative FQDN", "example2.com").req(),
		str("domain", "domain FQDN", "example.com").req(),
	}}

	userSettable = []field{
		str("comment", "A description for the user. This description is shown on the Users page", "my comment"),
		integer("quota_bytes", "The maximum quota for the user's email box in bytes"),
		boolean("global_admin", "Make the user a global administrator"),
		boolean("enabled", "Enable the user. When an user is disabled, the user is unable to login to the Admin GUI or webmail or access his email via IMAP/POP3 or send mail"),
		boolean("change_pw_next_login", "Force the user to change their password at next login"),
		boolean("enable_imap", "Allow email retrieval via IMAP"),
		boolean("enable_pop", "Allow email retrieval via POP3"),
		boolean("allow_spoofing", "Allow the user to spoof the sender (send email as anyone)"),
		boolean("forward_enabled", "Enable auto forwarding"),
		list("forward_destination", "Email address to forward emails to", "Other@example.com"),
		boolean("forward_keep", "Keep a copy of the forwarded email in the inbox"),
		boolean("reply_enabled", "Enable automatic replies. This is also known as out of office (ooo) or out of facility (oof) replies"),
		str("reply_subject", "Optional subject for the automatic reply", "Out of office"),
		str("reply_body", "The body of the automatic reply email", "Hello, I am out of office. I will respond when I am back."),
		date("reply_startdate", "Start date for automatic replies in YYYY-MM-DD format.", "2022-02-10"),
		date("reply_enddate", "End date for automatic replies in YYYY-MM-DD format.", "2022-02-22"),
		str("displayed_name", "The display name of the user within the Admin GUI", "John Doe"),
		boolean("spam_enabled", "Enable the spam filter"),
		boolean("spam_mark_as_read", "Enable marking spam mails as read"),
		integer("spam_threshold", "The user defined spam filter tolerance"),
	}
	userGetModel = &model{"UserGet", append([]field{
		str("email", "The email address of the user", "John.Doe@example.com"),
		str("password", "Hash of the user's password", ""),
		str("comment", "A description for the user. This description is shown on the Users page", "my comment"),
		integer("quota_bytes", "The maximum quota for the user's email box in bytes"),
		integer("quota_bytes_used", "The bytes the user's mailbox uses"),
	}, userSettable[2:]...)}
	userCreateModel = &model{"UserCreate", append([]field{
		str("email", "The email address of the user", "John.Doe@example.com").req(),
		str("raw_password", "The raw (plain text) password of the user; it is stored hashed", "secret").req(),
	}, userSettable...)}
	userUpdateModel = &model{"UserUpdate", append([]field{
		str("raw_password", "The raw (plain text) password of the user; it is stored hashed", "secret"),
	}, userSettable...)}

	aliasModel = &model{"Alias", []field{
		str("email", "the alias email address", "user@example.com").req(),
		list("destination", "destination email address", "user@example.com").req(),
		str("comment", "a comment", ""),
		boolean("wildcard", "enable SQL Like wildcard syntax"),
	}}
	aliasUpdateModel = &model{"AliasUpdate", []field{
		str("comment", "a comment", ""),
		list("destination", "alias email address", "user@example.com"),
		boolean("wildcard", "enable SQL Like wildcard syntax"),
	}}

	relayModel = &model{"Relay", []field{
		str("name", "relayed domain name", "example.com").req(),
		str("smtp", "remote host", "example.com"),
		str("comment", "a comment", ""),
	}}
	relayUpdateModel = &model{"RelayUpdate", relayModel.fields[1:]}

	tokenGetModel = &model{"TokenGetResponse", []field{
		str("id", "The record id of the token (unique identifier)", "1"),
		str("email", "The email address of the user", "John.Doe@example.com"),
		str("comment", "A description for the token. This description is shown on the Authentication tokens page", "my comment"),
		list("AuthorizedIP", "White listed IP addresses or networks that may use this token.", "203.0.113.0/24"),
		str("Created", "The date when the token was created", "2024-01-31"),
		str("Last edit", "The date when the token was last modified", "2024-01-31"),
	}}
	tokenPostModel = &model{"TokenPost", []field{
		str("email", "The email address of the user", "John.Doe@example.com").req(),
		str("comment", "A description for the token. This description is shown on the Authentication tokens page", "my comment"),
		list("AuthorizedIP", "White listed IP addresses or networks that may use this token.", "203.0.113.0/24"),
	}}
	tokenPost2Model        = &model{"TokenPost2", tokenPostModel.fields[1:]}
	tokenPostResponseModel = &model{"TokenPostResponse", []field{
		str("id", "The record id of the token (unique identifier)", "1"),
		str("token", "The created authentication token for the user.", "2caf6607de5129e4748a2c061aee56f2"),
		str("email", "The email address of the user", "John.Doe@example.com"),
		str("comment", "A description for the token. This description is shown on the Authentication tokens page", "my comment"),
		list("AuthorizedIP", "White listed IP addresses or networks that may use this token.", "203.0.113.0/24"),
		str("Created", "The date when the token was created", "2024-01-31"),
	}}
)

// allModels are the definitions of the OpenAPI document.
func allModels() []*model {
	return []*model{responseModel, domainModel, domainUpdateModel, domainGetModel, managerModel, managerCreateModel,
		alternativeModel, userGetModel, userCreateModel, userUpdateModel, aliasModel, aliasUpdateModel,
		relayModel, relayUpdateModel, tokenGetModel, tokenPostModel, tokenPost2Model, tokenPostResponseModel}
}
