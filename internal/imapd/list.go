package imapd

import (
	"sort"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// listOptions are LIST-EXTENDED's selection and return options (RFC 5258,
// RFC 6154, RFC 5819).
type listOptions struct {
	selSubscribed bool
	selSpecialUse bool
	recursive     bool // RECURSIVEMATCH
	retSubscribed bool
	retChildren   bool
	retSpecialUse bool
	status        []string // RETURN (STATUS (...))
	extended      bool     // any option given: LIST-EXTENDED rules apply
}

// cmdList is LIST (RFC 9051 6.3.9, RFC 5258 LIST-EXTENDED) and LSUB
// (RFC 3501 6.3.9).
func cmdList(s *session, c *command) error {
	d := c.args
	lsub := c.name == "LSUB"
	var opt listOptions
	d.SP()
	if !lsub && d.Is('(') {
		opt.extended = true
		d.List(func() bool {
			switch upperASCII(d.Atom()) {
			case "SUBSCRIBED":
				opt.selSubscribed = true
			case "SPECIAL-USE":
				opt.selSpecialUse = true
			case "REMOTE":
				// RFC 5258 3.1: no remote mailboxes here.
			case "RECURSIVEMATCH":
				opt.recursive = true
			default:
				d.fail("Unknown LIST selection option")
				return false
			}
			return true
		})
		d.SP()
	}
	ref := d.AString()
	d.SP()
	var patterns []string
	if !lsub && d.Is('(') {
		opt.extended = true
		d.List(func() bool {
			patterns = append(patterns, d.ListMailbox())
			return true
		})
	} else {
		patterns = append(patterns, d.ListMailbox())
	}
	if !lsub && d.Accept(' ') {
		if !strings.EqualFold(d.Atom(), "RETURN") || !d.SP() {
			d.fail("Expected RETURN (options)")
		}
		opt.extended = true
		d.List(func() bool {
			switch upperASCII(d.Atom()) {
			case "SUBSCRIBED":
				opt.retSubscribed = true
			case "CHILDREN":
				opt.retChildren = true
			case "SPECIAL-USE":
				opt.retSpecialUse = true
			case "STATUS":
				d.SP()
				opt.status = s.statusItems(d)
			default:
				d.fail("Unknown LIST return option")
				return false
			}
			return d.Err() == nil
		})
	}
	if err := d.End(); err != nil {
		return err
	}
	if opt.recursive && !opt.selSubscribed && !opt.selSpecialUse {
		// RFC 5258 3: RECURSIVEMATCH alone is an error.
		return bad("RECURSIVEMATCH needs another selection option")
	}
	if !s.rev2 {
		if dec, err := decodeUTF7(ref); err == nil {
			ref = dec
		}
		for i, p := range patterns {
			if dec, err := decodeUTF7(p); err == nil {
				patterns[i] = dec
			}
		}
	}
	resp := "LIST"
	if lsub {
		resp = "LSUB"
		opt.selSubscribed = true
	}
	if len(patterns) == 1 && patterns[0] == "" && !opt.extended {
		// RFC 9051 6.3.9: an empty pattern asks for the delimiter and
		// the root of ref.
		s.w.Untagged()
		s.w.Raw(resp)
		s.w.Raw(` (\Noselect) "/" `)
		root := ""
		if i := strings.Index(ref, delimiter); i >= 0 {
			root = ref[:i+1]
		}
		s.w.String(s.wireName(root))
		s.w.CRLF()
		return nil
	}
	if opt.status != nil && hasItem(opt.status, "HIGHESTMODSEQ") {
		s.enableCondstore()
	}
	boxes, err := s.srv.opts.Store.ListMailboxes(s.ctx, s.user)
	if err != nil {
		return err
	}
	var subs []string
	if opt.selSubscribed || opt.retSubscribed {
		if subs, err = s.srv.opts.Store.Subscriptions(s.ctx, s.user); err != nil {
			return err
		}
	}
	for _, e := range listEntries(boxes, subs, ref, patterns, opt, lsub) {
		s.w.Untagged()
		s.w.Raw(resp)
		s.w.Raw(" (")
		s.w.Raw(strings.Join(e.attrs(opt, lsub, s.rev2), " "))
		s.w.Raw(`) "/" `)
		s.writeMailbox(e.name)
		if e.childSubscribed && opt.recursive && opt.selSubscribed && !e.subscribed {
			// RFC 5258 3.5 CHILDINFO: listed only for a subscribed child.
			s.w.Raw(` ("CHILDINFO" ("SUBSCRIBED"))`)
		}
		s.w.CRLF()
		if opt.status != nil && e.box != nil {
			// RFC 5819: STATUS right after the LIST of a selectable mailbox.
			if err := s.writeStatus(e.box, opt.status); err != nil {
				return err
			}
		}
	}
	return nil
}

// listEntry is one mailbox a LIST answers with.
type listEntry struct {
	name            string
	box             *store.Mailbox // nil: a level of hierarchy with no mailbox
	subscribed      bool
	hasChildren     bool
	childSubscribed bool // some subscribed inferior is not listed itself (CHILDINFO)
}

func (e *listEntry) attrs(opt listOptions, lsub, rev2 bool) []string {
	var a []string
	if e.box == nil {
		if (rev2 || opt.extended) && !lsub {
			// RFC 5258 3.4, RFC 9051 7.3.1: \NonExistent implies
			// \Noselect, which is not repeated (as Dovecot does).
			a = append(a, `\NonExistent`)
		} else {
			a = append(a, `\Noselect`)
		}
	}
	if lsub {
		return a
	}
	// CHILDREN (RFC 3348) is always on; RFC 9051 requires the attributes.
	if e.hasChildren {
		a = append(a, `\HasChildren`)
	} else {
		a = append(a, `\HasNoChildren`)
	}
	if e.subscribed && (opt.selSubscribed || opt.retSubscribed) {
		a = append(a, `\Subscribed`)
	}
	if e.box != nil && e.box.SpecialUse != "" {
		// RFC 6154 2: servers may always return the special-use
		// attributes; clients without RETURN (SPECIAL-USE) use them too.
		a = append(a, e.box.SpecialUse)
	}
	return a
}

// listEntries picks and orders the mailboxes a LIST or LSUB returns. subs
// is the user's subscription list, which may name mailboxes that do not
// exist (RFC 3501 6.3.6); nil when the command does not ask for it.
func listEntries(boxes []store.Mailbox, subs []string, ref string, patterns []string, opt listOptions, lsub bool) []listEntry {
	byName := make(map[string]*store.Mailbox, len(boxes))
	// Every level of hierarchy, existing or not, with facts about its
	// inferiors.
	type node struct {
		hasChildren, childSubscribed bool
		subscribedOnly               bool // a subscription, no mailbox or inferior
		// childUnlisted: some subscribed inferior does not match the
		// patterns itself, so RECURSIVEMATCH lists this level for it
		// with CHILDINFO (RFC 5258 3.5, example 9).
		childUnlisted bool
	}
	nodes := make(map[string]*node)
	get := func(n string) *node {
		if nodes[n] == nil {
			nodes[n] = &node{}
		}
		return nodes[n]
	}
	for i := range boxes {
		b := &boxes[i]
		byName[b.Name] = b
		get(b.Name)
		parts := strings.Split(b.Name, delimiter)
		for k := 1; k < len(parts); k++ {
			get(strings.Join(parts[:k], delimiter)).hasChildren = true
		}
	}
	subscribed := make(map[string]bool, len(subs))
	for _, name := range subs {
		subscribed[name] = true
		if nodes[name] == nil {
			get(name).subscribedOnly = true
		}
		parts := strings.Split(name, delimiter)
		for k := 1; k < len(parts); k++ {
			pn := strings.Join(parts[:k], delimiter)
			if nodes[pn] == nil {
				get(pn).subscribedOnly = true
			}
			nodes[pn].childSubscribed = true
		}
	}
	var matchers []*matcher
	for _, p := range patterns {
		matchers = append(matchers, newMatcher(ref, p))
	}
	matches := func(name string) bool {
		for _, m := range matchers {
			if m.match(name) {
				return true
			}
		}
		return false
	}
	for _, name := range subs {
		if matches(name) {
			continue
		}
		parts := strings.Split(name, delimiter)
		for k := 1; k < len(parts); k++ {
			nodes[strings.Join(parts[:k], delimiter)].childUnlisted = true
		}
	}
	var out []listEntry
	for name, n := range nodes {
		if !matches(name) {
			continue
		}
		b := byName[name]
		e := listEntry{name: name, box: b, hasChildren: n.hasChildren, childSubscribed: n.childUnlisted,
			subscribed: subscribed[name]}
		switch {
		case n.subscribedOnly && !opt.selSubscribed:
			// Known only from the subscription list: not a mailbox.
			continue
		case opt.selSubscribed && e.subscribed:
			// RFC 5258 3.4: a subscribed name is listed, as \NonExistent
			// when no mailbox has it.
		case opt.selSubscribed:
			// RFC 5258 3.5 RECURSIVEMATCH, and RFC 3501 6.3.9's LSUB
			// with "%": a parent of a subscribed mailbox is listed.
			if !(n.childUnlisted && opt.recursive || n.childSubscribed && lsub) {
				continue
			}
			if lsub {
				e.box = nil // shown as \Noselect
			}
		case opt.selSpecialUse && (b == nil || b.SpecialUse == ""):
			continue
		case b == nil && !matchesLevel(matchers, name):
			// A hierarchy level without a mailbox is listed only where
			// "%" stops at it (RFC 9051 6.3.9).
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		// INBOX first, then by name: what clients show.
		if (out[i].name == "INBOX") != (out[j].name == "INBOX") {
			return out[i].name == "INBOX"
		}
		return out[i].name < out[j].name
	})
	return out
}

// matchesLevel reports whether a pattern ends in "%" at this level, which
// is when a level without a mailbox of its own is listed.
func matchesLevel(ms []*matcher, name string) bool {
	for _, m := range ms {
		if strings.HasSuffix(m.pattern, "%") && m.match(name) {
			return true
		}
	}
	return false
}

// matcher matches mailbox names against a LIST pattern: "*" matches
// anything, "%" anything but the delimiter (RFC 9051 6.3.9). The
// reference is prefixed to the pattern. INBOX matches case-insensitively.
type matcher struct {
	pattern string
}

func newMatcher(ref, pattern string) *matcher {
	p := pattern
	if ref != "" && !strings.HasPrefix(pattern, delimiter) {
		p = ref + pattern
	}
	// "inbox", "Inbox/%" and friends name INBOX.
	if len(p) >= 5 && strings.EqualFold(p[:5], "INBOX") && (len(p) == 5 || strings.ContainsRune("/*%", rune(p[5]))) {
		p = "INBOX" + p[5:]
	}
	return &matcher{pattern: p}
}

func (m *matcher) match(name string) bool { return wildMatch(m.pattern, name) }

// maxPattern bounds a LIST pattern; longer ones match nothing (no name
// is that long), which keeps wildMatch cheap.
const maxPattern = 1024

// wildMatch matches name against pattern with "*" and "%": dynamic
// programming over one row, O(len(pattern) * len(name)), so no pattern
// can make it exponential.
func wildMatch(pattern, name string) bool {
	if len(pattern) > maxPattern {
		return false
	}
	// cur[j]: pattern[:i] matches name[:j].
	cur := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	cur[0] = true
	for i := 0; i < len(pattern); i++ {
		pc := pattern[i]
		for j := range next {
			next[j] = false
		}
		switch pc {
		case '*', '%':
			// next[j] = cur[j] || (next[j-1] && name[j-1] may be eaten)
			for j := 0; j <= len(name); j++ {
				next[j] = cur[j] || (j > 0 && next[j-1] && (pc == '*' || name[j-1] != '/'))
			}
		default:
			for j := 1; j <= len(name); j++ {
				next[j] = cur[j-1] && name[j-1] == pc
			}
		}
		cur, next = next, cur
	}
	return cur[len(name)]
}
