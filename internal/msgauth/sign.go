package msgauth

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

// ErrNotLocal: the From domain is neither a local domain nor an alternative,
// so Petrel has no key to sign it with (Mailu/rspamd leaves it unsigned).
var ErrNotLocal = errors.New("not a local domain")

// Unsigned reports whether err only means "send the message unsigned": no
// From address, a foreign From domain, a local domain without a key, or a
// header that a prepended signature would corrupt.
func Unsigned(err error) bool {
	return errors.Is(err, ErrNoFrom) || errors.Is(err, ErrNotLocal) || errors.Is(err, ErrNoKey) ||
		errors.Is(err, ErrBadHeader)
}

type signRule uint8

const (
	signPresent       signRule = iota // each instance present
	oversign                          // n+1 times, also when absent
	oversignIfPresent                 // n+1 times when present
)

type signHeader struct {
	name string
	rule signRule
}

// signHeaders is rspamd's default sign_headers, which Mailu keeps (its
// dkim_signing.conf sets none): the RFC 6376 5.4.1 set, with From, Reply-To,
// Subject, To and Cc oversigned so that none can be added after signing
// (RFC 6376 8.15), and Sender, Date, Message-ID, MIME headers, In-Reply-To,
// References, OpenPGP and Autocrypt oversigned when present.
// A function, not a package variable: no mutable package state.
func signHeaders() []signHeader {
	return []signHeader{
		{"from", oversign}, {"sender", oversignIfPresent}, {"reply-to", oversign},
		{"subject", oversign}, {"date", oversignIfPresent}, {"message-id", oversignIfPresent},
		{"to", oversign}, {"cc", oversign}, {"mime-version", oversignIfPresent},
		{"content-type", oversignIfPresent}, {"content-transfer-encoding", oversignIfPresent},
		{"resent-to", signPresent}, {"resent-cc", signPresent}, {"resent-from", signPresent},
		{"resent-sender", signPresent}, {"resent-message-id", signPresent},
		{"in-reply-to", oversignIfPresent}, {"references", oversignIfPresent},
		{"list-id", signPresent}, {"list-help", signPresent}, {"list-owner", signPresent},
		{"list-unsubscribe", signPresent}, {"list-unsubscribe-post", signPresent},
		{"list-subscribe", signPresent}, {"list-post", signPresent},
		{"openpgp", oversignIfPresent}, {"autocrypt", oversignIfPresent},
	}
}

// headerKeys builds the h= list for a message's header.
func headerKeys(h *header) []string {
	var keys []string
	for _, sh := range signHeaders() {
		n := h.count(sh.name)
		switch {
		case sh.rule == oversign, sh.rule == oversignIfPresent && n > 0:
			n++
		}
		for range n {
			keys = append(keys, sh.name)
		}
	}
	return keys
}

// Signer signs messages as one DKIM signing domain (d=) with one key.
type Signer struct {
	domain   string
	selector string
	key      crypto.Signer
}

// NewSigner returns a Signer for d=domain, s=selector. The domain is
// normalised to its IDNA A-label form.
func NewSigner(domain, selector string, key crypto.Signer) (*Signer, error) {
	d, err := mailaddr.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("dkim signer: %w", err)
	}
	if selector == "" || key == nil {
		return nil, errors.New("dkim signer: selector and key are required")
	}
	return &Signer{domain: d, selector: selector, key: key}, nil
}

// Domain returns the signing domain (d=).
func (s *Signer) Domain() string { return s.domain }

// Selector returns the selector (s=).
func (s *Signer) Selector() string { return s.selector }

// Signature reads the whole message from r and returns the DKIM-Signature
// header field, with its final CRLF, to prepend to exactly those bytes.
// relaxed/relaxed, rsa-sha256 (RFC 6376 3.4, RFC 8301). The message is
// streamed; only its header is held in memory.
func (s *Signer) Signature(ctx context.Context, r io.Reader) (string, error) {
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: r}, 32<<10)
	h, err := readHeader(br)
	if err != nil {
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	return s.sign(h, br)
}

// Sign writes the DKIM-Signature field and then the message to w. It reads
// r twice (to sign, then to copy), starting at r's current offset, so a
// spool file is never held in memory.
func (s *Signer) Sign(ctx context.Context, w io.Writer, r io.ReadSeeker) error {
	return signSeeker(ctx, w, r, func(r io.Reader) (string, error) { return s.Signature(ctx, r) })
}

