package imapmsg

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// ThreadNode is one node of a THREAD answer. Msg is nil for a dummy
// (a message that is referenced but not in the result).
type ThreadNode struct {
	Msg      *SortMessage
	Parent   *ThreadNode
	Children []*ThreadNode
}

// ThreadOrderedSubject is THREAD=ORDEREDSUBJECT (RFC 5256 3): messages
// grouped by base subject, each group's earliest message the parent of
// the others, groups ordered by their first message's sent date.
func ThreadOrderedSubject(msgs []*SortMessage) []*ThreadNode {
	sorted := slices.Clone(msgs)
	slices.SortFunc(sorted, func(a, b *SortMessage) int {
		if c := strings.Compare(a.Fields.BaseSubject, b.Fields.BaseSubject); c != 0 {
			return c
		}
		return compareSent(a, b)
	})
	var roots []*ThreadNode
	var cur *ThreadNode
	for _, m := range sorted {
		if cur != nil && cur.Msg.Fields.BaseSubject == m.Fields.BaseSubject {
			cur.Children = append(cur.Children, &ThreadNode{Msg: m, Parent: cur})
			continue
		}
		cur = &ThreadNode{Msg: m}
		roots = append(roots, cur)
	}
	slices.SortStableFunc(roots, func(a, b *ThreadNode) int { return compareSent(a.Msg, b.Msg) })
	return roots
}

