package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

// Limits on alias and forward expansion. Postfix has
// virtual_alias_recursion_limit and virtual_alias_expansion_limit (both
// 1000); Petrel keeps the nesting shallower because Mailu setups never nest
// deeply and every level costs database look-ups at RCPT time.
const (
	maxExpandDepth     = 10   // nesting of alias -> alias -> ... -> user
	maxExpandAddresses = 1000 // distinct addresses looked at for one RCPT
)

// Accounts is what the Router reads from the account model.
type Accounts interface {
	GetDomain(ctx context.Context, name string) (*store.Domain, error)
	GetAlternative(ctx context.Context, name string) (*store.Alternative, error)
	GetRelay(ctx context.Context, name string) (*store.Relay, error)
	GetUser(ctx context.Context, email string) (*store.User, error)
	GetAlias(ctx context.Context, email string) (*store.Alias, error)
	ListWildcardAliases(ctx context.Context, domain string) ([]store.Alias, error)
}

var _ Accounts = store.Accounts(nil)

// RouterOptions configures a Router.
type RouterOptions struct {
	Accounts Accounts
	// Delimiters is RECIPIENT_DELIMITER: a set of characters; the local
	// part is cut at the first of them ("" disables sub-addressing).
	Delimiters string
	// SRS reverses SRS0/SRS1 addresses in local domains (Mailu:
	// recipient_canonical_maps); nil leaves them to the normal look-up.
	// *srs.Rewriter implements it.
	SRS    SRSReverser
	Logger *slog.Logger
}

// SRSReverser turns a bounce address Petrel's SRS made back into the
// address the bounce is for. ok is false with a nil error for an address
// that is not SRS, and with an error for one that does not verify.
type SRSReverser interface {
	Reverse(addr string) (orig string, ok bool, err error)
}

// Router resolves recipients and checks sender ownership against the
// account model, in Mailu's order. It holds no mutable state and is safe for
// concurrent use.
type Router struct {
	acc    Accounts
	delims string
	srs    SRSReverser
	log    *slog.Logger
}

// NewRouter returns a Router over opts.Accounts.
func NewRouter(opts RouterOptions) *Router {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{acc: opts.Accounts, delims: opts.Delimiters, srs: opts.SRS, log: log}
}

// domainKind is what a domain name is to Petrel.
type domainKind int

const (
	domainForeign domainKind = iota
	domainLocal              // a Domain, or an Alternative of one
	domainRelay
)

// classifyDomain says what domain is and, for local domains, the Domain it
// belongs to. Mailu: virtual_mailbox_domains = Domain + Alternative
// (postfix_mailbox_domain), relay_domains = Relay; Email.resolve_domain maps
// an alternative to its domain.
func (r *Router) classifyDomain(ctx context.Context, domain string) (domainKind, string, error) {
	if domain == "" || strings.HasPrefix(domain, "[") {
		// Mailu: postfix_mailbox_domain refuses address literals.
		return domainForeign, "", nil
	}
	if _, err := r.acc.GetDomain(ctx, domain); err == nil {
		return domainLocal, domain, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, "", fmt.Errorf("inbound: domain %s: %w", domain, err)
	}
	if alt, err := r.acc.GetAlternative(ctx, domain); err == nil {
		return domainLocal, alt.DomainName, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, "", fmt.Errorf("inbound: alternative %s: %w", domain, err)
	}
	if _, err := r.acc.GetRelay(ctx, domain); err == nil {
		return domainRelay, domain, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, "", fmt.Errorf("inbound: relay %s: %w", domain, err)
	}
	return domainForeign, "", nil
}

