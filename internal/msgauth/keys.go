// Package msgauth holds message authentication: DKIM keys in Mailu's layout,
// DKIM signing of outgoing mail, and the DNS records an admin publishes
// (MX, SPF, DKIM, DMARC, RFC 6186 SRV).
package msgauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/secret"
	"github.com/petrelmail/petrel/internal/store"
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
	// SealPurpose is what DKIM keys are sealed for (secret.NewSealer).
	SealPurpose = "dkim-key"
)

var (
	// ErrNoKey: the domain has no DKIM key.
	ErrNoKey = errors.New("no DKIM key")
	// ErrBadKey: the key is not an RSA private key in PEM, or cannot be
	// unsealed.
	ErrBadKey = errors.New("invalid DKIM key")
)

// KeysOptions configures Keys.
type KeysOptions struct {
	// Store keeps the keys; nil keeps them as files at Path only.
	Store store.DKIMKeys
	// Sealer seals keys for Store (secret.NewSealer(SECRET_KEY,
	// SealPurpose)); required with Store.
	Sealer *secret.Sealer
	// Path is DKIM_PATH, a template with {domain} and {selector}: Mailu's
	// layout. With Store, a key found there that the store lacks is
	// imported, and with ExportFiles every key written to the store is
	// written there too. "" = no files.
	Path        string
	ExportFiles bool
	// Selector is DKIM_SELECTOR; "" = DefaultSelector.
	Selector string
	Logger   *slog.Logger
}

// Keys manages DKIM private keys. With a store (what serve and the CLI
// use) the store holds them, sealed, so that every node sharing one
// database signs with the same key, and DKIM_PATH files are the import
// and export format. Without one they are Mailu's files: one PEM file per
// domain at DKIM_PATH (Mailu: configuration.py DKIM_PATH
// "/dkim/{domain}.{selector}.key"). Parsed keys are cached and re-read
// when the stored version or the file changes.
type Keys struct {
	db       store.DKIMKeys
	sealer   *secret.Sealer
	files    *keyFiles // nil without a path
	export   bool
	selector string
	log      *slog.Logger

	mu    sync.Mutex
	cache map[string]storedKey // by domain (A-label), store mode only
}

type storedKey struct {
	version int64
	signer  crypto.Signer
}

// NewKeys returns file-only Keys for <dir>/<domain>.<selector>.key. An
// empty selector means DefaultSelector.
func NewKeys(dir, selector string) *Keys {
	return NewKeysPath(filepath.Join(dir, "{domain}.{selector}.key"), selector)
}

// NewKeysPath returns file-only Keys for a DKIM_PATH template with
// {domain} and {selector} placeholders.
func NewKeysPath(template, selector string) *Keys {
	k, _ := NewStoreKeys(KeysOptions{Path: template, Selector: selector})
	return k
}

// NewStoreKeys returns Keys as o describes.
func NewStoreKeys(o KeysOptions) (*Keys, error) {
	if o.Store != nil && o.Sealer == nil {
		return nil, errors.New("msgauth: DKIM keys in the store need a sealer")
	}
	if o.Selector == "" {
		o.Selector = DefaultSelector
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Keys{db: o.Store, sealer: o.Sealer, export: o.ExportFiles, selector: o.Selector, log: o.Logger,
		cache: map[string]storedKey{}}
	if o.Path != "" {
		k.files = &keyFiles{template: o.Path, selector: o.Selector, cache: map[string]cachedFile{}}
	}
	return k, nil
}

// Selector returns the DKIM selector (s= tag, DNS label).
func (k *Keys) Selector() string { return k.selector }

// Path returns the key file of domain (IDNA A-label, lower case); "" when
// there is no DKIM_PATH.
func (k *Keys) Path(domain string) (string, error) {
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("dkim key path: %w", err)
	}
	if k.files == nil {
		return "", nil
	}
	return k.files.path(d), nil
}

func normKeyDomain(domain string) (string, error) {
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("dkim key: %w", err)
	}
	return strings.ToLower(d), nil
}

// Exists reports whether domain has a key (in the store, or a file the
// store would import).
func (k *Keys) Exists(ctx context.Context, domain string) (bool, error) {
	d, err := normKeyDomain(domain)
	if err != nil {
		return false, err
	}
	if k.db != nil {
		_, err := k.db.DKIMKeyVersion(ctx, d, k.selector)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
	}
	return k.files != nil && k.files.exists(d), nil
}

