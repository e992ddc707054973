package msgauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
)

// DKIM verification (RFC 6376 6.1) of every signature of a message, with
// the same checks and the same outcomes as go-msgauth's dkim.Verify, but:
// the header is parsed once (by readHeader, shared with From and DMARC),
// the body is read once and hashed once per canonicalization whatever
// the number of signatures (no goroutine and pipe per signature), the
// b= value is removed without a regular expression, and the public key
// parsed from a key record is cached by the record's text (keycache.go),
// with its RSA modulus made ready (rsapub.go), so only the RSA operation
// itself is paid per message.

// dkimError is a verification failure of one signature; result is the
// RFC 8601 word (permerror, temperror or fail).
type dkimError struct {
	result string
	msg    string
}

func (e *dkimError) Error() string { return e.msg }

func permFail(msg string) *dkimError { return &dkimError{PermError, msg} }

// dkimSig is one DKIM-Signature field as parsed.
type dkimSig struct {
	field      string // the raw field, CRLF line ends, for the header hash
	domain     string
	identifier string
	selector   string
	keyAlgo    string // "rsa" or "ed25519"
	headerKeys []string
	relaxedH   bool
	relaxedB   bool
	bodyHash   []byte
	sig        []byte
	key        *dkimKey
	err        *dkimError
}

var dkimRequiredTags = [...]string{"v", "a", "b", "bh", "d", "h", "s"}

// parseTags parses a tag-list (RFC 6376 3.2) as go-msgauth does: tags
// separated by ";", values trimmed, a duplicate tag is an error.
func parseTags(s string) (tagList, error) {
	params := make(tagList, 0, 12)
	var seen map[string]bool // for a long list, where a scan per tag would be quadratic
	for len(s) > 0 {
		var part string
		if i := strings.IndexByte(s, ';'); i >= 0 {
			part, s = s[:i], s[i+1:]
		} else {
			part, s = s, ""
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if strings.TrimSpace(part) == "" {
				continue
			}
			return nil, errors.New("malformed header params")
		}
		k = strings.TrimSpace(k)
		dup := false
		switch {
		case seen != nil:
			dup = seen[k]
		case len(params) < maxScannedTags:
			_, dup = params.lookup(k)
		default:
			seen = make(map[string]bool, 2*len(params))
			for _, t := range params {
				seen[t.name] = true
			}
			dup = seen[k]
		}
		if dup {
			return nil, errors.New("duplicate tag name")
		}
		if seen != nil {
			seen[k] = true
		}
		params = append(params, tag{k, strings.TrimSpace(v)})
	}
	return params, nil
}

// maxScannedTags is how many tags parseTags checks for duplicates by a
// scan; past it, with a set.
const maxScannedTags = 32

// tagList is a parsed tag-list in its order. A signature or key record
// has about a dozen tags: a scan finds one faster than a map is built.
type tagList []tag

type tag struct{ name, value string }

// lookup returns the value of the tag called name, if there is one.
func (l tagList) lookup(name string) (string, bool) {
	for _, t := range l {
		if t.name == name {
			return t.value, true
		}
	}
	return "", false
}

// get returns the value of the tag called name, or "".
func (l tagList) get(name string) string {
	v, _ := l.lookup(name)
	return v
}

