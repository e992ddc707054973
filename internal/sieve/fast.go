package sieve

import (
	"context"
	"mime"
	"net/mail"
	"regexp"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/migadu/go-sieve/interp"
	"github.com/migadu/go-sieve/parser"
)

// go-sieve v1.1.2 compiles a regular expression on every :regex match and
// on every value an address test looks at (stripRFC2822Comments), which
// made a 200-rule script cost milliseconds per message. These two tests
// are ours instead: addresses are parsed once per run and matched by
// go-sieve's own header test; :regex keys are compiled once, at load.

// addrField is the synthetic field an address test's parts are shown as.
const addrField = "X-Petrel-Address"

// addressTest is RFC 5228 5.1's address test: the address parts of the
// named fields, matched as header values.
type addressTest struct {
	inner   interp.Test
	headers []string
	part    string // all, localpart, domain, user, detail
}

func (t addressTest) Check(ctx context.Context, d *interp.RuntimeData) (bool, error) {
	st := stateFrom(ctx)
	var vals []string
	for _, h := range t.headers {
		for _, a := range st.addresses(d, h) {
			if v, ok := a.part(t.part); ok {
				vals = append(vals, v)
			}
		}
	}
	orig, edits := d.Msg, d.HeaderEdits
	d.Msg, d.HeaderEdits = valuesView{Message: orig, name: addrField, values: vals}, nil
	defer func() { d.Msg, d.HeaderEdits = orig, edits }()
	return t.inner.Check(ctx, d)
}

// valuesView answers one header field with several values.
type valuesView struct {
	interp.Message
	name   string
	values []string
}

func (v valuesView) HeaderGet(key string) ([]string, error) {
	if strings.EqualFold(key, v.name) {
		return v.values, nil
	}
	return nil, nil
}

// address is one parsed address of a header field.
type address struct {
	local, domain string
	raw           string // an unparsable value, for :all only
}

func (a address) part(p string) (string, bool) {
	if a.raw != "" || (a.local == "" && a.domain == "") {
		return a.raw, p == "all"
	}
	switch p {
	case "localpart":
		return a.local, true
	case "domain":
		return a.domain, true
	case "user", "detail":
		// RFC 5233: "+" is the separator (Mailu's RECIPIENT_DELIMITER
		// default, and go-sieve's); without one :detail matches nothing.
		user, detail, ok := strings.Cut(a.local, "+")
		if p == "user" {
			return user, true
		}
		return detail, ok
	}
	if a.domain == "" {
		return a.local, true
	}
	return a.local + "@" + a.domain, true
}

var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}

// addresses parses a field's addresses once per run (editheader edits
// made since count: the cache key has their number).
func (st *runState) addresses(d *interp.RuntimeData, name string) []address {
	key := strings.ToLower(name)
	if st.addrCache == nil || st.addrEdits != len(d.HeaderEdits) {
		st.addrCache, st.addrEdits = map[string][]address{}, len(d.HeaderEdits)
	}
	if a, ok := st.addrCache[key]; ok {
		return a
	}
	values, _ := interp.GetHeaderWithEdits(d, name)
	var out []address
	for _, v := range values {
		v = strings.TrimSpace(v)
		list, err := addrParser.ParseList(v)
		if err != nil {
			out = append(out, address{raw: v})
			continue
		}
		if len(list) == 0 {
			out = append(out, address{}) // an empty field matches ""
		}
		for _, a := range list {
			local, domain := a.Address, ""
			if i := strings.LastIndexByte(local, '@'); i >= 0 {
				local, domain = local[:i], local[i+1:]
			}
			out = append(out, address{local: local, domain: domain})
		}
	}
	st.addrCache[key] = out
	return out
}

