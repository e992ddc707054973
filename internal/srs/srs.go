// Package srs implements the Sender Rewriting Scheme as Mailu uses it:
// Postfix's sender_canonical_maps rewrite the envelope sender of mail whose
// sender domain is not local to an SRS0 address at DOMAIN, so that a
// forwarded message passes SPF at its destination, and
// recipient_canonical_maps turn a bounce to such an address back into the
// original sender (Mailu: internal/views/postfix.py postfix_sender_map and
// postfix_recipient_map, with the Python library srslib).
//
// The format is srslib's "Guarded" scheme, the one of the original SRS paper
// and of libsrs2 and Mail::SRS:
//
//	SRS0=HHHH=TT=orig-domain=orig-local@DOMAIN
//	SRS1=HHHH=first-hop-domain==HHHH=TT=orig-domain=orig-local@DOMAIN
//
// HHHH is the first 4 characters of the base64 HMAC-SHA1 of the lower-cased
// data, TT the day number modulo 1024 in base32 (A-Z, 2-7). The key is
// HMAC-SHA256(SECRET_KEY, "SRS_KEY"), as Mailu derives it (mailu/__init__.py
// app.srs_key), so addresses Mailu issued still reverse after a move.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

const (
	// hashLength is srslib's and libsrs2's default hash_length.
	hashLength = 4
	// maxAgeDays is srslib's validity_days: an SRS0 address reverses on
	// the day it was made and the 20 days after.
	maxAgeDays = 21
	// tsAlphabet is the base32 alphabet of the timestamp (srslib
	// _TS_ALPHABET; not RFC 4648 base32 of bytes).
	tsAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	day        = 24 * time.Hour
)

// Errors of Reverse and Forward.
var (
	// ErrBadHash: an SRS address whose hash does not match (forged or
	// made with another key).
	ErrBadHash = errors.New("srs: invalid hash")
	// ErrExpired: an SRS0 address older than 21 days (or from the future).
	ErrExpired = errors.New("srs: invalid or expired timestamp")
	// ErrBadAddress: the address has no @, so it cannot be rewritten.
	ErrBadAddress = errors.New("srs: not an address")
)

// Rewriter makes and reverses SRS addresses at one domain. It holds no
// mutable state and is safe for concurrent use.
type Rewriter struct {
	key    []byte
	domain string
	now    func() time.Time
}

// New returns a Rewriter. secret is SECRET_KEY as configured; the SRS key
// is derived from it as Mailu does. domain is DOMAIN, the domain of every
// address Forward makes. now may be nil (time.Now).
func New(secret []byte, domain string, now func() time.Time) *Rewriter {
	if now == nil {
		now = time.Now
	}
	return &Rewriter{key: DeriveKey(secret), domain: domain, now: now}
}

// DeriveKey returns the SRS key Mailu uses: HMAC-SHA256 of "SRS_KEY" with
// SECRET_KEY as the key (Mailu PR #2002; mailu/__init__.py).
func DeriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("SRS_KEY"))
	return m.Sum(nil)
}

// Forward rewrites an envelope sender for mail Petrel sends on (Mailu:
// postfix_sender_map, srslib SRS.forward):
//   - the null sender and senders in a local domain (isLocal; nil: no
//     domain is local) are returned unchanged;
//   - an SRS0 address (we are the second hop) becomes an SRS1 address
//     pointing back at the first hop;
//   - an SRS1 address gets our hash, keeping the first hop;
//   - any other address becomes SRS0=HHHH=TT=domain=local@DOMAIN.
//
// isLocal gets the sender's domain normalised (IDNA A-label, lower case)
// when it can be, as written otherwise.
func (r *Rewriter) Forward(sender string, isLocal func(domain string) bool) (string, error) {
	if sender == "" {
		return "", nil
	}
	local, host, ok := split(sender)
	if !ok {
		return sender, fmt.Errorf("%w: %q", ErrBadAddress, sender)
	}
	if isLocal != nil {
		d := host
		if n, err := mailaddr.NormalizeDomain(host); err == nil {
			d = n
		}
		if isLocal(d) {
			return sender, nil
		}
	}
	if p, ok := parseSRS1(local); ok {
		return r.srs1(p.host, p.opaque), nil
	}
	if opaque, ok := srs0Opaque(local); ok {
		return r.srs1(host, opaque), nil
	}
	ts := timestamp(r.now())
	return "SRS0=" + r.hash(ts, host, local) + "=" + ts + "=" + host + "=" + local + "@" + r.domain, nil
}

// srs1 is srslib generate_srs1_address: the first hop's domain and its
// opaque part (with its leading separator) under our hash.
func (r *Rewriter) srs1(firstHost, opaque string) string {
	return "SRS1=" + r.hash(firstHost, opaque) + "=" + firstHost + "=" + opaque + "@" + r.domain
}