// stripWSP removes all white space (FWS in base64 and tag values).
func stripWSP(s string) string {
	i := 0
	for i < len(s) && !isWSP(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if !isWSP(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isWSP(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\v', '\f':
		return true
	}
	return false
}

func splitTagList(s string) []string {
	l := strings.Split(s, ":")
	for i := range l {
		l[i] = stripWSP(l[i])
	}
	return l
}

// parseSig checks a signature's tags (RFC 6376 3.5, 6.1.1). sig.err is
// set when the signature cannot be verified.
func parseSig(field, value string) *dkimSig {
	s := &dkimSig{field: field}
	p, err := parseTags(value)
	if err != nil {
		s.err = permFail("malformed signature tags: " + err.Error())
		return s
	}
	if p.get("v") != "1" {
		s.err = permFail("incompatible signature version")
		return s
	}
	s.domain = stripWSP(p.get("d"))
	for _, t := range dkimRequiredTags {
		if _, ok := p.lookup(t); !ok {
			s.err = permFail("signature missing required tag")
			return s
		}
	}
	if i, ok := p.lookup("i"); ok {
		s.identifier = stripWSP(i)
		// 3.5 i=: the same domain as d= or a subdomain of it.
		li, ld := strings.ToLower(s.identifier), strings.ToLower(s.domain)
		if !strings.HasSuffix(li, "@"+ld) && !strings.HasSuffix(li, "."+ld) {
			s.err = permFail("domain mismatch")
			return s
		}
	} else {
		s.identifier = "@" + s.domain
	}
	s.headerKeys = splitTagList(p.get("h"))
	fromSigned := false
	for _, k := range s.headerKeys {
		if strings.EqualFold(k, "from") {
			fromSigned = true
			break
		}
	}
	if !fromSigned {
		s.err = permFail("From field not signed")
		return s
	}
	if t, ok := p.lookup("t"); ok {
		if _, err := strconv.ParseInt(stripWSP(t), 10, 64); err != nil {
			s.err = permFail("malformed time: " + err.Error())
			return s
		}
	}
	if x, ok := p.lookup("x"); ok {
		sec, err := strconv.ParseInt(stripWSP(x), 10, 64)
		if err != nil {
			s.err = permFail("malformed expiration time: " + err.Error())
			return s
		}
		if time.Now().After(time.Unix(sec, 0)) {
			s.err = permFail("signature has expired")
			return s
		}
	}
	if q, ok := p.lookup("q"); ok {
		dnsTXT := false
		for _, m := range splitTagList(q) {
			if m == "dns/txt" {
				dnsTXT = true
				break
			}
		}
		if !dnsTXT {
			s.err = permFail("unsupported public key query method")
			return s
		}
	}
	s.selector = stripWSP(p.get("s"))
	keyAlgo, hashAlgo, ok := strings.Cut(stripWSP(p.get("a")), "-")
	if !ok {
		s.err = permFail("malformed algorithm name")
		return s
	}
	s.keyAlgo = keyAlgo
	switch hashAlgo {
	case "sha256":
	case "sha1":
		// RFC 8301 3.1: rsa-sha1 MUST NOT be used for verifying.
		s.err = permFail("hash algorithm too weak: sha1")
		return s
	default:
		s.err = permFail("unsupported hash algorithm")
		return s
	}
	hc, bc, _ := strings.Cut(stripWSP(p.get("c")), "/")
	switch hc {
	case "", "simple":
	case "relaxed":
		s.relaxedH = true
	default:
		s.err = permFail("unsupported header canonicalization algorithm")
		return s
	}
	switch bc {
	case "", "simple":
	case "relaxed":
		s.relaxedB = true
	default:
		s.err = permFail("unsupported body canonicalization algorithm")
		return s
	}
	if _, ok := p.lookup("l"); ok {
		// The body length tag leaves part of the body unsigned: refused,
		// as go-msgauth does.
		s.err = &dkimError{Fail, "message contains an insecure body length tag"}
		return s
	}
	if s.bodyHash, err = base64.StdEncoding.DecodeString(stripWSP(p.get("bh"))); err != nil {
		s.err = permFail("malformed body hash: " + err.Error())
		return s
	}
	if s.sig, err = base64.StdEncoding.DecodeString(stripWSP(p.get("b"))); err != nil {
		s.err = permFail("malformed signature: " + err.Error())
		return s
	}
	return s
}

// lookupKey fetches and checks the signature's public key (RFC 6376 6.1.2).
func (v *Verifier) lookupKey(ctx context.Context, res dnsAdapter, s *dkimSig) {
	name := s.selector + "._domainkey." + s.domain
	txts, err := res.LookupTXT(ctx, name)
	switch {
	case err != nil && !dnsres.IsNotFound(err):
		s.err = &dkimError{TempError, "key unavailable: " + err.Error()}
		return
	case err != nil:
		s.err = permFail("no key for signature: " + err.Error())
		return
	case len(txts) == 0:
		s.err = permFail("no valid key found")
		return
	case len(txts) > 1:
		// 3.6.2.2: several records give undefined results.
		s.err = permFail("multiple TXT records found for key")
		return
	}
	k, kerr := v.keys.get(txts[0])
	if kerr != nil {
		s.err = kerr
		return
	}
	if k.hashAlgos != nil && !containsString(k.hashAlgos, "sha256") {
		s.err = permFail("inappropriate hash algorithm")
		return
	}
	if k.keyAlgo != s.keyAlgo {
		s.err = permFail("inappropriate key algorithm")
		return
	}
	if k.services != nil && !containsString(k.services, "email") {
		s.err = permFail("inappropriate service")
		return
	}
	s.key = k
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// checkDKIM verifies every DKIM-Signature of the header h (up to
// MaxSignatures); body is the rest of the message.
func (v *Verifier) checkDKIM(ctx context.Context, res dnsAdapter, h *header, body *bufio.Reader) ([]DKIMOutcome, error) {
	fields := rawFields(h.text)
	var sigs []*dkimSig
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		if !strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			continue
		}
		if len(sigs) == v.o.MaxSignatures {
			break // RFC 6376 6.1: the rest are ignored
		}
		sigs = append(sigs, parseSig(f, strings.TrimSpace(value)))
	}
	if len(sigs) == 0 {
		return nil, nil
	}
	var needSimple, needRelaxed bool
	for _, s := range sigs {
		if s.err == nil {
			v.lookupKey(ctx, res, s)
		}
		if s.err == nil {
			needSimple = needSimple || !s.relaxedB
			needRelaxed = needRelaxed || s.relaxedB
		}
	}
	var simpleSum, relaxedSum []byte
	if needSimple || needRelaxed {
		var err error
		if simpleSum, relaxedSum, err = bodyHashes(body, needSimple, needRelaxed); err != nil {
			return nil, err
		}
	}
	out := make([]DKIMOutcome, 0, len(sigs))
	hbp := fieldPool.Get().(*[]byte) // the canonical header, hashed and let go
	hb := (*hbp)[:0]
	defer func() {
		if cap(hb) <= fieldPoolMax {
			*hbp = hb[:0]
			fieldPool.Put(hbp)
		}
	}()
	for _, s := range sigs {
		if s.err == nil {
			sum := simpleSum
			if s.relaxedB {
				sum = relaxedSum
			}
			if subtle.ConstantTimeCompare(sum, s.bodyHash) != 1 {
				s.err = &dkimError{Fail, "body hash did not verify"}
			} else {
				hb = s.verifyHeader(fields, hb[:0])
			}
		}
		o := DKIMOutcome{Outcome: Outcome{Domain: strings.ToLower(s.domain), Result: Pass}, Identifier: s.identifier}
		if s.err != nil {
			o.Result, o.Reason = s.err.result, s.err.msg
		}
		out = append(out, o)
	}
	return out, nil
}

// verifyHeader computes the header hash (RFC 6376 3.7) and checks the
// signature; buf is scratch space, returned for reuse.
func (s *dkimSig) verifyHeader(fields []string, buf []byte) []byte {
	// 5.4.2: each name in h= takes the last instance not yet used,
	// counting from the bottom; a missing one contributes nothing.
	used := make(map[string]int, len(s.headerKeys))
	for _, k := range s.headerKeys {
		lk := strings.ToLower(k)
		skip := used[lk]
		for i := len(fields) - 1; i >= 0; i-- {
			name, _, _ := strings.Cut(fields[i], ":")
			if !strings.EqualFold(strings.TrimSpace(name), lk) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			used[lk]++
			buf = canonHeader(buf, fields[i], s.relaxedH)
			break
		}
	}
	// The signature field itself, its b= value empty, without the final CRLF.
	buf = canonHeader(buf, withoutB(s.field), s.relaxedH)
	buf = bytes.TrimRight(buf, "\r\n")
	sum := sha256.Sum256(buf)
	switch s.key.keyAlgo {
	case "rsa":
		if err := s.key.rsa.verifySHA256(sum[:], s.sig); err != nil {
			s.err = &dkimError{Fail, "signature did not verify: " + err.Error()}
		}
	case "ed25519":
		if !ed25519.Verify(s.key.ed25519, sum[:], s.sig) {
			s.err = &dkimError{Fail, "signature did not verify: invalid Ed25519 signature"}
		}
	}
	return buf
}

// canonHeader appends a header field canonicalized (RFC 6376 3.4.1, 3.4.2).
func canonHeader(buf []byte, f string, relaxed bool) []byte {
	if !relaxed {
		return append(buf, f...)
	}
	k, v, ok := strings.Cut(f, ":")
	if !ok {
		buf = appendLower(buf, strings.TrimSpace(k))
		return append(buf, ":\r\n"...)
	}
	buf = appendLower(buf, strings.TrimSpace(k))
	buf = append(buf, ':')
	// Unfold, reduce WSP runs to one SP, no WSP at either end.
	sp := false
	started := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '\t', '\r', '\n':
			sp = started
		default:
			if sp {
				buf = append(buf, ' ')
				sp = false
			}
			buf = append(buf, c)
			started = true
		}
	}
	return append(buf, "\r\n"...)
}

