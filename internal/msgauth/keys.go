// Package msgauth holds message authentication: DKIM keys in Mailu's layout,
// DKIM signing of outgoing mail, and the DNS records an admin publishes
// (MX, SPF, DKIM, DMARC, RFC 6186 SRV).
package msgauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/net/idna"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

const (
	// DefaultSelector is Mailu's DKIM_SELECTOR default.
	DefaultSelector = "dkim"
	// keyBits is the size Mailu generates (dkim.py gen_key).
	keyBits = 2048
	// minKeyBits: RFC 8301 3.2, verifiers must not accept smaller RSA keys,
	// so signing with one is pointless.
	minKeyBits = 1024
	// maxKeyFile bounds what Load reads; a 4096-bit PEM key is about 3.3 KB.
	maxKeyFile = 64 << 10
)

var (
	// ErrNoKey: the domain has no DKIM key file.
	ErrNoKey = errors.New("no DKIM key")
	// ErrBadKey: the key file is not an RSA private key in PEM.
	ErrBadKey = errors.New("invalid DKIM key")
)

// Keys manages DKIM private keys as Mailu stores them: one PEM file per
// domain at DKIM_PATH, by default <dir>/<domain>.<selector>.key
// (Mailu: configuration.py DKIM_PATH "/dkim/{domain}.{selector}.key").
// Parsed keys are cached and re-read when the file is replaced.
type Keys struct {
	template string // path with {domain} and {selector}
	selector string

	mu    sync.Mutex
	cache map[string]cachedKey // by file path
}

type cachedKey struct {
	fi     fs.FileInfo
	signer crypto.Signer
}

// NewKeys returns Keys for files <dir>/<domain>.<selector>.key. An empty
// selector means DefaultSelector.
func NewKeys(dir, selector string) *Keys {
	return NewKeysPath(filepath.Join(dir, "{domain}.{selector}.key"), selector)
}

// NewKeysPath returns Keys for a DKIM_PATH template with {domain} and
// {selector} placeholders. An empty selector means DefaultSelector.
func NewKeysPath(template, selector string) *Keys {
	if selector == "" {
		selector = DefaultSelector
	}
	return &Keys{template: template, selector: selector, cache: map[string]cachedKey{}}
}

// Selector returns the DKIM selector (s= tag, DNS label).
func (k *Keys) Selector() string { return k.selector }

// Path returns the key file of domain (IDNA A-label, lower case).
func (k *Keys) Path(domain string) (string, error) {
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("dkim key path: %w", err)
	}
	return k.path(d), nil
}

func (k *Keys) path(asciiDomain string) string {
	return strings.NewReplacer("{domain}", asciiDomain, "{selector}", k.selector).Replace(k.template)
}

// candidates lists the files a domain's key may be in: Petrel writes the
// A-label name; Mailu names the file after the decoded domain
// (models.py::IdnaDomain returns U-labels), so a copied Mailu key for an
// internationalised domain has the Unicode name.
func (k *Keys) candidates(domain string) ([]string, error) {
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("dkim key path: %w", err)
	}
	paths := []string{k.path(d)}
	if u, err := idna.ToUnicode(d); err == nil && u != d {
		paths = append(paths, k.path(u))
	}
	return paths, nil
}

// Exists reports whether domain has a key file.
func (k *Keys) Exists(domain string) bool {
	paths, err := k.candidates(domain)
	if err != nil {
		return false
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// Generate creates a new RSA-2048 key for domain in PKCS#8 PEM, as Mailu's
// dkim.py gen_key does, and writes it atomically with mode 0600. An existing
// key is replaced (Mailu "Regenerate keys").
func (k *Keys) Generate(domain string) error {
	if _, err := k.Path(domain); err != nil {
		return err // before the costly key generation
	}
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return fmt.Errorf("generate dkim key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("generate dkim key: %w", err)
	}
	return k.write(domain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// Store writes a given PEM key (PKCS#8 or PKCS#1 RSA) as domain's key after
// checking that it parses. It is written as given, atomically, mode 0600.
func (k *Keys) Store(domain string, pemKey []byte) error {
	if _, err := ParsePrivateKey(pemKey); err != nil {
		return err
	}
	return k.write(domain, pemKey)
}

// Remove deletes domain's key file(s). A missing file is not an error.
func (k *Keys) Remove(domain string) error {
	paths, err := k.candidates(domain)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove dkim key: %w", err)
		}
	}
	return nil
}

// write stores data at domain's path: temp file, fsync, rename, fsync dir,
// so a crash leaves the old key or the new one, never half a key.
func (k *Keys) write(domain string, data []byte) error {
	p, err := k.Path(domain)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load returns domain's private key. Keys are cached and re-read when the
// file changes (a regenerated key is a new file). It returns an error
// wrapping ErrNoKey when there is no file and ErrBadKey when it does not parse.
func (k *Keys) Load(domain string) (crypto.Signer, error) {
	paths, err := k.candidates(domain)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		s, err := k.loadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return s, err
	}
	return nil, fmt.Errorf("%w for %s", ErrNoKey, domain)
}

func (k *Keys) loadFile(p string) (crypto.Signer, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Stat the open file, not the path: what we compare is what we read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load dkim key: %w", err)
	}
	k.mu.Lock()
	c, ok := k.cache[p]
	k.mu.Unlock()
	if ok && sameFile(c.fi, fi) {
		return c.signer, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load dkim key: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s: file too large", ErrBadKey, p)
	}
	s, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	k.mu.Lock()
	k.cache[p] = cachedKey{fi: fi, signer: s}
	k.mu.Unlock()
	return s, nil
}

// sameFile: same inode, size and modification time. A rename-replaced key
// has a new inode; an in-place rewrite changes the time or size.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// PublicKeyRecord returns the DKIM TXT record for domain's key:
// "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" (RFC 6376 3.6.1;
// Mailu: dkim.py strip_key, models.py Domain.dns_dkim).
func (k *Keys) PublicKeyRecord(domain string) (string, error) {
	s, err := k.Load(domain)
	if err != nil {
		return "", err
	}
	return PublicKeyRecord(s.Public())
}

// PublicKeyRecord formats the DKIM TXT record of an RSA public key.
func PublicKeyRecord(pub crypto.PublicKey) (string, error) {
	if _, ok := pub.(*rsa.PublicKey); !ok {
		return "", fmt.Errorf("%w: %T is not an RSA key", ErrBadKey, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("dkim public key: %w", err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
}

// ParsePrivateKey parses the first PEM block of data as an RSA private key:
// "PRIVATE KEY" (PKCS#8, what Mailu writes) or "RSA PRIVATE KEY" (PKCS#1,
// what older tools such as opendkim-genkey write). Errors wrap ErrBadKey.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM type %q", ErrBadKey, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not an RSA key", ErrBadKey, key)
	}
	if rk.N.BitLen() < minKeyBits {
		return nil, fmt.Errorf("%w: %d-bit RSA key is too small", ErrBadKey, rk.N.BitLen())
	}
	return rk, nil
}
