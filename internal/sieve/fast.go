package sieve

import (
	"context"
	"errors"
	"mime"
	"net/mail"
	"regexp"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/migadu/go-sieve/interp"
	"github.com/migadu/go-sieve/parser"
	"rsc.io/binaryregexp"
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
	part, rest, pos, err := l.addressArgs(pt)
	if err != nil {
		return nil, err
	}
	if len(pos) != 2 {
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
	hp := parser.Test{Position: pt.Position, Id: "header",
		Args: append(rest, parser.StringListArg{Value: []string{addrField}, Position: pt.Position}, pos[1])}
	inner, err := l.headerTest(hp)
	if err != nil {
		return nil, err
	}
	return addressTest{inner: inner, headers: headers, part: part}, nil
}

// addressArgs splits an address or envelope test's arguments into its
// address part ("all" by default), the other tags with their values, and
// the positional arguments.
func (l *loader) addressArgs(pt parser.Test) (part string, rest, pos []parser.Arg, err error) {
	for i := 0; i < len(pt.Args); i++ {
		a := pt.Args[i]
		if t, ok := a.(parser.TagArg); ok {
			switch p := strings.ToLower(t.Value); p {
			case "all", "localpart", "domain", "user", "detail":
				if part != "" {
					return "", nil, nil, errAt(pt.Position, "%s takes one address part", pt.Id)
				}
				if (p == "user" || p == "detail") && !l.lib.RequiresExtension("subaddress") {
					return "", nil, nil, errAt(pt.Position, ":%s needs require \"subaddress\"", p)
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
	if len(pt.Tests) != 0 {
		return "", nil, nil, errAt(pt.Position, "%s takes no nested test", pt.Id)
	}
	if part == "" {
		part = "all"
	}
	return part, rest, pos, nil
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

// simpleTest is "header [:comparator C] [:is|:contains|:matches] <names>
// <keys>" with constant names and keys and C i;ascii-casemap or i;octet;
// :matches patterns are compiled once.
type simpleTest struct {
	headers []string
	keys    []string // lower-cased when fold
	match   string   // is, contains, matches
	fold    bool
	globs   []*binaryregexp.Regexp
	// lits[i] is a literal every value globs[i] matches contains (folded
	// when fold): a cheap test before the regular expression runs.
	lits []string
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
			if t.match == "matches" {
				if len(v) > maxRegexInput {
					v = v[:maxRegexInput]
				}
				folded := v
				if t.fold {
					folded = lowerASCII(v)
				}
				for i, re := range t.globs {
					if !strings.Contains(folded, t.lits[i]) {
						continue
					}
					if m := re.FindStringSubmatch(v); m != nil {
						d.MatchVariables = m
						return true, nil
					}
				}
				continue
			}
			if t.fold {
				v = lowerASCII(v)
			}
			for _, k := range t.keys {
				if (t.match == "contains" && strings.Contains(v, k)) || (t.match == "is" && v == k) {
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

// globRegexp turns a :matches pattern (RFC 5228 2.7.1: "*" any sequence,
// "?" one character, "\\" escapes) into a regular expression whose groups
// are the wildcards, for the match variables ${1}... (RFC 5229 3.2). The
// engine works on octets, as i;octet and i;ascii-casemap do (and go-sieve).
func globRegexp(pattern string, fold bool) (*binaryregexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)")
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteByte('^')
	escaped := false
	for _, r := range pattern {
		switch {
		case escaped:
			b.WriteString(regexp.QuoteMeta(string(r)))
			escaped = false
		case r == '\\':
			escaped = true
		case r == '*':
			b.WriteString("(.*?)")
		case r == '?':
			b.WriteString("(.)")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if escaped {
		return nil, errors.New("pattern ends in a lone backslash") // go-sieve's own path decides
	}
	b.WriteByte('$')
	return binaryregexp.Compile(b.String())
}

// globLiteral is the longest run of literal characters in a :matches
// pattern.
func globLiteral(pattern string, fold bool) string {
	var best, cur strings.Builder
	escaped := false
	flush := func() {
		if cur.Len() > best.Len() {
			best.Reset()
			best.WriteString(cur.String())
		}
		cur.Reset()
	}
	for _, r := range pattern {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == '*' || r == '?':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	lit := best.String()
	if !fold {
		return lit
	}
	for i := 0; i < len(lit); i++ {
		if lit[i] >= 0x80 {
			return "" // (?i) folds more than ASCII: no shortcut
		}
	}
	return lowerASCII(lit)
}

func (l *loader) simpleHeader(pt parser.Test) (interp.Test, bool) {
	t := simpleTest{fold: true, match: "is"}
	var pos []parser.Arg
	for i := 0; i < len(pt.Args); i++ {
		switch a := pt.Args[i].(type) {
		case parser.TagArg:
			switch m := strings.ToLower(a.Value); m {
			case "is", "contains", "matches":
				t.match = m
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
	if len(pos) != 2 || len(pt.Tests) != 0 || countTags(pt.Args, "is", "contains", "matches") > 1 {
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
		if t.match == "matches" {
			re, err := globRegexp(k, t.fold)
			if err != nil {
				return nil, false // go-sieve reports the error
			}
			t.globs = append(t.globs, re)
			t.lits = append(t.lits, globLiteral(k, t.fold))
			continue
		}
		if t.fold {
			k = lowerASCII(k)
		}
		t.keys = append(t.keys, k)
	}
	return t, true
}

func countTags(args []parser.Arg, names ...string) int {
	n := 0
	for _, a := range args {
		if t, ok := a.(parser.TagArg); ok {
			for _, name := range names {
				if strings.EqualFold(t.Value, name) {
					n++
				}
			}
		}
	}
	return n
}

// envelopeTest is RFC 5228 5.4's envelope test, shown to a header test
// as the envelope parts' values, like addressTest.
type envelopeTest struct {
	inner  interp.Test
	fields []string // from, to, auth
	part   string
}

func (t envelopeTest) Check(ctx context.Context, d *interp.RuntimeData) (bool, error) {
	var vals []string
	for _, f := range t.fields {
		var v string
		switch f {
		case "from":
			v = d.Envelope.EnvelopeFrom()
		case "to":
			v = d.Envelope.EnvelopeTo()
		case "auth":
			v = d.Envelope.AuthUsername()
		}
		a := address{local: v}
		if f != "auth" {
			if i := strings.LastIndexByte(v, '@'); i >= 0 {
				a = address{local: v[:i], domain: v[i+1:]}
			}
		}
		if v == "" {
			vals = append(vals, "") // the null sender matches ""
			continue
		}
		if p, ok := a.part(t.part); ok {
			vals = append(vals, p)
		}
	}
	orig, edits := d.Msg, d.HeaderEdits
	d.Msg, d.HeaderEdits = valuesView{Message: orig, name: addrField, values: vals}, nil
	defer func() { d.Msg, d.HeaderEdits = orig, edits }()
	return t.inner.Check(ctx, d)
}

// loadEnvelope turns an envelope test with constant parts into an
// envelopeTest; others go to go-sieve.
func (l *loader) loadEnvelope(pt parser.Test) (interp.Test, error) {
	if !l.lib.RequiresExtension("envelope") {
		return l.libTest(pt) // go-sieve reports the missing require
	}
	part, rest, pos, err := l.addressArgs(pt)
	if err != nil {
		return nil, err
	}
	if len(pos) != 2 {
		return nil, errAt(pt.Position, "envelope takes an envelope-part list and a key list")
	}
	fields, ok := stringList(pos[0])
	if !ok {
		return nil, errAt(pt.Position, "envelope takes an envelope-part list and a key list")
	}
	for i, f := range fields {
		f = strings.ToLower(f)
		if f != "from" && f != "to" && f != "auth" {
			if strings.Contains(f, "${") {
				return l.libTest(pt)
			}
			return nil, errAt(pt.Position, "unknown envelope part %q", fields[i])
		}
		fields[i] = f
	}
	hp := parser.Test{Position: pt.Position, Id: "header",
		Args: append(rest, parser.StringListArg{Value: []string{addrField}, Position: pt.Position}, pos[1])}
	inner, err := l.headerTest(hp)
	if err != nil {
		return nil, err
	}
	return envelopeTest{inner: inner, fields: fields, part: part}, nil
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
