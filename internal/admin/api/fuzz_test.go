package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidate runs any JSON object through every model: validation never
// panics and what it returns has the model's types.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{`{"name": "example.com", "max_users": -1}`, `{"destination": ["a@b.c", 1]}`, `{"quota_bytes": 1e400}`,
		`{"reply_startdate": null}`, `{"AuthorizedIP": []}`, `{"max_users": 99999999999999999999}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var in map[string]any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if dec.Decode(&in) != nil {
			return
		}
		for _, m := range allModels() {
			out, errs := m.validate(in)
			for _, fd := range m.fields {
				v, ok := out[fd.name]
				if !ok {
					continue
				}
				if _, bad := errs[fd.name]; bad {
					t.Fatalf("%s.%s both valid and refused", m.name, fd.name)
				}
				switch fd.typ {
				case "integer":
					_, ok = v.(int64)
				case "boolean":
					_, ok = v.(bool)
				case "list":
					_, ok = v.([]string)
				default:
					_, ok = v.(string)
				}
				if !ok {
					t.Fatalf("%s.%s has type %T", m.name, fd.name, v)
				}
			}
		}
	})
}