// Resolve decides where mail for rcpt goes. rcpt must be a syntactically
// valid address; it is normalised (lower case, IDNA domain) here for the
// look-ups. A relay or foreign recipient keeps its local part's case (RFC
// 5321 2.4: only the receiving host interprets it). A local domain without a
// matching user or alias gives ErrUnknownRecipient.
func (r *Router) Resolve(ctx context.Context, rcpt string) (Route, error) {
	addr, asGiven, err := mailaddr.NormalizeBoth(rcpt)
	if err != nil {
		return Route{}, fmt.Errorf("inbound: %q: %w: %w", rcpt, ErrBadAddress, err)
	}
	local, domain := mailaddr.Split(addr)
	kind, canon, err := r.classifyDomain(ctx, domain)
	if err != nil {
		return Route{}, err
	}
	switch kind {
	case domainRelay:
		// Postfix permit_auth_destination: an address with a routing
		// character in its local part (RESOLVE_FLAG_ROUTED) is not an
		// authorised destination, so the relay's next hop cannot be
		// tricked into relaying it further.
		if strings.ContainsAny(local, "@%!") {
			return Route{}, fmt.Errorf("inbound: %s: routed local part: %w", addr, ErrBadAddress)
		}
		return Route{Kind: RouteRelay, Rcpt: asGiven, Remote: []string{asGiven}}, nil
	case domainForeign:
		return Route{Kind: RouteForeign, Rcpt: asGiven, Remote: []string{asGiven}}, nil
	}

	if r.srs != nil {
		if route, ok, err := r.reverseSRS(rcpt, addr); ok || err != nil {
			return route, err
		}
	}

	ex := newExpansion(r, addr)
	found, err := ex.expandLocal(ctx, local+"@"+canon, 0)
	if err != nil {
		return Route{}, err
	}
	if !found {
		return Route{}, fmt.Errorf("inbound: %s: %w", addr, ErrUnknownRecipient)
	}
	if len(ex.mailboxes) == 0 && len(ex.remote) == 0 {
		// Every destination was a loop or unknown: Postfix would bounce
		// after accepting; refusing at RCPT tells the sender sooner.
		r.log.Warn("recipient expands to nothing", "rcpt", addr)
		return Route{}, fmt.Errorf("inbound: %s: no usable destination: %w", addr, ErrUnknownRecipient)
	}
	return Route{Kind: RouteLocal, Rcpt: addr, Mailboxes: ex.mailboxes, Remote: ex.remote, AutoReply: ex.replies, Spam: ex.spam, Quota: ex.quota}, nil
}

// reverseSRS resolves a bounce to an SRS address in a local domain: it
// goes to the original sender, through the queue (Mailu:
// recipient_canonical_maps, postfix_recipient_map). The route is local
// (the RCPT names one of our domains, so port 25 accepts it) with the
// original address as its only remote destination. An SRS address that
// does not verify (forged, another key, older than 21 days) is an unknown
// recipient: accepting it would let anyone relay through the SRS domain.
// rcpt is the address as the client wrote it, so the original local
// part keeps its case.
func (r *Router) reverseSRS(rcpt, addr string) (Route, bool, error) {
	orig, ok, err := r.srs.Reverse(rcpt)
	if err != nil {
		r.log.Info("invalid SRS address", "rcpt", addr, "err", err.Error())
		return Route{}, false, fmt.Errorf("inbound: %s: %w: %w", addr, ErrUnknownRecipient, err)
	}
	if !ok {
		return Route{}, false, nil
	}
	n, err := mailaddr.Normalize(orig)
	if err != nil {
		r.log.Warn("SRS address reverses to an unusable address", "rcpt", addr, "orig", orig, "err", err)
		return Route{}, false, fmt.Errorf("inbound: %s: %w: %w", addr, ErrUnknownRecipient, err)
	}
	// Normalize lower-cases the local part; the original keeps its case.
	local, _ := mailaddr.Split(orig)
	_, domain := mailaddr.Split(n)
	return Route{Kind: RouteLocal, Rcpt: addr, Remote: []string{local + "@" + domain}}, true, nil
}

// localMatch is the result of one local look-up (Mailu:
// Email.resolve_destination): either a user or an alias, or neither.
type localMatch struct {
	user  *store.User
	alias *store.Alias
}

func (m localMatch) found() bool { return m.user != nil || m.alias != nil }