func appendLower(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

// withoutB returns a DKIM-Signature field with the value of its b= tag
// (and the white space around it) removed (RFC 6376 3.7).
func withoutB(f string) string {
	colon := strings.IndexByte(f, ':')
	if colon < 0 {
		return f
	}
	for start := colon + 1; start < len(f); {
		end := strings.IndexByte(f[start:], ';')
		if end < 0 {
			end = len(f)
		} else {
			end += start
		}
		eq := strings.IndexByte(f[start:end], '=')
		if eq >= 0 && strings.TrimSpace(f[start:start+eq]) == "b" {
			// Keep the final CRLF when b= is the last tag.
			tail := f[end:]
			if end == len(f) {
				tail = f[start+eq+1+len(strings.TrimRight(f[start+eq+1:], "\r\n")):]
			}
			return f[:start+eq+1] + tail
		}
		start = end + 1
	}
	return f
}

// rawFields splits a header block into its fields as DKIM sees them:
// each with its continuation lines and CRLF line ends (a bare LF counts
// as a line end), without the blank line that ends the header.
func rawFields(s string) []string {
	if strings.Contains(s, "\n") && strings.Count(s, "\n") != strings.Count(s, "\r\n") {
		var b strings.Builder
		for line := range strings.Lines(s) {
			b.WriteString(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
			if strings.HasSuffix(line, "\n") {
				b.WriteString("\r\n")
			}
		}
		s = b.String()
	}
	var fields []string
	start, pos := -1, 0 // start: where the current field begins
	for pos < len(s) {
		end := len(s)
		if i := strings.Index(s[pos:], "\r\n"); i >= 0 {
			end = pos + i + 2
		}
		line := s[pos:end]
		if line == "\r\n" {
			break // the blank line
		}
		switch {
		case start < 0:
			start = pos
		case line[0] != ' ' && line[0] != '\t':
			fields = append(fields, s[start:pos])
			start = pos
		}
		pos = end
	}
	if start >= 0 {
		f := s[start:pos]
		if !strings.HasSuffix(f, "\r\n") {
			f += "\r\n" // a header without a final line end
		}
		fields = append(fields, f)
	}
	return fields
}

// bodyHashes reads the body once and returns its SHA-256 in the simple
// and relaxed canonicalizations asked for (RFC 6376 3.4.3, 3.4.4).
func bodyHashes(r io.Reader, simple, relaxed bool) (simpleSum, relaxedSum []byte, err error) {
	// The 20 KB of buffers come from a pool: allocated per message they
	// were a third of what a verification allocates.
	sb := scratchPool.Get().(*hashScratch)
	defer scratchPool.Put(sb)
	var cs []*bodyCanon
	var sc, rc *bodyCanon
	if simple {
		sc = &bodyCanon{h: sha256.New(), out: sb.simple[:0]}
		cs = append(cs, sc)
	}
	if relaxed {
		rc = &bodyCanon{h: sha256.New(), relaxed: true, out: sb.relaxed[:0]}
		cs = append(cs, rc)
	}
	buf := sb.read[:]
	for {
		n, rerr := r.Read(buf)
		for _, c := range cs {
			c.write(buf[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, nil, rerr
		}
	}
	if sc != nil {
		simpleSum = sc.sum()
	}
	if rc != nil {
		relaxedSum = rc.sum()
	}
	return simpleSum, relaxedSum, nil
}

// hashScratch is bodyHashes' buffers: the read buffer and each
// canonicalization's output (flushed to the hash at 2 KB, so a 4 KB read
// never grows it past 8 KB).
type hashScratch struct {
	read            [4096]byte
	simple, relaxed [8192]byte
}

var scratchPool = sync.Pool{New: func() any { return new(hashScratch) }}

// bodyCanon canonicalizes a body into a hash, byte for byte as
// go-msgauth does: a bare LF becomes CRLF; simple drops the CRLFs at the
// end (and adds one), relaxed also reduces white space runs to one SP
// and drops white space at line ends.
type bodyCanon struct {
	h       hash.Hash
	relaxed bool
	out     []byte
	cr      bool // the previous input byte was CR (bare LF detection)
	// simple: held-back CRLF pairs at the end, and a last lone CR.
	pairs  int
	lastCR bool
	// relaxed: held-back CR and LF bytes, pending white space.
	hold    []byte
	wsp     bool
	written bool
}

func (c *bodyCanon) write(p []byte) {
	for len(p) > 0 {
		// Runs of ordinary bytes are copied as they are; only CR, LF
		// (and white space in relaxed) go byte by byte.
		var i int
		if c.relaxed {
			i = indexRelaxed(p)
		} else {
			// In simple, a CR is ordinary unless an LF follows it.
			if i = bytes.IndexByte(p, '\n'); i < 0 {
				i = len(p)
			}
			if i > 0 && p[i-1] == '\r' {
				i--
			}
		}
		if i > 0 {
			c.run(p[:i])
			p = p[i:]
			continue
		}
		b := p[0]
		p = p[1:]
		prevCR := c.cr
		c.cr = b == '\r'
		if b == '\n' && !prevCR {
			c.put('\r')
		}
		c.put(b)
	}
	if len(c.out) >= 2048 {
		c.h.Write(c.out)
		c.out = c.out[:0]
	}
}

// indexRelaxed is the index of the first CR, LF, SP or HTAB in p, or len(p).
func indexRelaxed(p []byte) int {
	for i, b := range p {
		if b <= ' ' && (b == ' ' || b == '\t' || b == '\r' || b == '\n') {
			return i
		}
	}
	return len(p)
}

// run appends bytes that are none of CR, LF and (relaxed) SP or HTAB.
func (c *bodyCanon) run(p []byte) {
	c.cr = false
	if c.relaxed {
		if len(c.hold) > 0 {
			c.out = append(c.out, c.hold...)
			c.hold = c.hold[:0]
		}
		if c.wsp {
			c.out = append(c.out, ' ')
			c.wsp = false
		}
		c.written = true
	} else if c.pairs > 0 || c.lastCR {
		c.flushSimple()
	}
	c.out = append(c.out, p...)
}

func (c *bodyCanon) put(b byte) {
	if c.relaxed {
		switch b {
		case ' ', '\t':
			c.wsp = true
		case '\r', '\n':
			c.wsp = false
			c.hold = append(c.hold, b)
		default:
			if len(c.hold) > 0 {
				c.out = append(c.out, c.hold...)
				c.hold = c.hold[:0]
			}
			if c.wsp {
				c.out = append(c.out, ' ')
				c.wsp = false
			}
			c.out = append(c.out, b)
			c.written = true
		}
		return
	}
	switch {
	case b == '\r':
		if c.lastCR {
			c.flushSimple()
		}
		c.lastCR = true
	case b == '\n' && c.lastCR:
		c.lastCR = false
		c.pairs++
	default:
		c.flushSimple()
		c.out = append(c.out, b)
	}
}

func (c *bodyCanon) flushSimple() {
	for ; c.pairs > 0; c.pairs-- {
		c.out = append(c.out, '\r', '\n')
	}
	if c.lastCR {
		c.out = append(c.out, '\r')
		c.lastCR = false
	}
}

func (c *bodyCanon) sum() []byte {
	if c.relaxed {
		if c.written {
			c.out = append(c.out, '\r', '\n')
		}
	} else {
		if c.lastCR {
			c.flushSimple()
		}
		c.out = append(c.out, '\r', '\n')
	}
	c.h.Write(c.out)
	return c.h.Sum(nil)
}