// loadAddress turns "address [ADDRESS-PART] [COMPARATOR] [MATCH-TYPE]
// <header-list> <key-list>" into an addressTest over a header test.
func (l *loader) loadAddress(pt parser.Test) (interp.Test, error) {
	part := ""
	var rest []parser.Arg
	var pos []parser.Arg
	for i := 0; i < len(pt.Args); i++ {
		a := pt.Args[i]
		if t, ok := a.(parser.TagArg); ok {
			switch p := strings.ToLower(t.Value); p {
			case "all", "localpart", "domain", "user", "detail":
				if part != "" {
					return nil, errAt(pt.Position, "address takes one address part")
				}
				if (p == "user" || p == "detail") && !l.lib.RequiresExtension("subaddress") {
					return nil, errAt(pt.Position, ":%s needs require \"subaddress\"", p)
				}
				part = p
				continue
			}
			rest = append(rest, a)
			if needsValue(a) && i+1 < len(pt.Args) {
				i++
				rest = append(rest, pt.Args[i])
			}
			continue
		}
		pos = append(pos, a)
	}
	if len(pos) != 2 || len(pt.Tests) != 0 {
		return nil, errAt(pt.Position, "address takes a header list and a key list")
	}
	headers, ok := stringList(pos[0])
	if !ok {
		return nil, errAt(pt.Position, "address takes a header list and a key list")
	}
	for _, h := range headers {
		if strings.Contains(h, "${") && l.lib.RequiresExtension("variables") {
			// Variable field names: go-sieve's own test expands them.
			return l.libTest(pt)
		}
	}
	if part == "" {
		part = "all"
	}
	hp := parser.Test{Position: pt.Position, Id: "header",
		Args: append(rest, parser.StringListArg{Value: []string{addrField}, Position: pt.Position}, pos[1])}
	inner, err := l.headerTest(hp)
	if err != nil {
		return nil, err
	}
	return addressTest{inner: inner, headers: headers, part: part}, nil
}

// regexTest is a header test with :regex and constant keys, compiled once.
type regexTest struct {
	headers []string
	keys    []*regexp.Regexp
}

var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

