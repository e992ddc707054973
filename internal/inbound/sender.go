package inbound

import (
	"context"
	"strings"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

// SenderAllowed reports whether the authenticated user may use sender as
// the envelope sender on submission. It reproduces Postfix
// reject_authenticated_sender_login_mismatch over Mailu's senderlogin map
// (internal/views/postfix.py postfix_sender_login): the owners of sender
// are
//   - the result of Email.resolve_destination for the sender with its
//     recipient-delimiter suffix cut off and an alternative domain mapped to
//     its domain, with ignore_forward_keep: for a user, the user itself plus
//     its forward destinations; for an alias (exact, delimiter-stripped or
//     wildcard, same order as Resolve), its destinations as written — one
//     level, as Postfix does not expand smtpd_sender_login_maps results;
//   - every address in WILDCARD_SENDERS (wildcardSenders);
//   - every user with allow_spoofing.
//
// The login matches an owner case-insensitively (Postfix strcasecmp_utf8).
// The null sender is always allowed: Postfix checks the login mismatch only
// for a non-empty MAIL FROM (smtpd_check.c). A sender that cannot be
// normalised has no owner and is refused. The error is for look-up failures
// only.
func (r *Router) SenderAllowed(ctx context.Context, user *store.User, sender string, wildcardSenders []string) (bool, error) {
	if sender == "" {
		return true, nil
	}
	if user == nil {
		return false, nil
	}
	if user.AllowSpoofing {
		return true, nil
	}
	login := sameAddress(user.Email)
	// Mailu: WILDCARD_SENDERS is lower-cased with spaces removed.
	for _, w := range wildcardSenders {
		if sameAddress(strings.ReplaceAll(w, " ", "")) == login {
			return true, nil
		}
	}
	addr, err := mailaddr.Normalize(sender)
	if err != nil {
		return false, nil
	}
	local, domain := mailaddr.Split(addr)
	// Mailu: Email.resolve_domain maps only alternatives; any other
	// domain is looked up as it is (and usually has no owner).
	if alt, err := r.acc.GetAlternative(ctx, domain); err == nil {
		domain = alt.DomainName
	} else if !isNotFound(err) {
		return false, err
	}
	local = mailaddr.StripDelimiter(local, r.delims)
	m, err := r.lookupLocal(ctx, local, domain)
	if err != nil {
		return false, err
	}
	var owners []string
	switch {
	case m.user != nil:
		owners = append(owners, local+"@"+domain)
		if m.user.ForwardEnabled {
			owners = append(owners, m.user.ForwardDestination...)
		}
	case m.alias != nil:
		owners = m.alias.Destination
	}
	for _, o := range owners {
		if sameAddress(o) == login {
			return true, nil
		}
	}
	return false, nil
}

// sameAddress is the form two addresses are compared in: normalised when
// possible, else trimmed and lower-cased.
func sameAddress(a string) string {
	a = strings.TrimSpace(a)
	if n, err := mailaddr.Normalize(a); err == nil {
		return n
	}
	return strings.ToLower(a)
}