// Reverse turns an SRS address back into the address a bounce goes to
// (Mailu: postfix_recipient_map, srslib SRS.reverse): the original sender
// for SRS0, the first hop's SRS0 address for SRS1. The domain after the @
// is not checked; the caller only asks for addresses in its own domains.
//
// ok is false with a nil error when addr is not an SRS address at all
// (srslib is_srs_address). An SRS address that does not verify returns
// ok false and an error wrapping ErrBadHash or ErrExpired. Hashes compare
// case-insensitively, as libsrs2 and srslib do, since some MTAs change
// the case of local parts.
func (r *Rewriter) Reverse(addr string) (orig string, ok bool, err error) {
	local, _, found := split(addr)
	if !found {
		return "", false, nil
	}
	if p, isSRS1 := parseSRS1(local); isSRS1 {
		if !r.checkHash(p.hash, p.host, p.opaque) {
			return "", false, fmt.Errorf("%w: %q", ErrBadHash, addr)
		}
		return "SRS0" + p.opaque + "@" + p.host, true, nil
	}
	p, isSRS0 := parseSRS0(local)
	if !isSRS0 {
		return "", false, nil
	}
	if !r.checkHash(p.hash, p.ts, p.host, p.local) {
		return "", false, fmt.Errorf("%w: %q", ErrBadHash, addr)
	}
	if !r.checkTimestamp(p.ts) {
		return "", false, fmt.Errorf("%w: %q", ErrExpired, addr)
	}
	return p.local + "@" + p.host, true, nil
}

// hash is srslib generate_hash: base64(HMAC-SHA1(key, lower(concat))),
// cut to hashLength characters.
func (r *Rewriter) hash(parts ...string) string {
	return r.fullHash(parts...)[:hashLength]
}

func (r *Rewriter) fullHash(parts ...string) string {
	m := hmac.New(sha1.New, r.key)
	for _, p := range parts {
		m.Write([]byte(strings.ToLower(p)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// checkHash compares case-insensitively over the hash's own length, as
// srslib check_hash does, but refuses hashes shorter than hashLength
// (Mail::SRS HashMin): srslib would accept a one-character hash, which a
// forger guesses once in 64 tries.
func (r *Rewriter) checkHash(h string, parts ...string) bool {
	want := r.fullHash(parts...)
	if len(h) < hashLength || len(h) > len(want) {
		return false
	}
	return hmac.Equal([]byte(strings.ToLower(h)), []byte(strings.ToLower(want[:len(h)])))
}

// timestamp is srslib generate_ts: the day number, 10 bits, as two
// base32 characters.
func timestamp(t time.Time) string {
	d := t.Unix() / int64(day/time.Second)
	return string([]byte{tsAlphabet[(d>>5)&31], tsAlphabet[d&31]})
}

// checkTimestamp is srslib check_ts: the timestamp must be one of the
// last maxAgeDays days, today included.
func (r *Rewriter) checkTimestamp(ts string) bool {
	ts = strings.ToUpper(ts)
	now := r.now()
	for i := range maxAgeDays {
		if timestamp(now.Add(-time.Duration(i)*day)) == ts {
			return true
		}
	}
	return false
}

// split cuts addr at its last @ (srslib _split_addr).
func split(addr string) (local, host string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

func isSep(c byte) bool { return c == '-' || c == '+' || c == '=' }

// hasTag reports whether local starts with tag (case-insensitive) and a
// separator.
func hasTag(local, tag string) bool {
	return len(local) > len(tag) && strings.EqualFold(local[:len(tag)], tag) && isSep(local[len(tag)])
}

// srs0Opaque matches srslib's _SRS0_OPAQUE: "SRS0" then a separator and
// at least one more character; it returns the part after "SRS0".
func srs0Opaque(local string) (string, bool) {
	if !hasTag(local, "SRS0") || len(local) < 6 {
		return "", false
	}
	return local[4:], true
}

type srs0Parts struct{ hash, ts, host, local string }

// parseSRS0 matches srslib's strict _SRS0:
// SRS0[-+=]([^=]+)=([^=]+)=([^=]+)=(.+), case-insensitive.
func parseSRS0(local string) (srs0Parts, bool) {
	if !hasTag(local, "SRS0") {
		return srs0Parts{}, false
	}
	f := strings.SplitN(local[5:], "=", 4)
	if len(f) != 4 || f[0] == "" || f[1] == "" || f[2] == "" || f[3] == "" {
		return srs0Parts{}, false
	}
	return srs0Parts{hash: f[0], ts: f[1], host: f[2], local: f[3]}, true
}

type srs1Parts struct{ hash, host, opaque string }

// parseSRS1 matches srslib's _SRS1:
// SRS1[-+=]([^=]+)=([^=]+)=([-+=].+), case-insensitive. opaque keeps its
// leading separator.
func parseSRS1(local string) (srs1Parts, bool) {
	if !hasTag(local, "SRS1") {
		return srs1Parts{}, false
	}
	f := strings.SplitN(local[5:], "=", 3)
	if len(f) != 3 || f[0] == "" || f[1] == "" || len(f[2]) < 2 || !isSep(f[2][0]) {
		return srs1Parts{}, false
	}
	return srs1Parts{hash: f[0], host: f[1], opaque: f[2]}, true
}