// compareSent orders by sent date, then sequence number (RFC 5256 2.2).
func compareSent(a, b *SortMessage) int {
	if c := a.sentDate().Compare(b.sentDate()); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// ThreadReferences is THREAD=REFERENCES (RFC 5256 3 and 4), step by step
// as the RFC numbers them.
func ThreadReferences(msgs []*SortMessage) []*ThreadNode {
	// (1) link messages by their references. Messages are taken in
	// sequence order, so a duplicated Message-ID belongs to the first.
	byID := map[string]*ThreadNode{}
	nodes := make([]*ThreadNode, 0, len(msgs))
	ordered := slices.Clone(msgs)
	slices.SortFunc(ordered, func(a, b *SortMessage) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, m := range ordered {
		n := &ThreadNode{Msg: m}
		id := m.Fields.MessageID
		if id != "" {
			if old, ok := byID[id]; ok && old.Msg == nil {
				old.Msg = m // a dummy created by an earlier reference
				n = old
			} else if !ok {
				byID[id] = n
			}
			// a duplicate id: the message keeps a node of its own,
			// reachable by nobody's references
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		var prev *ThreadNode
		for _, ref := range n.Msg.Fields.References {
			r := byID[ref]
			if r == nil {
				r = &ThreadNode{} // a dummy for a message we do not have
				byID[ref] = r
			}
			if r == n {
				continue // a message referencing itself: skipped, as Dovecot does
			}
			// (1A) link consecutive references, never changing an
			// existing parent and never making a loop
			if prev != nil && r.Parent == nil && !wouldLoop(prev, r) {
				link(prev, r)
			}
			prev = r
		}
		// (1B) the last reference is the parent; it replaces a parent
		// that came from another message's (maybe truncated) references.
		// The old link is broken even when the new one would make a loop
		// and is not made (as Dovecot does).
		if n.Parent != prev {
			unlink(n)
			if prev != nil && !wouldLoop(prev, n) {
				link(prev, n)
			}
		}
	}
	// (2) the root set: every node without a parent, in first-seen order
	var roots []*ThreadNode
	seen := map[*ThreadNode]bool{}
	addRoot := func(n *ThreadNode) {
		if n.Parent == nil && !seen[n] {
			seen[n] = true
			roots = append(roots, n)
		}
	}
	for _, n := range nodes {
		for r := n; r != nil; r = r.Parent {
			addRoot(r)
		}
	}
	// (3) prune dummies
	roots = pruneDummies(roots, true)
	for _, r := range roots {
		r.Parent = nil
	}
	// (4) sort the root set by sent date (a dummy by its first child's)
	for _, r := range roots {
		if r.Msg == nil {
			sortSiblings(r.Children)
		}
	}
	sortSiblings(roots)
	// (5) merge threads whose base subjects are equal
	roots = mergeBySubject(roots)
	// (6) sort every set of siblings, the deepest first
	var sortTree func(ns []*ThreadNode)
	sortTree = func(ns []*ThreadNode) {
		for _, n := range ns {
			sortTree(n.Children)
		}
		sortSiblings(ns)
	}
	sortTree(roots)
	return roots
}

func link(parent, child *ThreadNode) {
	child.Parent = parent
	parent.Children = append(parent.Children, child)
}

func unlink(n *ThreadNode) {
	if p := n.Parent; p != nil {
		p.Children = slices.DeleteFunc(p.Children, func(c *ThreadNode) bool { return c == n })
		n.Parent = nil
	}
}

// wouldLoop reports whether making child a child of parent would make a
// loop: child is parent itself or one of its ancestors.
func wouldLoop(parent, child *ThreadNode) bool {
	for p := parent; p != nil; p = p.Parent {
		if p == child {
			return true
		}
	}
	return false
}

// pruneDummies is step (3): a dummy without children goes; a dummy with
// children is replaced by them, except at the top level where only a
// single child is promoted.
func pruneDummies(ns []*ThreadNode, top bool) []*ThreadNode {
	var out []*ThreadNode
	for _, n := range ns {
		n.Children = pruneDummies(n.Children, false)
		for _, c := range n.Children {
			c.Parent = n
		}
		if n.Msg != nil {
			out = append(out, n)
			continue
		}
		switch {
		case len(n.Children) == 0:
		case !top || len(n.Children) == 1:
			out = append(out, n.Children...)
		default:
			out = append(out, n)
		}
	}
	return out
}

// sortSiblings orders siblings by sent date; a dummy counts as its first
// child (whose siblings are sorted already).
func sortSiblings(ns []*ThreadNode) {
	slices.SortStableFunc(ns, func(a, b *ThreadNode) int { return compareSent(firstMsg(a), firstMsg(b)) })
}

func firstMsg(n *ThreadNode) *SortMessage {
	for n.Msg == nil && len(n.Children) > 0 {
		n = n.Children[0]
	}
	if n.Msg == nil {
		return &SortMessage{}
	}
	return n.Msg
}

// threadSubject is the base subject of a root: its own, or its first
// child's for a dummy.
func threadSubject(n *ThreadNode) *SortMessage {
	if n.Msg != nil {
		return n.Msg
	}
	return firstMsg(n)
}

// mergeBySubject is step (5).
func mergeBySubject(roots []*ThreadNode) []*ThreadNode {
	table := map[string]*ThreadNode{}
	for _, r := range roots { // (5B)
		m := threadSubject(r)
		subj := m.Fields.BaseSubject
		if subj == "" {
			continue
		}
		old, ok := table[subj]
		if !ok {
			table[subj] = r
			continue
		}
		if old.Msg != nil && (r.Msg == nil || (old.Msg.Fields.IsReplyFwd && !m.Fields.IsReplyFwd)) {
			table[subj] = r
		}
	}
	out := make([]*ThreadNode, 0, len(roots))
	for _, r := range roots { // (5C)
		if r.Parent != nil {
			continue // already merged under a dummy
		}
		m := threadSubject(r)
		subj := m.Fields.BaseSubject
		t := table[subj]
		if subj == "" || t == r {
			out = append(out, r)
			continue
		}
		switch {
		case t.Msg == nil && r.Msg == nil:
			for _, c := range r.Children {
				link(t, c)
			}
			r.Children = nil
		case t.Msg == nil:
			link(t, r)
		case m.Fields.IsReplyFwd && !t.Msg.Fields.IsReplyFwd:
			link(t, r)
		default:
			// a new dummy takes the table message's place
			d := &ThreadNode{}
			table[subj] = d
			if i := slices.Index(out, t); i >= 0 {
				out[i] = d
			} else {
				out = append(out, d)
			}
			link(d, t)
			link(d, r)
		}
	}
	return out
}

// AppendThread writes one thread as a thread-list (RFC 5256 5):
// "(a b c)" for a chain, "(a (b)(c))" when a message has several
// children, "((b)(c))" under a dummy.
func AppendThread(dst []byte, n *ThreadNode) []byte {
	dst = append(dst, '(')
	dst = appendMembers(dst, n, false)
	return append(dst, ')')
}

func appendMembers(dst []byte, n *ThreadNode, started bool) []byte {
	for {
		if n.Msg != nil {
			if started {
				dst = append(dst, ' ')
			}
			dst = strconv.AppendUint(dst, uint64(n.Msg.Num), 10)
			started = true
		}
		switch len(n.Children) {
		case 0:
			return dst
		case 1:
			n = n.Children[0]
			continue
		}
		if started {
			dst = append(dst, ' ')
		}
		for _, c := range n.Children {
			dst = AppendThread(dst, c)
		}
		return dst
	}
}