func signSeeker(ctx context.Context, w io.Writer, r io.ReadSeeker, sig func(io.Reader) (string, error)) error {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("dkim sign: %w", err)
	}
	field, err := sig(r)
	if err != nil {
		return err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("dkim sign: %w", err)
	}
	if _, err := io.WriteString(w, field); err != nil {
		return fmt.Errorf("dkim sign: %w", err)
	}
	if _, err := io.Copy(w, &ctxReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("dkim sign: %w", err)
	}
	return nil
}

// sign feeds the already-read header and the rest of br to go-msgauth.
func (s *Signer) sign(h *header, body io.Reader) (string, error) {
	ds, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             headerKeys(h),
	})
	if err != nil {
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	if err := feed(ds, h, body); err != nil {
		ds.Close() // stops the signer's goroutine; its result is moot
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	if err := ds.Close(); err != nil {
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	return ds.Signature(), nil
}

func feed(w io.Writer, h *header, body io.Reader) error {
	if _, err := io.WriteString(w, h.text); err != nil {
		return err
	}
	if !h.complete {
		// All header, no body: go-msgauth needs the end of the header.
		// A verifier sees the same thing: an empty body.
		end := "\r\n"
		if len(h.text) > 0 && h.text[len(h.text)-1] != '\n' {
			end = "\r\n\r\n"
		}
		_, err := io.WriteString(w, end)
		return err
	}
	_, err := io.Copy(w, body)
	return err
}

// DomainLookup tells local domains and alternatives apart. Implemented over
// the store by StoreLookup; tests use a fake.
type DomainLookup interface {
	// IsDomain reports whether name is a local domain (Mailu Domain).
	IsDomain(ctx context.Context, name string) (bool, error)
	// AlternativeParent returns the domain an alternative belongs to, and
	// false when name is not an alternative.
	AlternativeParent(ctx context.Context, name string) (parent string, ok bool, err error)
}

// Signers picks the key and signing domain for outgoing messages.
type Signers struct {
	keys   *Keys
	lookup DomainLookup
}

// NewSigners returns Signers using keys and lookup.
func NewSigners(keys *Keys, lookup DomainLookup) *Signers {
	return &Signers{keys: keys, lookup: lookup}
}

// SignerFor returns the Signer for mail From fromDomain. A local domain is
// signed with its own key as d=<domain>; an alternative is signed as itself
// (d=<alternative>) with its parent's key, which is why the alternative's
// DKIM record carries the parent's public key (Mailu: rspamd vault,
// models.py Alternative.dns_dkim). Errors wrap ErrNotLocal or ErrNoKey when
// the message should go out unsigned.
func (s *Signers) SignerFor(ctx context.Context, fromDomain string) (*Signer, error) {
	d, err := mailaddr.NormalizeDomain(fromDomain)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotLocal, err)
	}
	keyDomain := d
	local, err := s.lookup.IsDomain(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("dkim signer for %s: %w", d, err)
	}
	if !local {
		parent, ok, err := s.lookup.AlternativeParent(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("dkim signer for %s: %w", d, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNotLocal, d)
		}
		keyDomain = parent
	}
	key, err := s.keys.Load(ctx, keyDomain)
	if err != nil {
		return nil, err
	}
	return NewSigner(d, s.keys.Selector(), key)
}

// Signature reads the message from r, picks the signer by the domain of its
// (first) From address and returns the DKIM-Signature field to prepend.
// When the message is not ours to sign the error satisfies Unsigned.
func (s *Signers) Signature(ctx context.Context, r io.Reader) (string, error) {
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: r}, 32<<10)
	h, err := readHeader(br)
	if err != nil {
		return "", fmt.Errorf("dkim sign: %w", err)
	}
	from, ok := h.get("From")
	if !ok {
		return "", ErrNoFrom
	}
	d, err := FromDomain(strings.TrimSpace(from))
	if err != nil {
		return "", err
	}
	signer, err := s.SignerFor(ctx, d)
	if err != nil {
		return "", err
	}
	return signer.sign(h, br)
}

// Sign is Signature followed by writing the field and the message to w, as
// Signer.Sign. When the error satisfies Unsigned nothing has been written.
func (s *Signers) Sign(ctx context.Context, w io.Writer, r io.ReadSeeker) error {
	return signSeeker(ctx, w, r, func(r io.Reader) (string, error) { return s.Signature(ctx, r) })
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