// lookupLocal finds what local@domain (domain canonical, both normalised)
// is, in Mailu's order (models.py Email.resolve_destination, Alias.resolve):
//  1. the user local@domain, then the user with the delimiter-stripped local part;
//  2. a non-wildcard alias local@domain;
//  3. an alias of the stripped local part (exact first, then wildcard);
//  4. a wildcard alias matching local: longest pattern first.
//
// User.enabled is not consulted: in Mailu it gates logins only, and mail to
// a disabled user is still delivered.
func (r *Router) lookupLocal(ctx context.Context, local, domain string) (localMatch, error) {
	stripped := mailaddr.StripDelimiter(local, r.delims)
	hasStripped := stripped != local && stripped != ""

	u, err := r.getUser(ctx, local+"@"+domain)
	if err != nil || u != nil {
		return localMatch{user: u}, err
	}
	if hasStripped {
		u, err = r.getUser(ctx, stripped+"@"+domain)
		if err != nil || u != nil {
			return localMatch{user: u}, err
		}
	}

	a, err := r.getExactAlias(ctx, local+"@"+domain)
	if err != nil || a != nil {
		return localMatch{alias: a}, err
	}
	// Wildcard aliases are fetched once and only when needed.
	var wild []store.Alias
	wildLoaded := false
	loadWild := func() error {
		if wildLoaded {
			return nil
		}
		wildLoaded = true
		w, err := r.acc.ListWildcardAliases(ctx, domain)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("inbound: wildcard aliases of %s: %w", domain, err)
		}
		wild = w
		return nil
	}
	if hasStripped {
		a, err = r.getExactAlias(ctx, stripped+"@"+domain)
		if err != nil || a != nil {
			return localMatch{alias: a}, err
		}
		if err := loadWild(); err != nil {
			return localMatch{}, err
		}
		if a := bestWildcard(wild, stripped); a != nil {
			return localMatch{alias: a}, nil
		}
	}
	if err := loadWild(); err != nil {
		return localMatch{}, err
	}
	return localMatch{alias: bestWildcard(wild, local)}, nil
}

func (r *Router) getUser(ctx context.Context, email string) (*store.User, error) {
	u, err := r.acc.GetUser(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inbound: user %s: %w", email, err)
	}
	return u, nil
}

// getExactAlias returns the non-wildcard alias email, or nil.
func (r *Router) getExactAlias(ctx context.Context, email string) (*store.Alias, error) {
	a, err := r.acc.GetAlias(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inbound: alias %s: %w", email, err)
	}
	if a.Wildcard {
		return nil, nil
	}
	return a, nil
}

// bestWildcard picks the wildcard alias whose LIKE pattern matches local.
// Mailu: Alias.resolve orders by char_length(localpart) desc and takes the
// first; ties (which Mailu leaves to the database) go to the smaller
// address so the choice is stable.
func bestWildcard(aliases []store.Alias, local string) *store.Alias {
	var best *store.Alias
	bestLen := -1
	for i := range aliases {
		a := &aliases[i]
		if !a.Wildcard || !mailaddr.LikeMatch(a.Localpart, local) {
			continue
		}
		n := utf8.RuneCountInString(a.Localpart)
		if n > bestLen || (n == bestLen && a.Email < best.Email) {
			best, bestLen = a, n
		}
	}
	return best
}

// expansion collects the destinations of one RCPT. Postfix expands
// virtual_alias_maps recursively; Petrel does the same here so that the
// delivery step only sees mailboxes and remote addresses.
type expansion struct {
	r         *Router
	rcpt      string
	mailboxes []string
	remote    []string
	replies   []string // mailboxes whose user has the auto-reply enabled
	spam      map[string]SpamPrefs
	quota     map[string]Quota
	seen      map[string]bool  // destinations already added (mailboxes and remote)
	nodes     map[string]*node // local addresses met so far
	domains   map[string]classified
}

// node is one local address during an expansion.
type node struct {
	done bool   // fully expanded; false while its destinations are being followed
	user string // the user it matched, if any
	box  mailboxInfo
}

// mailboxInfo is what the route keeps of a user that gets a copy, read
// with the user at RCPT time.
type mailboxInfo struct {
	reply bool // the user's auto-reply is enabled
	spam  SpamPrefs
	quota Quota
}

type classified struct {
	kind  domainKind
	canon string
}

func newExpansion(r *Router, rcpt string) *expansion {
	return &expansion{
		r:       r,
		rcpt:    rcpt,
		seen:    map[string]bool{},
		nodes:   map[string]*node{},
		domains: map[string]classified{},
	}
}

func (e *expansion) addMailbox(email string, box mailboxInfo) {
	if !e.seen["m:"+email] {
		e.seen["m:"+email] = true
		e.mailboxes = append(e.mailboxes, email)
		if e.spam == nil {
			e.spam = map[string]SpamPrefs{}
			e.quota = map[string]Quota{}
		}
		e.spam[email] = box.spam
		e.quota[email] = box.quota
		if box.reply {
			e.replies = append(e.replies, email)
		}
	}
}

