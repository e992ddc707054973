package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
	"gopkg.in/yaml.v3"
)

// This file holds the pieces of Mailu's config-export/config-import format
// (core/admin/mailu/schemas.py, MailuSchema) that export and import share:
// an ordered document, its YAML and JSON renderings, and value coercion.

// hidden is what Mailu prints instead of a secret (schemas.py HIDDEN).
const hidden = "<hidden>"

// Sections in Mailu's order (MailuSchema.Meta.order).
var sectionOrder = []string{"domain", "user", "alias", "relay"}

// Primary keys of each section and of nested tokens.
var primaryKey = map[string]string{"domain": "name", "user": "email", "alias": "email", "relay": "name", "tokens": "id"}

// field is one key of an exported object.
type field struct {
	Key string
	Val any
}

// omap is an object whose keys keep their order.
type omap []field

func (m omap) get(key string) (any, bool) {
	for _, f := range m {
		if f.Key == key {
			return f.Val, true
		}
	}
	return nil, false
}

// literal is a string rendered in YAML's literal block style (DKIM keys,
// schemas.py _Multiline).
type literal string

// sortFields orders keys as marshmallow-sqlalchemy does when a schema has no
// explicit order: the primary key first, then alphabetically.
func sortFields(m omap, pk string) {
	sort.SliceStable(m, func(i, j int) bool {
		if m[i].Key == pk || m[j].Key == pk {
			return m[i].Key == pk && m[j].Key != pk
		}
		return m[i].Key < m[j].Key
	})
}

// Document is an exported configuration: the sections that were asked for,
// in Mailu's order.
type Document struct {
	sections omap
}

// YAML renders the document as Mailu does: block style, two-space indent,
// lists indented under their key, a blank line between sections.
func (d *Document) YAML() ([]byte, error) {
	var out bytes.Buffer
	for i, sec := range d.sections {
		if i > 0 {
			out.WriteByte('\n')
		}
		root := &yaml.Node{Kind: yaml.MappingNode}
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: sec.Key}
		v, err := toNode(sec.Val)
		if err != nil {
			return nil, err
		}
		root.Content = append(root.Content, k, v)
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(root); err != nil {
			return nil, fmt.Errorf("admin: yaml: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("admin: yaml: %w", err)
		}
		out.Write(b.Bytes())
	}
	if out.Len() == 0 {
		out.WriteString("{}\n")
	}
	return out.Bytes(), nil
}

// JSON renders the document on one line, as Mailu's RenderJSON does
// (separators "," and ":"), followed by a newline.
func (d *Document) JSON() ([]byte, error) {
	var b bytes.Buffer
	if err := writeJSON(&b, d.sections); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func toNode(v any) (*yaml.Node, error) {
	switch x := v.(type) {
	case omap:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range x {
			c, err := toNode(f.Val)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Key}, c)
		}
		return n, nil
	case []omap:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if len(x) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, m := range x {
			c, err := toNode(m)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if len(x) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, s := range x {
			c, err := toNode(s)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case literal:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(x), Style: yaml.LiteralStyle}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, fmt.Errorf("admin: yaml: %w", err)
	}
	return n, nil
}

func writeJSON(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case omap:
		b.WriteByte('{')
		for i, f := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(f.Key)
			b.Write(k)
			b.WriteByte(':')
			if err := writeJSON(b, f.Val); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case []omap:
		b.WriteByte('[')
		for i, m := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, m); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case literal:
		v = string(x)
	}
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("admin: json: %w", err)
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// displayDomain turns a stored IDNA name into Unicode, as Mailu's IdnaDomain
// type does when it reads a row.
func displayDomain(name string) string {
	u, err := idna.Lookup.ToUnicode(name)
	if err != nil {
		return name
	}
	return u
}

func displayEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return email
	}
	return email[:at+1] + displayDomain(email[at+1:])
}

// Value coercion for imported data. Marshmallow is lenient in the same ways:
// booleans from "true"/"yes"/"1", integers from numeric strings.

func asString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	}
	// Strict, as marshmallow's String field: an unquoted 0123 would lose
	// its leading zero.
	return "", fmt.Errorf("not a valid string")
}

func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		return int64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("not a valid integer")
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "t", "yes", "y", "on", "1":
			return true, nil
		case "false", "f", "no", "n", "off", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("not a valid boolean")
}

// asDate reads Mailu's date format (2006-01-02), as a string or as the
// timestamp YAML makes of an unquoted date.
func asDate(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return dateOnly(x), nil
	case string:
		s := strings.TrimSpace(x)
		if len(s) > 10 && (s[10] == 'T' || s[10] == ' ') {
			s = s[:10]
		}
		t, err := time.Parse("2006-01-02", s)
		if err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a valid date")
}

// asList reads a list of strings or a comma-separated string
// (schemas.py CommaSeparatedListField).
func asList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("not a valid string or list")
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	}
	return nil, fmt.Errorf("not a valid string or list")
}

func dateText(t time.Time) string { return t.UTC().Format("2006-01-02") }