// Generate creates a new RSA-2048 key for domain in PKCS#8 PEM, as Mailu's
// dkim.py gen_key does. An existing key is replaced (Mailu "Regenerate
// keys").
func (k *Keys) Generate(ctx context.Context, domain string) error {
	if _, err := normKeyDomain(domain); err != nil {
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
	return k.write(ctx, domain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// Store keeps a given PEM key (PKCS#8 or PKCS#1 RSA) as domain's key
// after checking that it parses, as given.
func (k *Keys) Store(ctx context.Context, domain string, pemKey []byte) error {
	if _, err := ParsePrivateKey(pemKey); err != nil {
		return err
	}
	return k.write(ctx, domain, pemKey)
}

func (k *Keys) write(ctx context.Context, domain string, pemKey []byte) error {
	d, err := normKeyDomain(domain)
	if err != nil {
		return err
	}
	if k.db != nil {
		if err := k.put(ctx, d, pemKey); err != nil {
			return err
		}
		if !k.export || k.files == nil {
			return nil
		}
	}
	if k.files == nil {
		return errors.New("write dkim key: no DKIM_PATH")
	}
	return k.files.write(d, pemKey)
}

func (k *Keys) put(ctx context.Context, d string, pemKey []byte) error {
	sealed, err := k.sealer.Seal(pemKey)
	if err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	if _, err := k.db.PutDKIMKey(ctx, d, k.selector, sealed); err != nil {
		return fmt.Errorf("write dkim key: %w", err)
	}
	return nil
}

// Remove deletes domain's key from the store and its file(s) at DKIM_PATH
// on this machine (else the next start would import it again). A missing
// key is not an error.
func (k *Keys) Remove(ctx context.Context, domain string) error {
	d, err := normKeyDomain(domain)
	if err != nil {
		return err
	}
	if k.db != nil {
		if err := k.db.DeleteDKIMKey(ctx, d, k.selector); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove dkim key: %w", err)
		}
	}
	if k.files != nil {
		return k.files.remove(d)
	}
	return nil
}

// Load returns domain's private key, wrapping ErrNoKey when there is none
// and ErrBadKey when it does not parse or unseal. With a store, one small
// query per call checks the stored version, so a key regenerated on
// another node is used at once; a key the store lacks is imported from
// DKIM_PATH when a file is there.
func (k *Keys) Load(ctx context.Context, domain string) (crypto.Signer, error) {
	d, err := normKeyDomain(domain)
	if err != nil {
		return nil, err
	}
	if k.db == nil {
		if k.files == nil {
			return nil, fmt.Errorf("%w for %s", ErrNoKey, domain)
		}
		return k.files.load(d)
	}
	v, err := k.db.DKIMKeyVersion(ctx, d, k.selector)
	if errors.Is(err, store.ErrNotFound) {
		if err := k.importFile(ctx, d); err != nil {
			return nil, err
		}
		v, err = k.db.DKIMKeyVersion(ctx, d, k.selector)
	}
	if err != nil {
		return nil, fmt.Errorf("load dkim key of %s: %w", d, err)
	}
	k.mu.Lock()
	c, ok := k.cache[d]
	k.mu.Unlock()
	if ok && c.version == v {
		return c.signer, nil
	}
	pemKey, version, err := k.readStored(ctx, d)
	if err != nil {
		return nil, err
	}
	s, err := ParsePrivateKey(pemKey)
	if err != nil {
		return nil, fmt.Errorf("stored key of %s: %w", d, err)
	}
	k.mu.Lock()
	k.cache[d] = storedKey{version: version, signer: s}
	k.mu.Unlock()
	return s, nil
}

func (k *Keys) readStored(ctx context.Context, d string) ([]byte, int64, error) {
	sk, err := k.db.GetDKIMKey(ctx, d, k.selector)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w for %s", ErrNoKey, d)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load dkim key of %s: %w", d, err)
	}
	pemKey, err := k.sealer.Open(sk.Sealed)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: stored key of %s: %w (every node must share SECRET_KEY)", ErrBadKey, d, err)
	}
	return pemKey, sk.Version, nil
}

// PEM returns domain's private key as stored (or as its file holds it),
// for config-export; ErrNoKey when there is none.
func (k *Keys) PEM(ctx context.Context, domain string) ([]byte, error) {
	d, err := normKeyDomain(domain)
	if err != nil {
		return nil, err
	}
	if k.db == nil {
		if k.files == nil {
			return nil, fmt.Errorf("%w for %s", ErrNoKey, d)
		}
		return k.files.readPEM(d)
	}
	if _, err := k.Load(ctx, d); err != nil { // imports a file the store lacks
		return nil, err
	}
	pemKey, _, err := k.readStored(ctx, d)
	return pemKey, err
}

// importFile copies domain's key file into the store, when there is one:
// Mailu's DKIM_PATH stays the import format (a key copied in by hand or
// by import-mailu). The store wins over the file once it has a key.
func (k *Keys) importFile(ctx context.Context, d string) error {
	if k.files == nil {
		return fmt.Errorf("%w for %s", ErrNoKey, d)
	}
	pemKey, err := k.files.readPEM(d)
	if err != nil {
		return err
	}
	if _, err := ParsePrivateKey(pemKey); err != nil {
		return fmt.Errorf("dkim key file of %s: %w", d, err)
	}
	if err := k.put(ctx, d, pemKey); err != nil {
		return err
	}
	k.log.Info("DKIM key imported from DKIM_PATH into the store", "domain", d)
	return nil
}

// ImportFiles imports the key files of domains that the store lacks (at
// start), and returns how many it imported. A domain without a file is
// skipped; errors are collected, so one bad file does not stop the rest.
func (k *Keys) ImportFiles(ctx context.Context, domains []string) (int, error) {
	if k.db == nil || k.files == nil {
		return 0, nil
	}
	n := 0
	var errs []error
	for _, dom := range domains {
		d, err := normKeyDomain(dom)
		if err != nil {
			continue
		}
		_, err = k.db.DKIMKeyVersion(ctx, d, k.selector)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return n, err
		}
		switch err := k.importFile(ctx, d); {
		case err == nil:
			n++
		case errors.Is(err, ErrNoKey):
		default:
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// PublicKeyRecord returns the DKIM TXT record for domain's key:
// "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" (RFC 6376 3.6.1;
// Mailu: dkim.py strip_key, models.py Domain.dns_dkim).
func (k *Keys) PublicKeyRecord(ctx context.Context, domain string) (string, error) {
	s, err := k.Load(ctx, domain)
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
