package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// ErrDKIMKey: a domain was created but its DKIM key could not be written.
// The domain stays; the key can be made later with RegenerateDKIM
// (`petrel dkim DOMAIN`).
var ErrDKIMKey = errors.New("dkim key not written")

// newDomainKeys gives domains that were just created a DKIM key, after the
// transaction that created them has committed, as Mailu writes key files
// after commit. A key file that is already there (a Mailu key copied in
// before the domain was created) is kept. Without DKIM_PATH it does
// nothing. A failure is reported as an *Error wrapping ErrDKIMKey; the
// domains are not undone.
func (s *Service) newDomainKeys(ctx context.Context, domains ...string) error {
	if s.keys == nil {
		return nil
	}
	var errs []error
	for _, d := range domains {
		ok, err := s.keys.Exists(ctx, d)
		if err == nil && ok {
			continue
		}
		if err == nil {
			err = s.keys.Generate(ctx, d)
		}
		if err != nil {
			s.log.Error("DKIM key not written", "domain", d, "err", err)
			errs = append(errs, &Error{
				Msg: fmt.Sprintf("domain %s was created, but its DKIM key could not be written (%v); run 'petrel dkim %s' to try again", d, err, d),
				Err: ErrDKIMKey,
			})
			continue
		}
		s.log.Info("DKIM key generated", "domain", d)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// DKIMInfo is what signs mail from a domain or an alternative.
type DKIMInfo struct {
	Domain    string // the name asked for, normalised: the signing domain (d=)
	KeyDomain string // the domain whose key signs: Domain itself, or an alternative's parent
	Selector  string // DKIM_SELECTOR
	// Record is the key's DKIM TXT record ("v=DKIM1; k=rsa; p=..."); ""
	// when KeyDomain has no key yet.
	Record string
}

// DKIM returns the DKIM key record that mail from name is signed with. An
// alternative is signed as itself with its parent's key (Mailu: rspamd
// vault), so its record carries the parent's public key. A name that is
// neither a domain nor an alternative gives store.ErrNotFound.
func (s *Service) DKIM(ctx context.Context, name string) (DKIMInfo, error) {
	n, err := normDomain(name)
	if err != nil {
		return DKIMInfo{}, err
	}
	info := DKIMInfo{Domain: n, KeyDomain: n, Selector: s.opt.DKIMSelector}
	if _, err := s.st.GetDomain(ctx, n); errors.Is(err, store.ErrNotFound) {
		alt, err := s.st.GetAlternative(ctx, n)
		if errors.Is(err, store.ErrNotFound) {
			return DKIMInfo{}, errorf(store.ErrNotFound, "%s is neither a domain nor an alternative domain here", n)
		}
		if err != nil {
			return DKIMInfo{}, err
		}
		info.KeyDomain = alt.DomainName
	} else if err != nil {
		return DKIMInfo{}, err
	}
	if s.keys == nil {
		return info, nil
	}
	rec, err := s.keys.PublicKeyRecord(ctx, info.KeyDomain)
	switch {
	case errors.Is(err, msgauth.ErrNoKey):
		return info, nil
	case err != nil:
		return DKIMInfo{}, fmt.Errorf("DKIM key of %s: %w", info.KeyDomain, err)
	}
	info.Record = rec
	return info, nil
}

// RegenerateDKIM gives domain a new DKIM key, replacing any old one (Mailu
// "Regenerate keys", API POST /domain/<domain>/dkim), and returns it as
// DKIM returns it. An alternative has no key of its own: the error says to
// regenerate its domain's.
func (s *Service) RegenerateDKIM(ctx context.Context, domain string) (DKIMInfo, error) {
	n, err := normDomain(domain)
	if err != nil {
		return DKIMInfo{}, err
	}
	if s.keys == nil {
		return DKIMInfo{}, errorf(ErrInvalid, "DKIM_PATH is not set, so there are no DKIM keys")
	}
	if _, err := s.st.GetDomain(ctx, n); errors.Is(err, store.ErrNotFound) {
		if alt, err := s.st.GetAlternative(ctx, n); err == nil {
			return DKIMInfo{}, errorf(ErrInvalid, "%s is an alternative of %s and is signed with its key; regenerate the key of %s", n, alt.DomainName, alt.DomainName)
		}
		return DKIMInfo{}, errorf(store.ErrNotFound, "domain %s does not exist", n)
	} else if err != nil {
		return DKIMInfo{}, err
	}
	if err := s.keys.Generate(ctx, n); err != nil {
		return DKIMInfo{}, fmt.Errorf("admin: dkim key of %s: %w", n, err)
	}
	s.log.Info("DKIM key regenerated", "domain", n)
	return s.DKIM(ctx, n)
}
