package msgauth

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/dnsres"
)

// DKIM key cache settings. The key record is still looked up for every
// signature (through dnsres's TXT cache, so a changed or revoked record
// counts within dnsres.TXTCacheTTL); what is cached is the parse of the
// record's text: base64, the ASN.1 of the key and its checks. An entry
// is found only by the exact text of the record, so a cached key can
// never outlive its record; the TTL and the bound only limit memory.
const (
	// DefaultKeyCacheSize bounds the parsed keys kept.
	DefaultKeyCacheSize = 1024
	// KeyCacheTTL is how long a parsed key is kept after it was parsed.
	KeyCacheTTL = dnsres.TXTCacheTTL
)

// dkimKey is a parsed DKIM key record (RFC 6376 3.6.1).
type dkimKey struct {
	keyAlgo   string     // "rsa" or "ed25519"
	rsa       *rsaPublic // its modulus built once (rsapub.go)
	ed25519   ed25519.PublicKey
	hashAlgos []string // h=; nil: any
	services  []string // s=; nil: any ("*")
}

// keyCache maps a key record's text to its parse (the key or the
// permanent error), up to max entries, each for ttl.
type keyCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	now     func() time.Time
	entries map[string]keyEntry
}

type keyEntry struct {
	key     *dkimKey
	err     *dkimError
	expires time.Time
}

func newKeyCache(max int, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{max: max, ttl: ttl, now: now, entries: map[string]keyEntry{}}
}

// get returns the parsed key of a record text, parsing it on a miss.
func (c *keyCache) get(txt string) (*dkimKey, *dkimError) {
	c.mu.Lock()
	e, ok := c.entries[txt]
	t := c.now()
	c.mu.Unlock()
	if ok && t.Before(e.expires) {
		return e.key, e.err
	}
	k, err := parseKeyRecord(txt)
	if c.max <= 0 || c.ttl <= 0 {
		return k, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[txt]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !t.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		// Still full: drop arbitrary entries (map order is random).
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[txt] = keyEntry{key: k, err: err, expires: t.Add(c.ttl)}
	return k, err
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// parseKeyRecord parses a key record as go-msgauth does (same checks and
// messages): v=DKIM1, p= (empty: revoked), k=rsa (SubjectPublicKeyInfo
// or RSAPublicKey, RFC 6376 erratum 3017; at least 1024 bits, RFC 8301
// 3.2) or k=ed25519 (RFC 8463), h=, s=.
func parseKeyRecord(s string) (*dkimKey, *dkimError) {
	params, err := parseTags(s)
	if err != nil {
		return nil, permFail("key record error: " + err.Error())
	}
	if v, ok := params.lookup("v"); ok && v != "DKIM1" {
		return nil, permFail("incompatible public key version")
	}
	p, ok := params.lookup("p")
	if !ok {
		return nil, permFail("key syntax error: missing public key data")
	}
	if p == "" {
		return nil, permFail("key revoked")
	}
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(p, " ", ""))
	if err != nil {
		return nil, permFail("key syntax error: " + err.Error())
	}
	k := &dkimKey{}
	switch params.get("k") {
	case "rsa", "":
		pub, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			if pub, err = x509.ParsePKCS1PublicKey(b); err != nil {
				return nil, permFail("key syntax error: " + err.Error())
			}
		}
		rp, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, permFail("key syntax error: not an RSA public key")
		}
		if rp.Size()*8 < 1024 {
			return nil, permFail(fmt.Sprintf("key is too short: want 1024 bits, has %v bits", rp.Size()*8))
		}
		k.keyAlgo, k.rsa = "rsa", newRSAPublic(rp)
	case "ed25519":
		if len(b) != ed25519.PublicKeySize {
			return nil, permFail(fmt.Sprintf("invalid Ed25519 public key size: %v bytes", len(b)))
		}
		k.keyAlgo, k.ed25519 = "ed25519", ed25519.PublicKey(b)
	default:
		return nil, permFail("unsupported key algorithm")
	}
	if h, ok := params.lookup("h"); ok {
		k.hashAlgos = splitTagList(h)
	}
	if sv, ok := params.lookup("s"); ok {
		if l := splitTagList(sv); !containsString(l, "*") {
			k.services = l
		}
	}
	return k, nil
}