func (e *expansion) addRemote(addr string) {
	if !e.seen["r:"+addr] {
		e.seen["r:"+addr] = true
		e.remote = append(e.remote, addr)
	}
}

func (e *expansion) classify(ctx context.Context, domain string) (classified, error) {
	if c, ok := e.domains[domain]; ok {
		return c, nil
	}
	kind, canon, err := e.r.classifyDomain(ctx, domain)
	if err != nil {
		return classified{}, err
	}
	c := classified{kind, canon}
	e.domains[domain] = c
	return c, nil
}

// expandLocal expands addr, an address in a local domain written with its
// canonical domain. It reports whether any user or alias matched.
func (e *expansion) expandLocal(ctx context.Context, addr string, depth int) (bool, error) {
	if n, ok := e.nodes[addr]; ok {
		if n.done {
			return true, nil // reached again by another path: already counted
		}
		// A cycle. Postfix (cleanup_map1n.c) keeps an address that
		// expands into itself as a final recipient: a user in the
		// cycle keeps the message, a pure alias cycle delivers nothing.
		if n.user != "" {
			e.addMailbox(n.user, n.box)
		} else {
			e.r.log.Warn("alias loop broken", "rcpt", e.rcpt, "address", addr)
		}
		return true, nil
	}
	if depth > maxExpandDepth {
		e.r.log.Warn("alias nesting too deep, destination dropped", "rcpt", e.rcpt, "address", addr, "limit", maxExpandDepth)
		return true, nil
	}
	if len(e.nodes) >= maxExpandAddresses {
		e.r.log.Warn("alias expansion too large, destination dropped", "rcpt", e.rcpt, "address", addr, "limit", maxExpandAddresses)
		return true, nil
	}
	n := &node{}
	e.nodes[addr] = n
	defer func() { n.done = true }()

	local, domain := mailaddr.Split(addr)
	m, err := e.r.lookupLocal(ctx, local, domain)
	if err != nil || !m.found() {
		return false, err
	}
	if u := m.user; u != nil {
		n.user = u.Email
		n.box = mailboxInfo{
			reply: u.ReplyEnabled,
			spam:  SpamPrefs{Enabled: u.SpamEnabled, Threshold: u.SpamThreshold, MarkAsRead: u.SpamMarkAsRead},
			quota: Quota{Bytes: u.QuotaBytes, Used: u.QuotaBytesUsed},
		}
		// Mailu: Email.resolve_destination; forward_keep keeps a copy.
		// A forward with no destination behaves like no forward (the
		// alias map returns nothing and Postfix delivers to the mailbox).
		if !u.ForwardEnabled || len(u.ForwardDestination) == 0 {
			e.addMailbox(u.Email, n.box)
			return true, nil
		}
		// Mailu: forwarding is in Postfix's alias map, so without
		// forward_keep the message never reaches Dovecot's sieve and
		// nobody auto-replies; with it the kept copy does.
		if u.ForwardKeep {
			e.addMailbox(u.Email, n.box)
		}
		for _, d := range u.ForwardDestination {
			if err := e.expandDestination(ctx, d, depth+1); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	for _, d := range m.alias.Destination {
		if err := e.expandDestination(ctx, d, depth+1); err != nil {
			return true, err
		}
	}
	return true, nil
}

// expandDestination follows one alias or forward destination.
func (e *expansion) expandDestination(ctx context.Context, dest string, depth int) error {
	dest = strings.TrimSpace(dest)
	if dest == "" {
		return nil
	}
	n, asGiven, err := mailaddr.NormalizeBoth(dest)
	if err != nil {
		e.r.log.Warn("unusable alias destination dropped", "rcpt", e.rcpt, "destination", dest, "err", err)
		return nil
	}
	local, domain := mailaddr.Split(n)
	c, err := e.classify(ctx, domain)
	if err != nil {
		return err
	}
	if c.kind != domainLocal {
		// RFC 5321 2.4: the remote host interprets the local part's case.
		e.addRemote(asGiven)
		return nil
	}
	found, err := e.expandLocal(ctx, local+"@"+c.canon, depth)
	if err != nil {
		return err
	}
	if !found {
		e.r.log.Warn("unknown local alias destination dropped", "rcpt", e.rcpt, "destination", n)
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