func (t regexTest) Check(ctx context.Context, d *interp.RuntimeData) (bool, error) {
	for _, h := range t.headers {
		values, err := interp.GetHeaderWithEdits(d, h)
		if err != nil {
			return false, err
		}
		for _, v := range values {
			if dec, err := wordDecoder.DecodeHeader(v); err == nil {
				v = dec
			}
			if len(v) > maxRegexInput {
				v = v[:maxRegexInput]
			}
			for _, re := range t.keys {
				if m := re.FindStringSubmatch(v); m != nil {
					d.MatchVariables = m
					return true, nil
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
	return false, nil
}

// maxRegexInput bounds what one :regex match reads (go-sieve's default).
const maxRegexInput = 64 << 10

// headerTest loads a header test, compiling :regex keys once when it can
// and comparing :is and :contains itself (go-sieve expands variables in
// every name and key on every run, even constant ones).
func (l *loader) headerTest(pt parser.Test) (interp.Test, error) {
	if t, ok, err := l.regexHeader(pt); ok || err != nil {
		return t, err
	}
	if t, ok := l.simpleHeader(pt); ok {
		return t, nil
	}
	return l.libTest(pt)
}

// simpleTest is "header [:comparator C] [:is|:contains] <names> <keys>"
// with constant names and keys and C i;ascii-casemap or i;octet.
type simpleTest struct {
	headers  []string
	keys     []string // lower-cased when fold
	contains bool
	fold     bool
}

func (t simpleTest) Check(_ context.Context, d *interp.RuntimeData) (bool, error) {
	for _, h := range t.headers {
		values, err := interp.GetHeaderWithEdits(d, h)
		if err != nil {
			return false, err
		}
		for _, v := range values {
			if strings.Contains(v, "=?") {
				if dec, err := wordDecoder.DecodeHeader(v); err == nil {
					v = dec
				}
			}
			if t.fold {
				v = lowerASCII(v)
			}
			for _, k := range t.keys {
				if (t.contains && strings.Contains(v, k)) || (!t.contains && v == k) {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// lowerASCII is i;ascii-casemap's folding (RFC 4790 9.2).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func (l *loader) simpleHeader(pt parser.Test) (interp.Test, bool) {
	t := simpleTest{fold: true}
	var pos []parser.Arg
	for i := 0; i < len(pt.Args); i++ {
		switch a := pt.Args[i].(type) {
		case parser.TagArg:
			switch strings.ToLower(a.Value) {
			case "is":
			case "contains":
				t.contains = true
			case "comparator":
				c, ok := stringList(argAt(pt.Args, i+1))
				if !ok || len(c) != 1 || (c[0] != "i;octet" && c[0] != "i;ascii-casemap") {
					return nil, false
				}
				t.fold = c[0] == "i;ascii-casemap"
				i++
			default:
				return nil, false
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 || len(pt.Tests) != 0 {
		return nil, false
	}
	names, ok1 := stringList(pos[0])
	keys, ok2 := stringList(pos[1])
	if !ok1 || !ok2 || len(names) == 0 || len(keys) == 0 {
		return nil, false
	}
	// encoded-character and variables rewrite strings: go-sieve's path.
	if l.lib.RequiresExtension("encoded-character") {
		return nil, false
	}
	vars := l.lib.RequiresExtension("variables")
	for _, s := range append(slicesClone(names), keys...) {
		if vars && strings.Contains(s, "${") {
			return nil, false
		}
	}
	t.headers = names
	for _, k := range keys {
		if t.fold {
			k = lowerASCII(k)
		}
		t.keys = append(t.keys, k)
	}
	return t, true
}

// regexHeader handles "header [:comparator C] :regex <names> <keys>" with
// constant names and keys; ok is false for every other shape.
func (l *loader) regexHeader(pt parser.Test) (interp.Test, bool, error) {
	comparator := "i;ascii-casemap"
	isRegex := false
	var pos []parser.Arg
	for i := 0; i < len(pt.Args); i++ {
		switch a := pt.Args[i].(type) {
		case parser.TagArg:
			switch strings.ToLower(a.Value) {
			case "regex":
				isRegex = true
			case "comparator":
				if i+1 >= len(pt.Args) {
					return nil, false, nil
				}
				c, ok := stringList(pt.Args[i+1])
				if !ok || len(c) != 1 {
					return nil, false, nil
				}
				comparator = c[0]
				i++
			default:
				return nil, false, nil
			}
		default:
			pos = append(pos, a)
		}
	}
	if !isRegex || len(pos) != 2 || len(pt.Tests) != 0 || !l.lib.RequiresExtension("regex") {
		return nil, false, nil
	}
	names, ok1 := stringList(pos[0])
	keys, ok2 := stringList(pos[1])
	if !ok1 || !ok2 {
		return nil, false, nil
	}
	vars := l.lib.RequiresExtension("variables")
	for _, s := range append(slicesClone(names), keys...) {
		if vars && strings.Contains(s, "${") {
			return nil, false, nil
		}
	}
	prefix := ""
	switch comparator {
	case "i;octet":
	case "i;ascii-casemap", "i;unicode-casemap":
		prefix = "(?i)" // the comparator folds case on both sides
	default:
		return nil, false, nil // go-sieve reports the error
	}
	t := regexTest{headers: names}
	for _, k := range keys {
		re, err := regexp.Compile(prefix + k)
		if err != nil {
			return nil, true, errAt(pt.Position, "bad regular expression %q: %v", k, err)
		}
		t.keys = append(t.keys, re)
	}
	return t, true, nil
}

func (l *loader) libTest(pt parser.Test) (interp.Test, error) {
	t, err := interp.LoadTest(l.lib, pt)
	if err != nil {
		return nil, withLine(pt.Position, err)
	}
	return t, nil
}

func stringList(a parser.Arg) ([]string, bool) {
	switch a := a.(type) {
	case parser.StringArg:
		return []string{a.Value}, true
	case parser.StringListArg:
		return a.Value, true
	}
	return nil, false
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
